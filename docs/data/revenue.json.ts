/** Revenue page: revenue over time, by payment method, category, country; AOV; failed-order rate (latest export). */
import { loadConfig } from "../../pipeline/config.ts";
import { queryExports, runLoader } from "../../pipeline/site/loaders.ts";

await runLoader(
  "HDFS exports",
  () =>
    queryExports(loadConfig(), [
      "mart_daily_sales",
      "mart_daily_category_sales",
    ], {
      totals:
        `select sum(revenue)::double as revenue, sum(orders_completed)::double as orders_completed,
                    sum(orders_failed)::double as orders_failed, sum(orders_placed)::double as orders_placed,
                    sum(revenue)::double / nullif(sum(orders_completed), 0) as aov,
                    sum(orders_failed)::double / nullif(sum(orders_completed) + sum(orders_failed), 0) as failed_order_rate
               from mart_daily_sales`,
      daily:
        `select date_day::varchar as day, sum(revenue)::double as revenue, sum(orders_completed)::double as orders,
                   sum(revenue)::double / nullif(sum(orders_completed), 0) as aov,
                   sum(orders_failed)::double / nullif(sum(orders_completed) + sum(orders_failed), 0) as failed_order_rate
              from mart_daily_sales group by 1 order by 1`,
      byPayment:
        `select payment_method, sum(revenue)::double as revenue, sum(orders_completed)::double as orders,
                       sum(orders_failed)::double as failed,
                       sum(orders_failed)::double / nullif(sum(orders_completed) + sum(orders_failed), 0) as failed_order_rate
                  from mart_daily_sales group by 1 order by 2 desc`,
      byCountry:
        `select geo_country, sum(revenue)::double as revenue, sum(orders_completed)::double as orders,
                       sum(revenue)::double / nullif(sum(orders_completed), 0) as aov
                  from mart_daily_sales group by 1 order by 2 desc`,
      byCategory:
        `select category, sum(revenue)::double as revenue, sum(units_sold)::double as units_sold
                   from mart_daily_category_sales group by 1 order by 2 desc`,
    }),
);
