-- The outcome: each linked child's EYFSP result (its latest current version; if a child has several
-- returns, the latest assessment). Labels use everything known today: they are not features.
select
    person_id,
    cast(extract(year from event_date) as integer) as assessment_year,
    event_date as assessed_on,
    not gld as not_gld,
    fsm,
    eal,
    sen,
    ethnicity,
    case
        when ethnicity in ('WBRI', 'WOTH') then 'White'
        when ethnicity = 'MIXD' then 'Mixed'
        when ethnicity = 'ASIA' then 'Asian'
        when ethnicity = 'BLAC' then 'Black'
        when ethnicity = 'CHIN' then 'Chinese'
        when ethnicity = 'AOEG' then 'Other'
        else 'Unknown'  -- REFU (refused), NOBT (not obtained) or missing
    end as ethnicity_group
from {{ ref('stg_school_readiness') }} as returns
inner join {{ ref('stg_person_link') }} as link using (source, record_id)
where returns.superseded_on is null
qualify row_number() over (partition by person_id order by event_date desc, extract_month desc, event_key) = 1
