-- Facts point at the product version in force at their time: the version's
-- product_id is the fact's, and its validity covers the event / order time.
select 'fact_event' as fact, f.event_id as id, f.product_id, p.product_id as version_product, f.event_ts as ts, p.valid_from, p.valid_to
from {{ ref('fact_event') }} f
join {{ ref('dim_product') }} p on p.product_sk = f.product_sk
where f.product_id is not null
  and p.source = 'raw.products'
  and (p.product_id <> f.product_id or not (f.event_ts >= p.valid_from and f.event_ts < p.valid_to))
union all
select 'fact_order', f.order_id || '#' || f.line_no, f.product_id, p.product_id, f.placed_at, p.valid_from, p.valid_to
from {{ ref('fact_order') }} f
join {{ ref('dim_product') }} p on p.product_sk = f.product_sk
where p.source = 'raw.products'
  and (p.product_id <> f.product_id or not (f.placed_at >= p.valid_from and f.placed_at < p.valid_to))
