{#
  staged_records(source_name, attributes, event_key='record_id')

  Every version of every record of one pseudonymised source, with when it became usable:

    arrived_on     the day the extract carrying this version had landed: an agency's extract for month M
                   lands at the end of M, so a version is usable from the first day of M + 1.
    superseded_on  the day a later version of the same event arrived (null: still current). A record re-sent
                   under the same (source, record_id) in a later extract corrects the earlier one.
    event_key      what identifies one event of the source: the record id, except where a source re-sends a
                   record to report a new state (housing: one event per status of an application).

  At a prediction date D a version counts only if arrived_on <= D < coalesce(superseded_on, infinity): the
  latest version that had arrived by D. Tokens and Bloom filters are dropped: linkage has used them already.
  If one extract carries the same key twice, the first row in (record_id) order is kept.
#}
{% macro staged_records(source_name, attributes, event_key='record_id') %}
with versions as (
    select
        source,
        cast(record_id as varchar) as record_id,
        cast({{ event_key }} as varchar) as event_key,
        cast(group_ref as varchar) as group_ref,
        role,
        extract_month,
        cast(cast(extract_month || '-01' as date) + interval 1 month as date) as arrived_on,
        cast(event_date as date) as event_date,
        sex,
        cast(birth_year as integer) as birth_year,
        cast(birth_month as integer) as birth_month,
        ward,
        lsoa{% for attribute in attributes %},
        {{ attribute }}{% endfor %}
    from {{ source('pseudonymised', source_name) }}
    qualify row_number() over (partition by source, record_id, extract_month order by event_date desc nulls last) = 1
)

select
    *,
    lead(arrived_on) over (partition by source, event_key order by extract_month) as superseded_on
from versions
{% endmacro %}
