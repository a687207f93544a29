/** A few rows of each stage for the "How it works" page (Postgres; never fails the build). */
import { loadConfig } from "../../pipeline/config.ts";
import { queryMarts, runLoader } from "../../pipeline/site/loaders.ts";

await runLoader("PostgreSQL", () =>
  queryMarts(loadConfig(), {
    kafka:
      `select event_json, kafka_partition, kafka_offset from monitoring.recent_events
             order by event_ts desc, event_id limit 2`,
    raw:
      `select event_id, event_type, event_ts, geo_country, device_type, product_id, amount::float8 as amount,
                 search_query, kafka_partition, kafka_offset, source_file
            from raw.events order by event_ts desc, event_id limit 3`,
    fact: `select * from analytics.fact_event order by event_ts desc limit 3`,
    mart:
      `select date_day::text as date_day, payment_method, geo_country, orders_completed::float8 as orders_completed,
                  revenue::float8 as revenue
             from analytics.mart_daily_sales order by date_day desc, revenue desc limit 3`,
  }));
