-- Errors per day, service, device and error code, with the error rate: errors
-- over all events of the same day, service and device. `error` events carry
-- the code; failed orders are counted separately per day/service/device so
-- the failure rate of orders sits beside the error rate.
with traffic as (
    select
        event_date,
        service,
        device_type,
        count(*)                                                  as events,
        count(*) filter (where event_type = 'error')              as errors_all_codes,
        count(*) filter (where event_type = 'purchase')           as orders_placed,
        count(*) filter (where event_type = 'order_failed')       as orders_failed
    from {{ ref('fact_event') }}
    group by event_date, service, device_type
),

errors as (
    select
        event_date,
        service,
        device_type,
        coalesce(error_code, '~none')                             as error_code,
        min(error_message)                                        as error_message,
        min(http_status)                                          as http_status,
        count(*)                                                  as errors,
        round(avg(response_time_ms), 1)                           as avg_response_time_ms
    from {{ ref('fact_event') }}
    where event_type = 'error'
    group by event_date, service, device_type, coalesce(error_code, '~none')
)

select
    {{ sk(["to_char(e.event_date, 'YYYY-MM-DD')"]) }}               as date_sk,
    e.event_date                                                      as date_day,
    e.service,
    e.device_type,
    e.error_code,
    e.error_message,
    e.http_status,
    e.errors,
    e.avg_response_time_ms,
    t.events                                                          as events_in_group,
    round(e.errors::numeric / t.events, 6)                            as error_rate,
    round(t.errors_all_codes::numeric / t.events, 6)                  as group_error_rate,
    t.orders_placed                                                   as group_orders_placed,
    t.orders_failed                                                   as group_orders_failed,
    round(t.orders_failed::numeric / nullif(t.orders_placed, 0), 6)    as group_order_failure_rate
from errors e
join traffic t
  on t.event_date = e.event_date
 and t.service = e.service
 and t.device_type = e.device_type
