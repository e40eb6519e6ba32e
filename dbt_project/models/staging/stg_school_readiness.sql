-- EYFSP returns (the outcome): every version of every record.
{{ staged_records('school_readiness', ['school_urn', 'gld', 'fsm', 'eal', 'sen', 'ethnicity']) }}
