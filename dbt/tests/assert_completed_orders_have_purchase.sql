-- Every completed (or failed) order has the purchase event that placed it.
-- Returns settled orders whose purchase was never seen.
select order_id, status, complete_events, failed_events
from {{ ref('int_orders') }}
where not has_purchase
