{#
  Models land in the schema their folder configures (staging, intermediate, features), exactly: no
  `<target schema>_` prefix, so that `features.child_features` in warehouse.duckdb is the Dagster asset
  ["features", "child_features"]. A model without a configured schema lands in the target's schema (main).
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
