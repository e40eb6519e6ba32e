{#-
  Incremental strategy `replace_records` (the models of macros/row_hash_incremental.sql): every record (the
  model's unique_key) that has a row among the new rows loses all its rows in the table and gets those of its
  new rows whose `_row_hash` is not null. A new row with a null `_row_hash` only names a record to delete (it
  has no row left); dbt's own delete+insert would keep such a record.
-#}
{% macro get_incremental_replace_records_sql(arg_dict) %}
{%- set target = arg_dict['target_relation'] -%}
{%- set new_rows = arg_dict['temp_relation'] -%}
{%- set unique_key = arg_dict['unique_key'] -%}
{%- set unique_key = [unique_key] if unique_key is string else unique_key -%}
{%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
delete from {{ target }} as built
using (select distinct {{ unique_key | join(', ') }} from {{ new_rows }}) as records
where {% for key in unique_key %}built.{{ key }} = records.{{ key }}{{ ' and ' if not loop.last }}{% endfor %};

insert into {{ target }} ({{ columns }})
select {{ columns }} from {{ new_rows }} where _row_hash is not null
{% endmacro %}
