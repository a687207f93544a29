-- One row per calendar day (UTC) from the first to the last day any event or
-- order touches, with no gaps: a proper Power BI date table (mark it as the
-- date table on `date_day`). date_sk = md5 of the ISO date.
with bounds as (
    -- min/max of an indexed column: two index probes, not a scan
    select
        coalesce({{ utc_date('min(event_ts)') }}, date '2000-01-01') as first_day,
        coalesce({{ utc_date('max(event_ts)') }}, date '2000-01-01') as last_day
    from {{ ref('stg_events') }}
),

days as (
    select d::date as date_day
    from bounds, generate_series(first_day, last_day, interval '1 day') as d
)

select
    {{ sk(["to_char(date_day, 'YYYY-MM-DD')"]) }}     as date_sk,
    date_day,
    to_char(date_day, 'YYYYMMDD')::integer             as date_key,
    extract(year from date_day)::integer              as year,
    extract(quarter from date_day)::integer           as quarter,
    'Q' || extract(quarter from date_day)::integer    as quarter_name,
    extract(month from date_day)::integer             as month,
    trim(to_char(date_day, 'Month'))                  as month_name,
    to_char(date_day, 'Mon')                          as month_short,
    to_char(date_day, 'YYYY-MM')                      as year_month,
    extract(isoyear from date_day)::integer           as iso_year,
    extract(week from date_day)::integer              as week,
    extract(day from date_day)::integer               as day,
    extract(doy from date_day)::integer               as day_of_year,
    extract(isodow from date_day)::integer            as weekday,
    trim(to_char(date_day, 'Day'))                    as weekday_name,
    to_char(date_day, 'Dy')                           as weekday_short,
    extract(isodow from date_day) in (6, 7)           as is_weekend,
    date_trunc('week', date_day)::date                as week_start,
    date_trunc('month', date_day)::date               as month_start
from days
