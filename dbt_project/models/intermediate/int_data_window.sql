-- The span of extracts in the warehouse: one row. Prediction dates are taken within
-- [first month's first day, last month's first day + 1 month], the last date by which every extract had landed.
-- Read from the pseudonymised tables themselves: the staging views would compute their versions (two windows
-- over every record) only for the months, which are the same.
with months as (
    select extract_month from {{ source('pseudonymised', 'social_care') }}
    union all select extract_month from {{ source('pseudonymised', 'school_readiness') }}
    union all select extract_month from {{ source('pseudonymised', 'youth_offending') }}
    union all select extract_month from {{ source('pseudonymised', 'drugs_alcohol') }}
    union all select extract_month from {{ source('pseudonymised', 'housing') }}
    union all select extract_month from {{ source('pseudonymised', 'benefits') }}
    union all select extract_month from {{ source('pseudonymised', 'police_incidents') }}
)

select
    min(extract_month) as first_month,
    max(extract_month) as last_month,
    cast(min(extract_month) || '-01' as date) as first_month_start,
    cast(cast(max(extract_month) || '-01' as date) + interval 1 month as date) as data_complete_on
from months
