{#-
  row_hash_incremental(rows)

  The end of an incremental model whose rows are cheap to compute but costly to write: call it right after the
  model's last CTE, `rows` (the name of a CTE or relation giving every row of the model now); it emits the rest
  of the query (a CTE `rows_now` and the final select). Config beside it:
      materialized='incremental', incremental_strategy='replace_records', unique_key=[<record key columns>],
      on_schema_change='sync_all_columns'

  Each row carries `_row_hash`, DuckDB's hash of the row's other columns, salted with the model's code less its
  Jinja comments (`code_fingerprint()`): any change of the model's SQL changes every hash, an edit of its
  comments none. On an incremental build every row now is hashed and the hashes are joined to the table's on
  the hash alone: a row found on one side only names its record (its unique_key) as changed. The final select gives every row now of the changed records,
  and the key alone (every other column null, `_row_hash` null) of a changed record with no row left; strategy
  `replace_records` (macros/replace_records.sql) deletes every table row of those records and inserts the rows.
  A full build (or the first) selects every row. The result equals a full build if:
    - the rows are distinct (a row repeated would match its one copy in the table through the hash join alone),
      e.g. the model has a unique combination of columns;
    - rebuilding all rows now of a changed key is right: the key groups rows, it need not be unique;
    - the key columns are never null (the strategy deletes by equality).
  A table built before `_row_hash` existed compares unequal everywhere: every record is rebuilt.
  Any change of the model's SQL changes every hash and rebuilds every record (`--full-refresh` is cheaper then).
-#}
{% macro row_hash_incremental(rows) %}
{%- set salt = code_fingerprint() -%}
{%- set unique_key = config.get('unique_key') -%}
{%- set unique_key = [unique_key] if unique_key is string else unique_key -%}
{%- set key = unique_key | join(', ') -%}
{%- set hashed_before = is_incremental()
        and '_row_hash' in (adapter.get_columns_in_relation(this) | map(attribute='name') | list) -%}
rows_now as {% if is_incremental() %}materialized {% endif %}(
    select {{ rows }}.*, hash({{ rows }}, '{{ salt }}') as _row_hash from {{ rows }}
)

{% if is_incremental() %}
,
changed_records as (
    select distinct
        {%- for column in unique_key %}
        coalesce(now.{{ column }}, built.{{ column }}) as {{ column }}{{ ',' if not loop.last }}
        {%- endfor %}
    from rows_now as now
    full outer join (
        select {{ key }}, {{ '_row_hash' if hashed_before else 'cast(null as ubigint) as _row_hash' }}
        from {{ this }}
    ) as built on now._row_hash = built._row_hash
    where now._row_hash is null or built._row_hash is null
)

select rows_now.* from rows_now semi join changed_records using ({{ key }})
-- a changed record with no row left: its key alone (every other column null), so that its rows are deleted
union all by name
select {{ key }} from changed_records anti join rows_now using ({{ key }})
{% else %}
select * from rows_now
{% endif %}
{% endmacro %}

{#- The md5 of the calling model's code without its Jinja comments (never part of the SQL): editing a model's
    header leaves its row hashes as they were (each edit had rebuilt every record, at 1.5M residents
    9 s more for dbt and 22 s more for the privacy audit, reading the rewritten rows again, in a month). -#}
{% macro code_fingerprint() %}
{{- return(local_md5(modules.re.sub('[{]#.*?#[}]', '', model.raw_code, flags=modules.re.DOTALL))) -}}
{% endmacro %}
