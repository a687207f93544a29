/** Errors page: error codes, rates over time, by service and device (latest export). */
import { loadConfig } from "../../pipeline/config.ts";
import { queryExports, runLoader } from "../../pipeline/site/loaders.ts";

await runLoader(
  "HDFS exports",
  () =>
    queryExports(loadConfig(), ["mart_errors", "mart_event_counts"], {
      totals: `select (select sum(errors) from mart_errors)::double as errors,
                    (select sum(events) from mart_event_counts)::double as events,
                    (select count(distinct error_code) from mart_errors)::double as codes`,
      byCode:
        `select error_code, min(error_message) as error_message, min(http_status)::double as http_status,
                    min(service) as service, sum(errors)::double as errors
               from mart_errors group by 1 order by 5 desc, 1`,
      byService:
        `select service, sum(errors)::double as errors from mart_errors group by 1 order by 2 desc`,
      byDevice:
        `select device_type, sum(errors)::double as errors from mart_errors group by 1 order by 2 desc`,
      daily:
        `select e.day, e.errors, t.events, e.errors / nullif(t.events, 0) as error_rate
              from (select date_day::varchar as day, sum(errors)::double as errors from mart_errors group by 1) e
              join (select date_day::varchar as day, sum(events)::double as events from mart_event_counts group by 1) t using (day)
             order by 1`,
    }),
);
