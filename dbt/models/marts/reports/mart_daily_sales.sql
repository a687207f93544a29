-- Daily sales by payment method and country (grain: the UTC day the order
-- was placed x payment_method x geo_country). Order counts are additive
-- across rows (an order has one day, one payment method, one country).
-- Revenue counts completed orders only; placed_amount counts every order.
with orders as (
    select
        order_id,
        placed_date,
        payment_method,
        geo_country,
        status,
        sum(quantity)    as units,
        sum(amount)      as order_amount
    from {{ ref('fact_order') }}
    group by order_id, placed_date, payment_method, geo_country, status
)

select
    {{ sk(["to_char(placed_date, 'YYYY-MM-DD')"]) }}                 as date_sk,
    placed_date                                                        as date_day,
    payment_method,
    geo_country,
    count(*)                                                           as orders_placed,
    count(*) filter (where status = 'completed')                        as orders_completed,
    count(*) filter (where status = 'failed')                           as orders_failed,
    count(*) filter (where status = 'pending')                          as orders_pending,
    sum(units)                                                         as units_placed,
    coalesce(sum(units) filter (where status = 'completed'), 0)         as units_sold,
    sum(order_amount)::numeric(14, 2)                                  as placed_amount,
    coalesce(sum(order_amount) filter (where status = 'completed'), 0)::numeric(14, 2) as revenue,
    coalesce(sum(order_amount) filter (where status = 'failed'), 0)::numeric(14, 2)    as failed_amount,
    round(
        coalesce(sum(order_amount) filter (where status = 'completed'), 0)
        / nullif(count(*) filter (where status = 'completed'), 0), 2
    )::numeric(12, 2)                                                  as avg_order_value
from orders
group by placed_date, payment_method, geo_country
