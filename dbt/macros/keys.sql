{#
  Surrogate keys: md5 of the natural key's text, so the same input gives the
  same key in every pipeline and on every rebuild (no sequences, no load
  times). Parts are joined with '|' and nulls spelled out, so ('a','bc') and
  ('ab','c') never collide.
#}
{% macro sk(parts) -%}
    md5(
    {%- for p in parts -%}
        coalesce(cast({{ p }} as text), '~null')
        {%- if not loop.last %} || '|' || {% endif -%}
    {%- endfor -%}
    )
{%- endmacro %}

{# The dimension row that stands for "the key is set but not in the dimension". #}
{% macro unknown_sk() -%}
    md5('~unknown')
{%- endmacro %}

{# The dimension row that stands for "this fact has no such key" (e.g. a search has no product). #}
{% macro not_applicable_sk() -%}
    md5('~n/a')
{%- endmacro %}

{# The UTC calendar day of a timestamptz, whatever the session time zone. #}
{% macro utc_date(ts) -%}
    (({{ ts }}) at time zone 'UTC')::date
{%- endmacro %}
