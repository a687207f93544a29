/** Product report (BI): from analytics.mart_product_performance in Postgres. */
import { loadConfig } from "../../pipeline/config.ts";
import { queryMarts, runLoader } from "../../pipeline/site/loaders.ts";

await runLoader("PostgreSQL analytics", () =>
  queryMarts(loadConfig(), {
    totals:
      `select count(*)::float8 as products, count(*) filter (where views > 0)::float8 as viewed,
                    coalesce(sum(revenue), 0)::float8 as revenue, coalesce(sum(units_sold), 0)::float8 as units_sold,
                    count(*) filter (where price_versions > 1)::float8 as price_changed
               from analytics.mart_product_performance`,
    byCategory:
      `select category, count(*)::float8 as products, sum(views)::float8 as views, sum(add_to_carts)::float8 as add_to_carts,
                        sum(units_sold)::float8 as units_sold, sum(revenue)::float8 as revenue,
                        avg(current_price)::float8 as avg_price
                   from analytics.mart_product_performance group by 1 order by revenue desc, 1`,
    top:
      `select product_id, product_name, category, brand, current_price::float8 as price, views::float8 as views,
                 add_to_carts::float8 as add_to_carts, units_sold::float8 as units_sold, revenue::float8 as revenue,
                 view_to_order_rate::float8 as view_to_order_rate, price_versions::float8 as price_versions
            from analytics.mart_product_performance order by revenue desc, views desc, product_id limit 50`,
  }));
