-- The sales marts add up to the fact: revenue and order counts by status in
-- mart_daily_sales, and revenue in mart_daily_category_sales, equal the
-- same sums straight over fact_order. Returns one row per mismatch.
with fact as (
    select
        coalesce(sum(amount) filter (where status = 'completed'), 0)  as revenue,
        count(distinct order_id) filter (where status = 'completed')  as completed,
        count(distinct order_id) filter (where status = 'failed')     as failed,
        count(distinct order_id) filter (where status = 'pending')    as pending,
        coalesce(sum(amount), 0)                                      as placed_amount
    from {{ ref('fact_order') }}
),

sales as (
    select
        coalesce(sum(revenue), 0)          as revenue,
        coalesce(sum(orders_completed), 0) as completed,
        coalesce(sum(orders_failed), 0)    as failed,
        coalesce(sum(orders_pending), 0)   as pending,
        coalesce(sum(placed_amount), 0)    as placed_amount
    from {{ ref('mart_daily_sales') }}
),

categories as (
    select coalesce(sum(revenue), 0) as revenue
    from {{ ref('mart_daily_category_sales') }}
)

select 'mart_daily_sales.revenue' as measure, f.revenue::text as fact, s.revenue::text as mart
from fact f, sales s where f.revenue <> s.revenue
union all
select 'mart_daily_sales.orders_completed', f.completed::text, s.completed::text
from fact f, sales s where f.completed <> s.completed
union all
select 'mart_daily_sales.orders_failed', f.failed::text, s.failed::text
from fact f, sales s where f.failed <> s.failed
union all
select 'mart_daily_sales.orders_pending', f.pending::text, s.pending::text
from fact f, sales s where f.pending <> s.pending
union all
select 'mart_daily_sales.placed_amount', f.placed_amount::text, s.placed_amount::text
from fact f, sales s where f.placed_amount <> s.placed_amount
union all
select 'mart_daily_category_sales.revenue', f.revenue::text, c.revenue::text
from fact f, categories c where f.revenue <> c.revenue
