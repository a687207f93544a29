{#
  Generic test: the combination of `columns` is unique in the model (what
  dbt_utils.unique_combination_of_columns does; logpipe uses no hub packages
  because `dbt deps` cannot reach the hub here).
#}
{% test unique_combination(model, columns) %}
select {{ columns | join(', ') }}, count(*) as n
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}

{# Generic test: every row satisfies the SQL boolean `expression` (rows where it is false are failures; null counts as a failure too). #}
{% test expression_is_true(model, expression, column_name=none) %}
select *
from {{ model }}
where not coalesce(({{ expression }}), false)
{% endtest %}
