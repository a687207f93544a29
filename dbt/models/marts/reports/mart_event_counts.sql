-- Event counts per day, event type, level, country and device: the
-- additive base of the site's traffic and geography pages (sum over any
-- columns). Response time is given as a sum and an average so it can be
-- re-averaged correctly at any roll-up.
select
    {{ sk(["to_char(event_date, 'YYYY-MM-DD')"]) }}     as date_sk,
    event_date                                            as date_day,
    event_type,
    level,
    geo_country,
    device_type,
    count(*)                                              as events,
    count(distinct session_id)                            as sessions,
    sum(response_time_ms)                                 as response_time_ms_sum,
    round(avg(response_time_ms), 1)                       as avg_response_time_ms
from {{ ref('fact_event') }}
group by event_date, event_type, level, geo_country, device_type
