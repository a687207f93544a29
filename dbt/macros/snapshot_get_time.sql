{#
  dbt-postgres returns snapshot times as `timestamp without time zone`, while
  every logpipe timestamp (raw.products.updated_at included) is timestamptz.
  The snapshot's version bounds come from updated_at; this override keeps the
  few times dbt itself stamps (e.g. hard-delete handling) the same type, so
  the snapshot never mixes the two (dbt warns about the mismatch otherwise).
#}
{% macro postgres__snapshot_get_time() -%}
    now()
{%- endmacro %}
