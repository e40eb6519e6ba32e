-- The span of extracts in the warehouse: one row. Prediction dates are taken within
-- [first month's first day, last month's first day + 1 month], the last date by which every extract had landed.
with months as (
    select extract_month from {{ ref('stg_social_care') }}
    union all select extract_month from {{ ref('stg_school_readiness') }}
    union all select extract_month from {{ ref('stg_youth_offending') }}
    union all select extract_month from {{ ref('stg_drugs_alcohol') }}
    union all select extract_month from {{ ref('stg_housing') }}
    union all select extract_month from {{ ref('stg_benefits') }}
    union all select extract_month from {{ ref('stg_police_incidents') }}
)

select
    min(extract_month) as first_month,
    max(extract_month) as last_month,
    cast(min(extract_month) || '-01' as date) as first_month_start,
    cast(cast(max(extract_month) || '-01' as date) + interval 1 month as date) as data_complete_on
from months
