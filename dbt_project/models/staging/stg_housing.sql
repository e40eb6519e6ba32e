-- Housing register: one event per status of an application member (Registered, Temporary accommodation, Housed, Closed).
{{ staged_records('housing', ['status', 'band', 'bedrooms_needed', 'bedrooms_current'], event_key="record_id || '|' || status") }}
