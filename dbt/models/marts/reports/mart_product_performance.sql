-- One row per catalog product (current version) with its funnel over all
-- time: views, add-to-carts, orders, units, revenue, conversion rates, and
-- its price history from dim_product (how many versions, first / lowest /
-- highest / current price, when the price last changed).
with interactions as (
    select
        product_id,
        count(*) filter (where event_type = 'product_view')          as views,
        count(*) filter (where event_type = 'add_to_cart')           as add_to_carts,
        count(distinct session_id) filter (where event_type = 'product_view') as viewing_sessions
    from {{ ref('fact_event') }}
    where product_id is not null
      and event_type in ('product_view', 'add_to_cart')
    group by product_id
),

sales as (
    select
        product_id,
        count(distinct order_id)                                        as orders_placed,
        count(distinct order_id) filter (where status = 'completed')    as orders_completed,
        sum(quantity)                                                   as units_placed,
        coalesce(sum(quantity) filter (where status = 'completed'), 0)  as units_sold,
        coalesce(sum(amount) filter (where status = 'completed'), 0)    as revenue
    from {{ ref('fact_order') }}
    group by product_id
),

price_history as (
    select
        product_id,
        count(*)                                                        as price_versions,
        (array_agg(price order by version_no))[1]                       as first_price,
        min(price)                                                      as min_price,
        max(price)                                                      as max_price,
        max(valid_from) filter (where version_no > 1)                   as price_changed_at
    from {{ ref('dim_product') }}
    where source = 'raw.products'
    group by product_id
)

select
    d.product_sk,
    d.product_id,
    d.product_name,
    d.category,
    d.subcategory,
    d.brand,
    d.price                                                             as current_price,
    d.stock                                                             as current_stock,
    d.rating,
    coalesce(i.views, 0)                                                as views,
    coalesce(i.viewing_sessions, 0)                                     as viewing_sessions,
    coalesce(i.add_to_carts, 0)                                         as add_to_carts,
    coalesce(s.orders_placed, 0)                                        as orders_placed,
    coalesce(s.orders_completed, 0)                                     as orders_completed,
    coalesce(s.units_placed, 0)                                         as units_placed,
    coalesce(s.units_sold, 0)                                           as units_sold,
    coalesce(s.revenue, 0)::numeric(14, 2)                              as revenue,
    round(coalesce(i.add_to_carts, 0)::numeric / nullif(i.views, 0), 4)  as view_to_cart_rate,
    round(coalesce(s.orders_placed, 0)::numeric / nullif(i.add_to_carts, 0), 4) as cart_to_order_rate,
    round(coalesce(s.orders_placed, 0)::numeric / nullif(i.views, 0), 4) as view_to_order_rate,
    ph.price_versions,
    ph.first_price,
    ph.min_price,
    ph.max_price,
    ph.price_changed_at
from {{ ref('dim_product') }} d
join price_history ph on ph.product_id = d.product_id
left join interactions i on i.product_id = d.product_id
left join sales s on s.product_id = d.product_id
where d.is_current and d.source = 'raw.products'
