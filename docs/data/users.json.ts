/** Users report (BI): from analytics.mart_customers and mart_user_behaviour in Postgres. */
import { loadConfig } from "../../pipeline/config.ts";
import { queryMarts, runLoader } from "../../pipeline/site/loaders.ts";

await runLoader("PostgreSQL analytics", () =>
  queryMarts(loadConfig(), {
    totals:
      `select count(*)::float8 as users, count(*) filter (where is_buyer)::float8 as buyers,
                    coalesce(sum(revenue), 0)::float8 as revenue, avg(sessions)::float8 as avg_sessions,
                    avg(avg_session_duration_s)::float8 as avg_session_duration_s
               from analytics.mart_customers`,
    byAgeBand:
      `select coalesce(age_band, 'unknown') as age_band, count(*)::float8 as users,
                       count(*) filter (where is_buyer)::float8 as buyers, sum(revenue)::float8 as revenue
                  from analytics.mart_customers group by 1 order by 1`,
    bySex:
      `select coalesce(sex, 'unknown') as sex, count(*)::float8 as users, sum(revenue)::float8 as revenue
              from analytics.mart_customers group by 1 order by 2 desc`,
    byCity:
      `select coalesce(city, 'unknown') as city, count(*)::float8 as users, sum(revenue)::float8 as revenue
               from analytics.mart_customers group by 1 order by 2 desc, 1 limit 30`,
    daily:
      `select date_day::text as day, sum(users)::float8 as users, sum(new_user_sessions)::float8 as new_user_sessions,
                   sum(returning_user_sessions)::float8 as returning_user_sessions
              from analytics.mart_user_behaviour group by 1 order by 1`,
    top:
      `select user_id, username, age, sex, city, sessions::float8 as sessions, orders_completed::float8 as orders,
                 revenue::float8 as revenue
            from analytics.mart_customers order by revenue desc, user_id limit 50`,
  }));
