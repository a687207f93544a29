-- One row per session: who, where, on what device, when it started and
-- ended, how long it lasted, how many events of each kind it held, how far
-- down the funnel it got (product_view -> add_to_cart -> purchase ->
-- order_complete), and whether it was the user's first session (new) or not
-- (returning). Ties are broken by session_id, never by row order.
with sessions as (
    select
        session_id,
        min(user_id)                                                 as user_id,
        min(user_sk)                                                 as user_sk,
        min(device_type)                                             as device_type,
        min(geo_country)                                             as geo_country,
        min(geo_city)                                                as geo_city,
        min(event_ts)                                                as started_at,
        max(event_ts)                                                as ended_at,
        count(*)                                                     as events,
        count(*) filter (where event_type = 'product_view')          as product_views,
        count(*) filter (where event_type = 'search')                as searches,
        count(*) filter (where event_type = 'add_to_cart')           as add_to_carts,
        count(*) filter (where event_type = 'purchase')              as purchases,
        count(*) filter (where event_type = 'order_complete')        as orders_completed,
        count(*) filter (where event_type = 'order_failed')          as orders_failed,
        count(*) filter (where event_type = 'error')                 as errors,
        coalesce(sum(amount) filter (where event_type = 'purchase'), 0)::numeric(14, 2) as purchase_amount
    from {{ ref('fact_event') }}
    group by session_id
)

select
    session_id,
    user_id,
    user_sk,
    {{ sk(["to_char(" ~ utc_date('started_at') ~ ", 'YYYY-MM-DD')"]) }}  as date_sk,
    {{ utc_date('started_at') }}                                      as session_date,
    device_type,
    geo_country,
    geo_city,
    started_at,
    ended_at,
    round(extract(epoch from (ended_at - started_at))::numeric, 3)    as duration_s,
    events,
    product_views,
    searches,
    add_to_carts,
    purchases,
    orders_completed,
    orders_failed,
    errors,
    purchase_amount,
    case
        when orders_completed > 0 then 5
        when purchases > 0 then 4
        when add_to_carts > 0 then 3
        when product_views > 0 then 2
        else 1
    end                                                               as funnel_step,
    case
        when orders_completed > 0 then 'order_complete'
        when purchases > 0 then 'purchase'
        when add_to_carts > 0 then 'add_to_cart'
        when product_views > 0 then 'product_view'
        else 'visit'
    end                                                               as funnel_stage,
    row_number() over (
        partition by user_id order by started_at, session_id
    ) = 1                                                             as is_new_user
from sessions
