{#
  The keys an incremental fact must (re)build on this run, as one query over
  stg_events returning one column, `key`. The facts merge on their surrogate
  key and re-merging writes the same values, so naming a key too many is
  harmless; missing one is not. Three sets, unioned:

    * not in the fact yet: an anti-join on `key`, whatever the row's load
      time or transaction order (nothing is missed if loads interleave);
    * changed since the last run: events loaded after the fact's newest
      `_loaded_at`, minus var('load_lookback') (a backfill reloads raw rows,
      a settling event changes its order);
    * re-keyed to a new product version: events at or after the start of a
      product version (version_no > 1) that began within var('event_lookback')
      of the fact's newest `time_column`, so they join that version even if
      they were loaded before the snapshot saw the change.

  `row_events` and `change_events` are SQL predicates on stg_events aliased
  `s`: the events that make a fact row (their event_ts is the row's
  `time_column`) and the events whose (re)load changes a row.

  Only for the incremental branch (`{% if is_incremental() %}`): it reads
  {{ this }}. dbt parses that branch as not incremental, so the model must
  ref stg_events and dim_product outside it too (or say `-- depends_on:`).
#}
{% macro incremental_keys(key, time_column, row_events='true', change_events='true') %}
with watermark as (
    select
        coalesce(max(_loaded_at), '-infinity'::timestamptz)
            - interval '{{ var("load_lookback") }}'                   as loaded_since,
        coalesce(max({{ time_column }}), '-infinity'::timestamptz)
            - interval '{{ var("event_lookback") }}'                  as recent_ts
    from {{ this }}
),

rekey as (
    select coalesce(min(p.valid_from), 'infinity'::timestamptz) as rekey_from
    from {{ ref('dim_product') }} p, watermark w
    where p.version_no > 1 and p.valid_from >= w.recent_ts
)

select s.{{ key }}
from {{ ref('stg_events') }} s
where ({{ row_events }})
  and not exists (select 1 from {{ this }} f where f.{{ key }} = s.{{ key }})
union
select s.{{ key }}
from {{ ref('stg_events') }} s, watermark w
where ({{ change_events }})
  and s.loaded_at > w.loaded_since
union
select s.{{ key }}
from {{ ref('stg_events') }} s, rekey r
where ({{ row_events }})
  and s.event_ts >= r.rekey_from
{% endmacro %}
