-- Search analytics per day and query (lower-cased, trimmed): searches, zero
-- result searches and rate, average results, and search-to-purchase
-- conversion (share of the sessions that ran the query which placed an order
-- after the search).
with searches as (
    select
        event_id,
        event_date,
        event_ts,
        session_id,
        lower(trim(search_query))       as search_query,
        results_count
    from {{ ref('fact_event') }}
    where event_type = 'search'
),

first_purchase as (
    select session_id, min(event_ts) as purchased_at
    from {{ ref('fact_event') }}
    where event_type = 'purchase'
    group by session_id
),

session_query as (
    -- one row per (day, query, session): did the session buy after searching?
    select
        s.event_date,
        s.search_query,
        s.session_id,
        bool_or(fp.purchased_at >= s.event_ts) as converted
    from searches s
    left join first_purchase fp on fp.session_id = s.session_id
    group by s.event_date, s.search_query, s.session_id
),

per_query as (
    select
        event_date,
        search_query,
        count(*)                                            as searches,
        count(*) filter (where results_count = 0)           as zero_result_searches,
        round(avg(results_count), 2)                        as avg_results
    from searches
    group by event_date, search_query
),

conversions as (
    select
        event_date,
        search_query,
        count(*)                                            as searching_sessions,
        count(*) filter (where converted)                   as converting_sessions
    from session_query
    group by event_date, search_query
)

select
    {{ sk(["to_char(q.event_date, 'YYYY-MM-DD')"]) }}           as date_sk,
    q.event_date                                                  as date_day,
    coalesce(q.search_query, '')                                  as search_query,
    q.searches,
    q.zero_result_searches,
    round(q.zero_result_searches::numeric / q.searches, 4)        as zero_result_rate,
    q.avg_results,
    c.searching_sessions,
    c.converting_sessions,
    round(c.converting_sessions::numeric / nullif(c.searching_sessions, 0), 4) as search_to_purchase_rate
from per_query q
join conversions c
  on c.event_date = q.event_date
 and c.search_query is not distinct from q.search_query
