{#
  dbt's default appends a custom schema to the target schema
  ("analytics_staging"). logpipe keeps every layer in the one schema the BI
  role is granted, so a custom schema is used as-is, and no custom schema
  means the target's schema.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema | trim }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
