-- Type-2 product dimension from the cdc_product snapshot: one row per product
-- version with valid_from / valid_to / is_current, so a fact joins the
-- version in force at its event's time (valid_from <= ts < valid_to).
--
-- The first version of a product is stretched back to var('scd_floor'), so
-- an event older than the first snapshot joins the earliest known version
-- rather than the unknown member; the current version runs to
-- var('scd_ceiling'). product_sk = md5(product_id | version_no): stable
-- across rebuilds and pipelines fed the same catalog history.
with versions as (
    select
        product_id,
        row_number() over (
            partition by product_id order by dbt_valid_from, dbt_scd_id
        )                                                   as version_no,
        product_name,
        category,
        subcategory,
        brand,
        description,
        price,
        stock,
        rating,
        weight,
        date_added,
        dbt_valid_from,
        dbt_valid_to
    from {{ ref('cdc_product') }}
)

select
    {{ sk(['product_id', 'version_no']) }}                  as product_sk,
    product_id,
    version_no::integer                                     as version_no,
    product_name,
    category,
    subcategory,
    brand,
    description,
    price::numeric(12, 2)                                   as price,
    stock::integer                                          as stock,
    rating::numeric(2, 1)                                   as rating,
    weight,
    date_added,
    case when version_no = 1 then '{{ var("scd_floor") }}'::timestamptz
         else dbt_valid_from end                            as valid_from,
    coalesce(dbt_valid_to, '{{ var("scd_ceiling") }}'::timestamptz) as valid_to,
    (dbt_valid_to is null)                                  as is_current,
    dbt_valid_from                                          as captured_from,
    'raw.products'                                          as source
from versions

union all

select
    {{ unknown_sk() }}, '~unknown', 1, 'Unknown product', 'Unknown', 'Unknown', 'Unknown',
    null, null, null, null, null, null,
    '{{ var("scd_floor") }}'::timestamptz, '{{ var("scd_ceiling") }}'::timestamptz, true, null,
    'unknown member'

union all

select
    {{ not_applicable_sk() }}, '~n/a', 1, 'No product', 'n/a', 'n/a', 'n/a',
    null, null, null, null, null, null,
    '{{ var("scd_floor") }}'::timestamptz, '{{ var("scd_ceiling") }}'::timestamptz, true, null,
    'not applicable member'
