-- Daily sales by product category (grain: day placed x category x
-- subcategory), from order lines joined to the product version in force when
-- the order was placed. `orders_*` count the orders holding at least one line
-- of the category, so they do not add up across categories; units and
-- amounts do.
select
    {{ sk(["to_char(f.placed_date, 'YYYY-MM-DD')"]) }}                        as date_sk,
    f.placed_date                                                              as date_day,
    p.category,
    p.subcategory,
    count(distinct f.order_id)                                                 as orders_placed,
    count(distinct f.order_id) filter (where f.status = 'completed')            as orders_completed,
    sum(f.quantity)                                                            as units_placed,
    coalesce(sum(f.quantity) filter (where f.status = 'completed'), 0)          as units_sold,
    sum(f.amount)::numeric(14, 2)                                              as placed_amount,
    coalesce(sum(f.amount) filter (where f.status = 'completed'), 0)::numeric(14, 2) as revenue
from {{ ref('fact_order') }} f
join {{ ref('dim_product') }} p on p.product_sk = f.product_sk
group by f.placed_date, p.category, p.subcategory
