{#
  staged_records(source_name, attributes, event_key='record_id')

  Every version of every record of one pseudonymised source, with when it became usable:

    arrived_on     the day the delivery that brought this version had landed: an agency's extract for month M
                   lands at the end of M, so a version is usable from the first day of M + 1, M being the row's
                   `_arrived_month` (lineage kept from raw, ed_pipeline/quality/arrival.py): its extract month,
                   unless the row came (new, or changed) in a later delivery of its month, a month re-sent to
                   correct it, which arrived in the month after the newest month landed then. Null (rows written before the
                   column was kept): the extract month.
    superseded_on  the day a later version of the same event arrived (null: still current). A record re-sent
                   under the same (source, record_id) in a later extract corrects the earlier one. Later is by
                   extract month; a version is superseded from the earliest arrival of any later one (a month
                   re-sent late may bring a version that arrives after a later month's, which it never supersedes).
    event_key      what identifies one event of the source: the record id, except where a source re-sends a
                   record to report a new state (housing: one event per status of an application). It must
                   extend the record id (every version of an event has the same record id).

  At a prediction date D a version counts only if arrived_on <= D < coalesce(superseded_on, infinity): the
  latest version that had arrived by D. Tokens and Bloom filters are dropped: linkage has used them already.
  If one extract carries the same record twice, the row with the latest event date is kept; of rows with the same
  date, the later row of the file (`_row_number`, lineage kept from raw: a second copy corrects the first), then
  the row hash, so that every build keeps the same row whatever order the rows are stored in.

  Incremental. A month's refresh brings one new extract per source, and rebuilding every version of the whole
  history (two windows over it) was most of what these models, their tests and the privacy audit's reading of
  them cost. So the table keeps, per row, how many source rows its (source, record_id, extract_month) had and
  the sum of their hashes modulo 2^64 (`_source_rows`, `_source_hash`, the hashes salted with this macro's SQL). A build
  compares each month's figures in the source with those in the table: the months that differ (new, re-sent,
  re-processed or gone, or every month when this SQL changed) name the records to rebuild, and every version of
  those records is rebuilt (their superseded_on may change) and replaces the old ones (delete+insert by record).
  A record none of whose rows is left in the source is deleted after the build. The result equals a full build
  (`dbt build --full-refresh`), which a test checks.
#}
{% macro staged_records(source_name, attributes, event_key='record_id') %}
{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key=['source', 'record_id'],
          on_schema_change='sync_all_columns',
          post_hook=["{{ delete_vanished_records(this, source('pseudonymised', '" ~ source_name ~ "')) }}"]) }}
{%- set rebuild -%}
    select
        source,
        cast(record_id as varchar) as record_id,
        cast({{ event_key }} as varchar) as event_key,
        cast(group_ref as varchar) as group_ref,
        role,
        extract_month,
        cast(cast(coalesce(_arrived_month, extract_month) || '-01' as date) + interval 1 month as date) as arrived_on,
        cast(event_date as date) as event_date,
        sex,
        cast(birth_year as integer) as birth_year,
        cast(birth_month as integer) as birth_month,
        ward,
        lsoa{% for attribute in attributes %},
        {{ attribute }}{% endfor %},
        count(*) over copies as _source_rows,
        cast(sum(_row_hash) over copies % 18446744073709551616 as ubigint) as _source_hash
{%- endset %}
{%- set salt = local_md5(rebuild) %}
with source_rows as (
    select *, hash(t, '{{ salt }}') as _row_hash from {{ source('pseudonymised', source_name) }} as t
),
{% if is_incremental() %}
changed_months as (
    select extract_month
    from (select extract_month, count(*) as n, sum(_row_hash) % 18446744073709551616 as h
          from source_rows group by 1) as now
    full outer join (select extract_month, sum(_source_rows) as n, sum(_source_hash) % 18446744073709551616 as h
                     from {{ this }} group by 1) as built using (extract_month)
    where now.n is distinct from built.n or now.h is distinct from built.h
),
records_to_rebuild as (
    select distinct source, cast(record_id as varchar) as record_id from source_rows
    where extract_month in (select extract_month from changed_months)
    union
    select source, record_id from {{ this }} where extract_month in (select extract_month from changed_months)
),
{% endif %}
versions as (
    {{ rebuild }}
    from source_rows
    {% if is_incremental() %}
    where (source, cast(record_id as varchar)) in (select (source, record_id) from records_to_rebuild)
    {% endif %}
    window copies as (partition by source, record_id, extract_month)
    -- a deterministic pick: the physical order of the rows differs between writes of the same month
    qualify row_number() over (partition by source, record_id, extract_month
                               order by event_date desc nulls last, _row_number desc nulls last, _row_hash) = 1
)

select
    *,
    min(arrived_on) over (partition by source, event_key order by extract_month
                          rows between 1 following and unbounded following) as superseded_on
from versions
{% endmacro %}


{#- After an incremental build: the versions whose source row is gone (a month re-sent without them). A record
    with some version left was rebuilt whole; one with none left has no new rows to replace its old ones. -#}
{% macro delete_vanished_records(relation, source_relation) %}
{% if is_incremental() %}
delete from {{ relation }} as built
where not exists (
    select 1 from {{ source_relation }} as s
    where s.source = built.source and cast(s.record_id as varchar) = built.record_id
      and s.extract_month = built.extract_month)
{% endif %}
{% endmacro %}
