{{
  config(
    materialized='incremental',
    incremental_strategy='merge',
    unique_key='event_sk',
    on_schema_change='append_new_columns',
    indexes=[
      {'columns': ['event_sk'], 'unique': True},
      {'columns': ['event_ts']},
      {'columns': ['_loaded_at']},
      {'columns': ['session_id']},
    ]
  )
}}
-- One row per event, all seven types, with keys to the user, the product
-- version in force at the event's time, and the day; unknown / not-applicable
-- members instead of null keys. Incremental and idempotent: each run merges
-- (on event_sk = md5(event_id)) the raw rows loaded since the last run, with
-- two lookback windows:
--   * load_lookback: rows loaded shortly before the watermark (a load that
--     committed late) are read again;
--   * event_lookback: events after a product version that started recently
--     are re-keyed, in case their rows were loaded before the snapshot saw
--     the change.
-- Re-merging a row rewrites it with the same values, so a rerun is a no-op.
with events as (
    select *
    from {{ ref('stg_events') }} e
    {% if is_incremental() %}
    where e.loaded_at >= (
            select coalesce(max(_loaded_at), '-infinity'::timestamptz)
                   - interval '{{ var("load_lookback") }}'
            from {{ this }}
        )
       or e.event_ts >= (
            select coalesce(min(p.valid_from), 'infinity'::timestamptz)
            from {{ ref('dim_product') }} p
            where p.version_no > 1
              and p.valid_from >= (
                    select coalesce(max(event_ts), '-infinity'::timestamptz)
                           - interval '{{ var("event_lookback") }}'
                    from {{ this }}
                )
        )
    {% endif %}
)

select
    {{ sk(['e.event_id']) }}                                   as event_sk,
    e.event_id,
    coalesce(u.user_sk, {{ unknown_sk() }})                    as user_sk,
    case
        when e.product_id is null then {{ not_applicable_sk() }}
        else coalesce(p.product_sk, {{ unknown_sk() }})
    end                                                        as product_sk,
    {{ sk(["to_char(e.event_date, 'YYYY-MM-DD')"]) }}          as date_sk,
    e.event_ts,
    e.event_date,
    e.event_type,
    e.level,
    e.service,
    e.user_id,
    e.session_id,
    e.device_type,
    e.geo_country,
    e.geo_city,
    e.response_time_ms,
    e.product_id,
    e.quantity,
    e.unit_price,
    e.order_id,
    e.amount,
    e.payment_method,
    e.search_query,
    e.results_count,
    e.error_code,
    e.error_message,
    e.http_status,
    e.loaded_at                                                as _loaded_at
from events e
left join {{ ref('dim_users') }} u
    on u.user_id = e.user_id
left join {{ ref('dim_product') }} p
    on p.product_id = e.product_id
   and e.event_ts >= p.valid_from
   and e.event_ts < p.valid_to
