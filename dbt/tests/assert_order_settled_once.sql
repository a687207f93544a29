-- An order is settled at most once: never both completed and failed, never
-- two completions or two failures.
select order_id, complete_events, failed_events
from {{ ref('int_orders') }}
where complete_events + failed_events > 1
