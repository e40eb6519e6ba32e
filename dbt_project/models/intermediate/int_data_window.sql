-- The span of extracts in the warehouse: one row. Prediction dates are taken within
-- [first month's first day, data_complete_on]: data_complete_on is the first day after the last month that every
-- agency sending a monthly extract has delivered, the last date by which all their extracts had landed. Taking
-- the latest month of any one agency would admit children at a date for which the others' extracts are still to
-- come (the landing sensor runs the features as soon as one agency's file lands).
-- Left out of that minimum: sources that do not send every month (var `annual_sources`: the EYFSP return lands
-- each July), which would hold the window back for eleven months a year, and a source that has delivered nothing.
-- A month is delivered when its extract landed and was loaded, rows or none: pseudonymised.landed_extract records
-- a month sent with its header alone (no events), which leaves no row and would look late. The months with rows
-- count too: a warehouse written before that table existed lacks it, or the months not written since.
-- Read from the pseudonymised tables themselves: the staging views would compute their versions (two windows
-- over every record) only for the months, which are the same.
{%- set sources = ['social_care', 'school_readiness', 'youth_offending', 'drugs_alcohol', 'housing', 'benefits',
                   'police_incidents'] %}
{%- set landed = source('pseudonymised', 'landed_extract') %}
{%- set landed_exists = execute and adapter.get_relation(
        database=landed.database, schema=landed.schema, identifier=landed.identifier) is not none %}
with months as (
    {%- for name in sources %}
    select '{{ name }}' as source, min(extract_month) as first_month, max(extract_month) as last_month
    from {{ source('pseudonymised', name) }}
    {%- if not loop.last or landed_exists %}
    union all{% endif %}
    {%- endfor %}
    {%- if landed_exists %}
    select source, min(extract_month), max(extract_month) from {{ landed }}
    where source in ({% for name in sources %}'{{ name }}'{{ ', ' if not loop.last }}{% endfor %})
    group by source
    {%- endif %}
),

extracts as (
    select source, min(first_month) as first_month, max(last_month) as last_month from months group by source
),

monthly as (
    select
        min(first_month) as first_month,
        cast(min(last_month) filter (where is_monthly) || '-01' as date) as all_delivered,
        cast(max(last_month) filter (where is_monthly) || '-01' as date) as latest
    from (select *, source not in (
        {%- for name in var('annual_sources') %}'{{ name }}'{{ ', ' if not loop.last }}{% endfor -%}
    ) as is_monthly from extracts)
),

-- an agency more than `late_source_wait_months` behind the others holds the window back no longer: its feed may
-- have stopped, and the newest children would go unscored for as long (their features then lack its records)
window_ as (
    select
        first_month,
        strftime(greatest(all_delivered, latest - to_months({{ var('late_source_wait_months') }})), '%Y-%m')
            as last_month
    from monthly
)

select
    first_month,
    last_month,
    cast(first_month || '-01' as date) as first_month_start,
    cast(cast(last_month || '-01' as date) + interval 1 month as date) as data_complete_on
from window_
