{{
  config(
    materialized='incremental',
    incremental_strategy='merge',
    unique_key='order_line_sk',
    on_schema_change='append_new_columns',
    indexes=[
      {'columns': ['order_line_sk'], 'unique': True},
      {'columns': ['order_id']},
      {'columns': ['_loaded_at']},
    ]
  )
}}
-- depends_on: {{ ref('stg_events') }}
-- One row per order line (grain: order_id x line_no). The order's status is
-- completed / failed / pending from its later events, so an incremental run
-- recomputes every order any newly loaded purchase, order_complete or
-- order_failed event belongs to, and merges its lines on
-- order_line_sk = md5(order_id | line_no). Lines join the product version in
-- force when the order was placed. Unknown members instead of null keys.
with
{% if is_incremental() %}
touched as (
    -- orders placed, settled or reloaded since the last run, not in the fact
    -- yet, or placed after a recent product version (re-key their lines)
    {{ incremental_keys(
        'order_id', 'placed_at',
        row_events="s.event_type = 'purchase' and s.order_id is not null",
        change_events="s.event_type in ('purchase', 'order_complete', 'order_failed') and s.order_id is not null"
    ) }}
),
{% endif %}

orders as (
    select o.*
    from {{ ref('int_orders') }} o
    where o.has_purchase
    {% if is_incremental() %}
      and o.order_id in (select order_id from touched)
    {% endif %}
)

select
    {{ sk(['l.order_id', 'l.line_no']) }}                      as order_line_sk,
    {{ sk(['o.order_id']) }}                                   as order_sk,
    o.order_id,
    l.line_no,
    coalesce(u.user_sk, {{ unknown_sk() }})                    as user_sk,
    case
        when l.product_id is null then {{ not_applicable_sk() }}
        else coalesce(p.product_sk, {{ unknown_sk() }})
    end                                                        as product_sk,
    {{ sk(["to_char(o.placed_date, 'YYYY-MM-DD')"]) }}         as date_sk,
    o.placed_at,
    o.placed_date,
    o.user_id,
    o.session_id,
    o.device_type,
    o.geo_country,
    o.geo_city,
    l.product_id,
    l.quantity,
    l.unit_price,
    l.line_amount                                              as amount,
    o.payment_method,
    o.shipping_method,
    -- personal data: the BI role sees it only with LOGPIPE_BI_PII=full (macros/bi_view.sql)
    o.shipping_address,
    o.status,
    o.status_at,
    o.failure_reason,
    o.last_loaded_at                                           as _loaded_at
from orders o
join {{ ref('int_order_lines') }} l
    on l.purchase_event_id = o.purchase_event_id
left join {{ ref('dim_users') }} u
    on u.user_id = o.user_id
left join {{ ref('dim_product') }} p
    on p.product_id = l.product_id
   and o.placed_at >= p.valid_from
   and o.placed_at < p.valid_to
