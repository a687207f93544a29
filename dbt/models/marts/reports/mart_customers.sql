-- One row per user seen in the events (catalog users who never visited are
-- left out; dim_users has everyone): demographics from dim_users plus
-- lifetime activity (sessions, orders, revenue) for the Users report.
with activity as (
    select
        user_id,
        count(*)                                             as sessions,
        sum(events)                                          as events,
        min(started_at)                                      as first_seen_at,
        max(ended_at)                                        as last_seen_at,
        round(avg(duration_s), 3)                            as avg_session_duration_s
    from {{ ref('mart_sessions') }}
    group by user_id
),

orders as (
    select
        user_id,
        count(distinct order_id)                                         as orders_placed,
        count(distinct order_id) filter (where status = 'completed')     as orders_completed,
        count(distinct order_id) filter (where status = 'failed')        as orders_failed,
        coalesce(sum(amount) filter (where status = 'completed'), 0)     as revenue
    from {{ ref('fact_order') }}
    group by user_id
)

select
    coalesce(u.user_sk, {{ unknown_sk() }})                 as user_sk,
    a.user_id,
    u.username,
    u.sex,
    u.age,
    u.age_band,
    u.country,
    u.city,
    u.signup_date,
    a.sessions,
    a.events,
    a.first_seen_at,
    a.last_seen_at,
    a.avg_session_duration_s,
    coalesce(o.orders_placed, 0)                            as orders_placed,
    coalesce(o.orders_completed, 0)                         as orders_completed,
    coalesce(o.orders_failed, 0)                            as orders_failed,
    coalesce(o.revenue, 0)::numeric(14, 2)                  as revenue,
    (coalesce(o.orders_completed, 0) > 0)                   as is_buyer
from activity a
left join {{ ref('dim_users') }} u on u.user_id = a.user_id
left join orders o on o.user_id = a.user_id
