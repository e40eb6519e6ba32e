-- Youth Offending Service: proven offences; every version of every record.
{{ staged_records('youth_offending', ['offence_type', 'outcome']) }}
