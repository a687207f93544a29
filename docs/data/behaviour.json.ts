/** User behaviour page: sessions, funnel and product interactions (latest export). */
import { loadConfig } from "../../pipeline/config.ts";
import { queryExports, runLoader } from "../../pipeline/site/loaders.ts";

await runLoader(
  "HDFS exports",
  () =>
    queryExports(loadConfig(), [
      "mart_sessions",
      "mart_user_behaviour",
      "mart_product_performance",
    ], {
      totals:
        `select count(*)::double as sessions, count(distinct user_id)::double as users,
                    avg(duration_s)::double as avg_duration_s, avg(events)::double as avg_events,
                    median(duration_s)::double as median_duration_s
               from mart_sessions`,
      durationBins:
        `select (floor(duration_s / 60) * 60)::double as x0, (floor(duration_s / 60) * 60 + 60)::double as x1,
                          count(*)::double as count
                     from mart_sessions where duration_s < 3600 group by 1, 2 order by 1`,
      eventsBins:
        `select events::double as x0, (events + 1)::double as x1, count(*)::double as count
                   from mart_sessions where events <= 40 group by 1, 2 order by 1`,
      funnel:
        `select 'sessions' as step, sum(sessions)::double as count from mart_user_behaviour
             union all select 'viewed a product', sum(sessions_viewed_product)::double from mart_user_behaviour
             union all select 'added to cart', sum(sessions_added_to_cart)::double from mart_user_behaviour
             union all select 'purchased', sum(sessions_purchased)::double from mart_user_behaviour
             union all select 'order completed', sum(sessions_completed_order)::double from mart_user_behaviour`,
      byDevice:
        `select device_type, sum(sessions)::double as sessions, sum(users)::double as users,
                      (sum(sessions_purchased)::double / nullif(sum(sessions), 0)) as conversion_rate,
                      (sum(avg_session_duration_s * sessions) / nullif(sum(sessions), 0))::double as avg_duration_s
                 from mart_user_behaviour group by 1 order by 2 desc`,
      daily:
        `select date_day::varchar as day, sum(sessions)::double as sessions,
                   sum(new_user_sessions)::double as new_user_sessions,
                   sum(returning_user_sessions)::double as returning_user_sessions
              from mart_user_behaviour group by 1 order by 1`,
      products:
        `select product_id, product_name, category, views::double as views, add_to_carts::double as add_to_carts,
                      orders_placed::double as orders, units_sold::double as units_sold, revenue::double as revenue,
                      view_to_cart_rate::double as view_to_cart_rate, view_to_order_rate::double as view_to_order_rate
                 from mart_product_performance where views > 0
                order by views desc, product_id limit 50`,
    }),
);
