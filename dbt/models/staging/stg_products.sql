-- One row per catalog product with its current price and stock, typed.
-- `updated_at` is when these values took effect (the snapshot's version start).
select
    product_id,
    name                       as product_name,
    category,
    subcategory,
    brand,
    description,
    price::numeric(12, 2)      as price,
    stock::integer             as stock,
    rating::numeric(2, 1)      as rating,
    weight,
    date_added::date           as date_added,
    updated_at::timestamptz    as updated_at
from {{ source('raw', 'products') }}
