-- dim_date has one row per day between its first and last day, no gaps, and
-- covers every event day.
select 'gap' as problem, min(date_day)::text as first_day, max(date_day)::text as last_day, count(*) as days
from {{ ref('dim_date') }}
having count(*) <> max(date_day) - min(date_day) + 1
union all
select 'event day missing', min(e.event_date)::text, max(e.event_date)::text, count(*)
from {{ ref('stg_events') }} e
left join {{ ref('dim_date') }} d on d.date_day = e.event_date
where d.date_day is null
having count(*) > 0
