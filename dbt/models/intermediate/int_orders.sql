-- One row per order, assembled from its events: the `purchase` that placed it
-- (lines, amount, payment method) and, later, an `order_complete` or an
-- `order_failed` that settles it. No settling event yet means `pending`.
-- An order with both settling events (which the generator never makes) is
-- reported as `completed` here and caught by the singular test
-- assert_order_settled_once.
with order_events as (
    select *
    from {{ ref('stg_events') }}
    where event_type in ('purchase', 'order_complete', 'order_failed')
      and order_id is not null
),

purchases as (
    -- One purchase per order; if a producer ever re-sent one under a new
    -- event_id, the earliest wins (ties broken by event_id, never by row order).
    select distinct on (order_id)
        order_id,
        event_id            as purchase_event_id,
        event_ts            as placed_at,
        event_date          as placed_date,
        user_id,
        session_id,
        device_type,
        geo_country,
        geo_city,
        payment_method,
        shipping_address,
        amount,
        items_json,
        max(loaded_at) over (partition by order_id)     as purchase_loaded_at
    from order_events
    where event_type = 'purchase'
    order by order_id, event_ts, event_id
),

settlements as (
    select
        order_id,
        min(event_ts) filter (where event_type = 'order_complete')           as completed_event_ts,
        min(coalesce(completed_at, event_ts)) filter (where event_type = 'order_complete') as completed_at,
        min(event_ts) filter (where event_type = 'order_failed')             as failed_event_ts,
        min(coalesce(failed_at, event_ts)) filter (where event_type = 'order_failed') as failed_at,
        min(shipping_method) filter (where event_type = 'order_complete')    as shipping_method,
        min(delivery_estimate) filter (where event_type = 'order_complete')  as delivery_estimate,
        min(failure_reason) filter (where event_type = 'order_failed')       as failure_reason,
        count(*) filter (where event_type = 'order_complete')                as complete_events,
        count(*) filter (where event_type = 'order_failed')                  as failed_events,
        -- identity of an order seen only through its settling event
        min(user_id)                                                          as settled_user_id,
        min(event_ts)                                                         as first_settled_ts,
        max(loaded_at)                                                        as settled_loaded_at
    from order_events
    where event_type in ('order_complete', 'order_failed')
    group by order_id
)

select
    coalesce(p.order_id, s.order_id)                          as order_id,
    p.purchase_event_id,
    coalesce(p.user_id, s.settled_user_id)                    as user_id,
    p.session_id,
    p.device_type,
    p.geo_country,
    p.geo_city,
    p.placed_at,
    p.placed_date,
    p.payment_method,
    p.shipping_address,
    p.amount::numeric(12, 2)                                  as amount,
    p.items_json                                              as items,
    case when jsonb_typeof(p.items_json) = 'array'
         then jsonb_array_length(p.items_json) else 0 end     as line_count,
    case
        when coalesce(s.complete_events, 0) > 0 then 'completed'
        when coalesce(s.failed_events, 0) > 0 then 'failed'
        else 'pending'
    end                                                       as status,
    case
        when coalesce(s.complete_events, 0) > 0 then s.completed_at
        when coalesce(s.failed_events, 0) > 0 then s.failed_at
    end                                                       as status_at,
    s.completed_at,
    s.failed_at,
    s.shipping_method,
    s.delivery_estimate,
    s.failure_reason,
    coalesce(s.complete_events, 0)                            as complete_events,
    coalesce(s.failed_events, 0)                              as failed_events,
    (p.order_id is not null)                                  as has_purchase,
    greatest(p.purchase_loaded_at, s.settled_loaded_at)       as last_loaded_at
from purchases p
full outer join settlements s on s.order_id = p.order_id
