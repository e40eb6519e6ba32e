-- Which linked person each pseudonymised record belongs to (today's linkage, over all history).
select
    source,
    cast(record_id as varchar) as record_id,
    person_id,
    match_probability
from {{ source('linked', 'person_link') }}
