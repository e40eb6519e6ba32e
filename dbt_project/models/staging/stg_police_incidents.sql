-- Police incidents, one record per person involved, by role.
{{ staged_records('police_incidents', ['incident_type', 'domestic_abuse']) }}
