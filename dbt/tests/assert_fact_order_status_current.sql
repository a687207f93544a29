-- Every order line in the incremental fact carries its order's current
-- status and every placed order has its lines there (pending orders must
-- move to completed / failed when their settling event arrives).
with fact as (
    select order_id, min(status) as status, max(status) as max_status, count(*) as lines
    from {{ ref('fact_order') }}
    group by order_id
)

select o.order_id, o.status as staged_status, f.status as fact_status, f.max_status
from {{ ref('int_orders') }} o
full outer join fact f on f.order_id = o.order_id
where (o.has_purchase and o.line_count > 0 and f.order_id is null)
   or (f.order_id is not null and o.order_id is null)
   or f.status is distinct from f.max_status
   or (f.order_id is not null and f.status is distinct from o.status)
