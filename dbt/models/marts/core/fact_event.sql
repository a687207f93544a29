{{
  config(
    materialized='incremental',
    incremental_strategy='merge',
    unique_key='event_sk',
    on_schema_change='append_new_columns',
    indexes=[
      {'columns': ['event_sk'], 'unique': True},
      {'columns': ['event_id'], 'unique': True},
      {'columns': ['event_ts']},
      {'columns': ['_loaded_at']},
      {'columns': ['session_id']},
    ]
  )
}}
-- One row per event, all seven types, with keys to the user, the product
-- version in force at the event's time, and the day; unknown / not-applicable
-- members instead of null keys. Incremental and idempotent: each run merges
-- (on event_sk = md5(event_id)) exactly the events that need it, the ones
-- macros/incremental_keys.sql names: events not in the fact yet, events
-- loaded since the fact's last load time, and events after a recent product
-- version. Re-merging a row writes the same values, so a rerun changes nothing.
{% if is_incremental() %}
with todo as (
    {{ incremental_keys('event_id', 'event_ts') }}
),

events as (
    select e.*
    from {{ ref('stg_events') }} e
    join todo using (event_id)
)
{% else %}
with events as (
    select * from {{ ref('stg_events') }}
)
{% endif %}

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
