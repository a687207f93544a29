{#
  The read-only BI role reads schema `bi` only (pipeline/migrations/
  055_bi_masking.sql): one view per star and report model, of the same name
  and columns (bookkeeping columns starting with "_" left out), with personal
  data masked in the warehouse:

    * `email`            -> first letter, "***", then the domain
                            (joshua.williams@example.com -> j***@example.com)
    * `shipping_address` -> null (a street address)

  unless ops.bi_policy.pii = 'full' (LOGPIPE_BI_PII=full; migrate writes it on
  every start, and the views read it at query time, so no dbt run is needed
  to switch). The views run with their owner's privileges, so the BI role
  needs no access to `analytics` or `ops`.

  Run as a post-hook of every star and report model (dbt_project.yml), inside
  the transaction that builds the model: the view is dropped and recreated on
  the new table before dbt drops the old one (with CASCADE), so it never goes
  missing while Power BI reads it, and a column added to a model appears in
  its view on the next run.
#}
{% macro bi_column(name) -%}
    {%- set full = "(select pii from ops.bi_policy) = 'full'" -%}
    {%- if name == 'email' -%}
        case
            when {{ full }} then email
            when strpos(email, '@') > 0 then left(email, 1) || '***' || substr(email, strpos(email, '@'))
            when email is not null then '***'
        end
    {%- elif name == 'shipping_address' -%}
        case when {{ full }} then shipping_address end
    {%- else -%}
        {{ adapter.quote(name) }}
    {%- endif -%}
{%- endmacro %}

{% macro bi_view() %}
    {%- if execute -%}
        {%- set view = adapter.quote('bi') ~ '.' ~ adapter.quote(this.identifier) -%}
        {%- set columns = adapter.get_columns_in_relation(this) -%}
        drop view if exists {{ view }};
        create view {{ view }} as
        select
        {%- for c in columns if not c.name.startswith('_') %}
            {{ bi_column(c.name) }} as {{ adapter.quote(c.name) }}{{ "," if not loop.last }}
        {%- endfor %}
        from {{ this }};
        comment on view {{ view }} is 'Masked view of analytics.{{ this.identifier }} for the read-only BI role (dbt macro bi_view).'
    {%- else -%}
        select 1
    {%- endif -%}
{% endmacro %}
