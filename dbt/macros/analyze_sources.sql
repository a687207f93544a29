{#
  ANALYZE the raw tables before models read them (on-run-start), so plans
  use real row counts right after a bulk load. ANALYZE samples a fixed number
  of rows, so this costs well under a second even at millions of events.
  Skipped for commands that build nothing (parse, compile, docs).
#}
{% macro analyze_sources() %}
    {% if execute and flags.WHICH in ['build', 'run', 'snapshot', 'test', 'seed', 'retry'] %}
        {% for t in ['events', 'users', 'products', 'load_ledger'] %}
            {% do run_query('analyze ' ~ source('raw', t)) %}
        {% endfor %}
    {% endif %}
    select 1
{% endmacro %}
