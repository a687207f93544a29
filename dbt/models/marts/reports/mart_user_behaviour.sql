-- User behaviour per day (UTC day a session started) and device: sessions,
-- users, new vs returning sessions, average duration and events per
-- session, and the funnel (sessions reaching each step) with its
-- conversion rate.
select
    date_sk,
    session_date                                                     as date_day,
    device_type,
    count(*)                                                         as sessions,
    count(distinct user_id)                                          as users,
    count(*) filter (where is_new_user)                              as new_user_sessions,
    count(*) filter (where not is_new_user)                          as returning_user_sessions,
    sum(events)                                                      as events,
    round(avg(duration_s), 3)                                        as avg_session_duration_s,
    round(avg(events), 3)                                            as avg_events_per_session,
    count(*) filter (where searches > 0)                             as sessions_with_search,
    count(*) filter (where funnel_step >= 2)                         as sessions_viewed_product,
    count(*) filter (where funnel_step >= 3)                         as sessions_added_to_cart,
    count(*) filter (where funnel_step >= 4)                         as sessions_purchased,
    count(*) filter (where funnel_step >= 5)                         as sessions_completed_order,
    round(count(*) filter (where funnel_step >= 4)::numeric / count(*), 4) as session_conversion_rate
from {{ ref('mart_sessions') }}
group by date_sk, session_date, device_type
