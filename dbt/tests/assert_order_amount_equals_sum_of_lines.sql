-- An order's amount equals the sum of quantity x unit_price over its lines,
-- to the cent. Returns the orders where it does not (and orders without lines).
with lines as (
    select purchase_event_id, sum(line_amount) as lines_amount, count(*) as lines
    from {{ ref('int_order_lines') }}
    group by purchase_event_id
)

select o.order_id, o.amount, l.lines_amount, l.lines
from {{ ref('int_orders') }} o
left join lines l on l.purchase_event_id = o.purchase_event_id
where o.has_purchase
  and (l.lines is null or o.amount is distinct from l.lines_amount)
