/**
 * The data behind the analytics and BI pages' filters: one set of tables per
 * page, each at the grain its filters need (UTC day × country × device, plus
 * the page's own breakdown: funnel step, product, payment method, category,
 * search query, error code, user), with additive measures only (counts and
 * sums, never averages or rates), so the page can filter and re-aggregate
 * them in the browser and still get the numbers SQL gives on the marts.
 *
 * The SQL is written once for both engines: DuckDB over the HDFS exports
 * (analytics pages, where each export is a view `analytics.<table>`) and
 * PostgreSQL on the marts (BI pages). Day values are 'YYYY-MM-DD' text.
 *
 * Distinct counts do not add up across cells, so what a page counts
 * distinctly travels at the grain of the thing counted: sessions (one day,
 * country and device each) are already cells; users and products come as
 * their own rows per cell (`userDays`, `userActivity`, `products`).
 */
import type { ExportSource } from "./loaders.ts";

/** A page's tables (name → SQL) and, for the exports, what each reads. */
export interface Dataset {
  queries: Record<string, string>;
  /** Constants the page needs to read the tables (written to meta.json). */
  params?: Record<string, unknown>;
  /** Columns and partitions of the exported tables the queries use. */
  sources: Record<string, ExportSource>;
}

const day = (col: string) => `cast(${col} as varchar)`;
const int = (expr: string) => `cast(${expr} as integer)`;
const float = (expr: string) => `cast(${expr} as double precision)`;

/** Width (seconds) of the session-duration histogram's bins, and their count before the overflow bin. */
export const DURATION_BIN_S = 10;
export const DURATION_BINS = 60;
/** Sessions with more events than this share the last bin of the events histogram. */
export const EVENTS_CAP = 40;
/** Width of the search result-count histogram's bins. */
export const RESULTS_BIN = 5;

/** Per product, day, country and device: views, add-to-carts, orders, units, revenue. */
const PRODUCTS = `
  with interactions as (
    select event_date as d, geo_country as country, device_type as device, product_id,
           count(*) filter (where event_type = 'product_view') as views,
           count(*) filter (where event_type = 'add_to_cart') as add_to_carts
      from analytics.fact_event
     where event_type in ('product_view', 'add_to_cart') and product_id is not null
     group by 1, 2, 3, 4
  ), sales as (
    select placed_date as d, geo_country as country, device_type as device, product_id,
           count(distinct order_id) as orders_placed,
           coalesce(sum(quantity) filter (where status = 'completed'), 0) as units_sold,
           coalesce(sum(amount) filter (where status = 'completed'), 0) as revenue
      from analytics.fact_order
     where product_id is not null
     group by 1, 2, 3, 4
  )
  select ${day("coalesce(i.d, s.d)")} as day,
         coalesce(i.country, s.country) as country,
         coalesce(i.device, s.device) as device,
         coalesce(i.product_id, s.product_id) as product_id,
         ${int("coalesce(i.views, 0)")} as views,
         ${int("coalesce(i.add_to_carts, 0)")} as add_to_carts,
         ${int("coalesce(s.orders_placed, 0)")} as orders_placed,
         ${int("coalesce(s.units_sold, 0)")} as units_sold,
         ${float("coalesce(s.revenue, 0)")} as revenue
    from interactions i
    full outer join sales s
      on s.d = i.d and s.country = i.country and s.device = i.device and s.product_id = i.product_id
   order by 1, 2, 3, 4`;

/** Name, category, brand, current price and price versions of every product with activity. */
const PRODUCT_INFO = `
  select product_id, product_name, category, brand,
         ${float("current_price")} as price, ${
  int("price_versions")
} as price_versions
    from analytics.mart_product_performance
   where views > 0 or orders_placed > 0
   order by product_id`;

const PRODUCT_SOURCES: Record<string, ExportSource> = {
  fact_event: {
    columns: [
      "event_type",
      "event_date",
      "geo_country",
      "device_type",
      "product_id",
    ],
    partitions: { event_type: ["product_view", "add_to_cart"] },
  },
  fact_order: {
    columns: [
      "placed_date",
      "geo_country",
      "device_type",
      "product_id",
      "order_id",
      "quantity",
      "amount",
      "status",
    ],
  },
  mart_product_performance: {
    columns: [
      "product_id",
      "product_name",
      "category",
      "brand",
      "current_price",
      "price_versions",
      "views",
      "orders_placed",
    ],
  },
};

/** User behaviour: sessions and their funnel, durations, depth, users, event types, products. */
export const BEHAVIOUR: Dataset = {
  queries: {
    sessions: `
      select ${
      day("session_date")
    } as day, geo_country as country, device_type as device,
             ${int("funnel_step")} as funnel_step,
             ${int("case when is_new_user then 1 else 0 end")} as is_new,
             ${int("count(*)")} as sessions,
             ${float("sum(duration_s)")} as duration_s,
             ${int("sum(events)")} as events
        from analytics.mart_sessions
       group by 1, 2, 3, 4, 5 order by 1, 2, 3, 4, 5`,
    durationBins: `
      select ${
      day("session_date")
    } as day, geo_country as country, device_type as device,
             ${
      int(`least(floor(duration_s / ${DURATION_BIN_S}), ${DURATION_BINS})`)
    } as bin,
             ${int("count(*)")} as sessions
        from analytics.mart_sessions
       group by 1, 2, 3, 4 order by 1, 2, 3, 4`,
    eventBins: `
      select ${
      day("session_date")
    } as day, geo_country as country, device_type as device,
             ${int(`least(events, ${EVENTS_CAP})`)} as events,
             ${int("count(*)")} as sessions
        from analytics.mart_sessions
       group by 1, 2, 3, 4 order by 1, 2, 3, 4`,
    userDays: `
      select distinct ${
      day("session_date")
    } as day, geo_country as country, device_type as device, user_id
        from analytics.mart_sessions order by 1, 2, 3, 4`,
    eventTypes: `
      select ${
      day("date_day")
    } as day, geo_country as country, device_type as device, event_type,
             ${int("sum(events)")} as events
        from analytics.mart_event_counts
       group by 1, 2, 3, 4 order by 1, 2, 3, 4`,
    products: PRODUCTS,
    productInfo: PRODUCT_INFO,
  },
  params: {
    durationBinS: DURATION_BIN_S,
    durationBins: DURATION_BINS,
    eventsCap: EVENTS_CAP,
  },
  sources: {
    mart_sessions: {
      columns: [
        "session_date",
        "geo_country",
        "device_type",
        "funnel_step",
        "is_new_user",
        "duration_s",
        "events",
        "user_id",
      ],
    },
    mart_event_counts: {
      columns: [
        "date_day",
        "geo_country",
        "device_type",
        "event_type",
        "events",
      ],
    },
    ...PRODUCT_SOURCES,
  },
};

/** Revenue and Sales: orders per day, country, device, payment method and status; and per category. */
export const SALES: Dataset = {
  queries: {
    orders: `
      with o as (
        select order_id, placed_date, geo_country, device_type, payment_method, status,
               sum(quantity) as units, sum(amount) as amount
          from analytics.fact_order
         group by 1, 2, 3, 4, 5, 6
      )
      select ${
      day("placed_date")
    } as day, geo_country as country, device_type as device,
             payment_method, status,
             ${int("count(*)")} as orders, ${int("sum(units)")} as units,
             ${float("sum(amount)")} as amount
        from o
       group by 1, 2, 3, 4, 5 order by 1, 2, 3, 4, 5`,
    // An order with lines in two categories counts once in each: orders do
    // not add up across categories (units and amounts do).
    categoryOrders: `
      select ${
      day("f.placed_date")
    } as day, f.geo_country as country, f.device_type as device,
             f.payment_method, p.category, f.status,
             ${int("count(distinct f.order_id)")} as orders, ${
      int("sum(f.quantity)")
    } as units,
             ${float("sum(f.amount)")} as amount
        from analytics.fact_order f
        join analytics.dim_product p on p.product_sk = f.product_sk
       group by 1, 2, 3, 4, 5, 6 order by 1, 2, 3, 4, 5, 6`,
  },
  sources: {
    fact_order: {
      columns: [
        "order_id",
        "placed_date",
        "geo_country",
        "device_type",
        "payment_method",
        "status",
        "quantity",
        "amount",
        "product_sk",
      ],
    },
    dim_product: { columns: ["product_sk", "category"] },
  },
};

/**
 * Search: per day, country, device and query (lower-cased, trimmed, as in
 * mart_search): searches, zero-result searches, result sum and count (for
 * the mean), searching sessions and those that purchased after the search
 * (mart_search's conversion, per session and query).
 */
export const SEARCH: Dataset = {
  queries: {
    queries: `
      with s as (
        select event_date, event_ts, session_id, geo_country, device_type,
               lower(trim(search_query)) as q, results_count
          from analytics.fact_event where event_type = 'search'
      ), first_purchase as (
        select session_id, min(event_ts) as purchased_at
          from analytics.fact_event where event_type = 'purchase'
         group by session_id
      ), session_query as (
        select s.event_date, s.geo_country, s.device_type, s.q, s.session_id,
               bool_or(fp.purchased_at >= s.event_ts) as converted
          from s left join first_purchase fp on fp.session_id = s.session_id
         group by 1, 2, 3, 4, 5
      ), per_query as (
        select event_date, geo_country, device_type, q,
               count(*) as searches,
               count(*) filter (where results_count = 0) as zero_result_searches,
               sum(results_count) as results_sum, count(results_count) as results_n
          from s group by 1, 2, 3, 4
      ), conversions as (
        select event_date, geo_country, device_type, q,
               count(*) as searching_sessions,
               count(*) filter (where converted) as converting_sessions
          from session_query group by 1, 2, 3, 4
      )
      select ${
      day("p.event_date")
    } as day, p.geo_country as country, p.device_type as device,
             coalesce(p.q, '') as search_query,
             ${int("p.searches")} as searches,
             ${int("p.zero_result_searches")} as zero_result_searches,
             ${float("coalesce(p.results_sum, 0)")} as results_sum,
             ${int("p.results_n")} as results_n,
             ${int("c.searching_sessions")} as searching_sessions,
             ${int("c.converting_sessions")} as converting_sessions
        from per_query p
        join conversions c
          on c.event_date = p.event_date and c.geo_country = p.geo_country
         and c.device_type = p.device_type and c.q is not distinct from p.q
       order by 1, 2, 3, 4`,
    resultBins: `
      select ${
      day("event_date")
    } as day, geo_country as country, device_type as device,
             ${int(`floor(results_count / ${RESULTS_BIN}.0)`)} as bin,
             ${int("count(*)")} as searches
        from analytics.fact_event
       where event_type = 'search' and results_count is not null
       group by 1, 2, 3, 4 order by 1, 2, 3, 4`,
  },
  params: { resultsBin: RESULTS_BIN },
  sources: {
    fact_event: {
      columns: [
        "event_type",
        "event_date",
        "event_ts",
        "session_id",
        "geo_country",
        "device_type",
        "search_query",
        "results_count",
      ],
      partitions: { event_type: ["search", "purchase"] },
    },
  },
};

/** Errors: error events per day, country, device, service and code; all events per day, country and device. */
export const ERRORS: Dataset = {
  queries: {
    errors: `
      select ${
      day("event_date")
    } as day, geo_country as country, device_type as device, service,
             coalesce(error_code, '~none') as error_code,
             ${int("count(*)")} as errors
        from analytics.fact_event where event_type = 'error'
       group by 1, 2, 3, 4, 5 order by 1, 2, 3, 4, 5`,
    codes: `
      select coalesce(error_code, '~none') as error_code, min(error_message) as error_message,
             ${int("min(http_status)")} as http_status, min(service) as service
        from analytics.fact_event where event_type = 'error'
       group by 1 order by 1`,
    traffic: `
      select ${
      day("date_day")
    } as day, geo_country as country, device_type as device,
             ${int("sum(events)")} as events
        from analytics.mart_event_counts
       group by 1, 2, 3 order by 1, 2, 3`,
  },
  sources: {
    fact_event: {
      columns: [
        "event_type",
        "event_date",
        "geo_country",
        "device_type",
        "service",
        "error_code",
        "error_message",
        "http_status",
      ],
      partitions: { event_type: ["error"] },
    },
    mart_event_counts: {
      columns: ["date_day", "geo_country", "device_type", "events"],
    },
  },
};

/** Product report: the product cells, product details and the catalog per category. */
export const PRODUCT: Dataset = {
  queries: {
    products: PRODUCTS,
    productInfo: PRODUCT_INFO,
    categories: `
      select category, ${int("count(*)")} as products,
             ${float("sum(current_price)")} as price_sum,
             ${
      int("count(*) filter (where price_versions > 1)")
    } as price_changed
        from analytics.mart_product_performance
       group by 1 order by 1`,
  },
  sources: PRODUCT_SOURCES,
};

/**
 * Users report: per user, day, country and device: sessions (by the day
 * they started), their duration, new-user sessions, completed orders and
 * revenue (by the day the order was placed); and the users' profiles.
 */
export const USERS: Dataset = {
  queries: {
    userActivity: `
      with s as (
        select session_date as d, geo_country as country, device_type as device, user_id,
               count(*) as sessions, sum(duration_s) as duration_s,
               count(*) filter (where is_new_user) as new_sessions
          from analytics.mart_sessions group by 1, 2, 3, 4
      ), o as (
        select placed_date as d, geo_country as country, device_type as device, user_id,
               count(distinct order_id) filter (where status = 'completed') as orders_completed,
               coalesce(sum(amount) filter (where status = 'completed'), 0) as revenue
          from analytics.fact_order group by 1, 2, 3, 4
      )
      select ${day("coalesce(s.d, o.d)")} as day,
             coalesce(s.country, o.country) as country,
             coalesce(s.device, o.device) as device,
             coalesce(s.user_id, o.user_id) as user_id,
             ${int("coalesce(s.sessions, 0)")} as sessions,
             ${float("coalesce(s.duration_s, 0)")} as duration_s,
             ${int("coalesce(s.new_sessions, 0)")} as new_sessions,
             ${int("coalesce(o.orders_completed, 0)")} as orders_completed,
             ${float("coalesce(o.revenue, 0)")} as revenue
        from s full outer join o
          on o.d = s.d and o.country = s.country and o.device = s.device and o.user_id = s.user_id
       order by 1, 2, 3, 4`,
    users: `
      select user_id, username, ${
      int("age")
    } as age, coalesce(sex, 'unknown') as sex,
             coalesce(age_band, 'unknown') as age_band, coalesce(city, 'unknown') as city
        from analytics.mart_customers order by user_id`,
  },
  sources: {},
};
