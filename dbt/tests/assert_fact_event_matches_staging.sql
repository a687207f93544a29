-- The incremental fact holds exactly the staged events: none missing, none
-- extra (a broken watermark or lookback would show up here).
select coalesce(s.event_id, f.event_id) as event_id,
       (s.event_id is null) as extra_in_fact,
       (f.event_id is null) as missing_from_fact
from {{ ref('stg_events') }} s
full outer join {{ ref('fact_event') }} f on f.event_id = s.event_id
where s.event_id is null or f.event_id is null
