-- One row per order line: the `items_json` array of each purchase event
-- unnested in its original order (line_no 1..n). line_amount = quantity x
-- unit_price, exact in numeric(12,2). Keyed by the purchase event, so
-- int_orders picks which purchase is the order's (see there).
select
    e.event_id                                                      as purchase_event_id,
    e.order_id,
    item.ordinality::integer                                        as line_no,
    item.value ->> 'product_id'                                     as product_id,
    (item.value ->> 'quantity')::integer                            as quantity,
    (item.value ->> 'unit_price')::numeric(12, 2)                   as unit_price,
    ((item.value ->> 'quantity')::integer
        * (item.value ->> 'unit_price')::numeric(12, 2))::numeric(12, 2) as line_amount
from {{ ref('stg_events') }} e
cross join lateral jsonb_array_elements(e.items_json) with ordinality as item(value, ordinality)
where e.event_type = 'purchase'
  and e.order_id is not null
  and jsonb_typeof(e.items_json) = 'array'
