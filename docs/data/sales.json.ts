/** Sales report (BI): from analytics.mart_daily_sales and mart_daily_category_sales in Postgres. */
import { loadConfig } from "../../pipeline/config.ts";
import { queryMarts, runLoader } from "../../pipeline/site/loaders.ts";

await runLoader("PostgreSQL analytics", () =>
  queryMarts(loadConfig(), {
    totals:
      `select coalesce(sum(revenue), 0)::float8 as revenue, coalesce(sum(orders_completed), 0)::float8 as orders_completed,
                    coalesce(sum(orders_placed), 0)::float8 as orders_placed, coalesce(sum(orders_failed), 0)::float8 as orders_failed,
                    coalesce(sum(units_sold), 0)::float8 as units_sold,
                    (sum(revenue) / nullif(sum(orders_completed), 0))::float8 as aov
               from analytics.mart_daily_sales`,
    daily:
      `select date_day::text as day, sum(revenue)::float8 as revenue, sum(orders_completed)::float8 as orders_completed,
                   sum(orders_placed)::float8 as orders_placed
              from analytics.mart_daily_sales group by 1 order by 1`,
    byPayment:
      `select payment_method, sum(revenue)::float8 as revenue, sum(orders_completed)::float8 as orders_completed
                  from analytics.mart_daily_sales group by 1 order by 2 desc, 1`,
    byCountry:
      `select geo_country, sum(revenue)::float8 as revenue, sum(orders_completed)::float8 as orders_completed,
                       (sum(revenue) / nullif(sum(orders_completed), 0))::float8 as aov
                  from analytics.mart_daily_sales group by 1 order by 2 desc, 1`,
    byCategory:
      `select category, sum(revenue)::float8 as revenue, sum(units_sold)::float8 as units_sold
                   from analytics.mart_daily_category_sales group by 1 order by 2 desc, 1`,
  }));
