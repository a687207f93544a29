/**
 * What Power BI reads, on a real warehouse: the seeded fixture loaded into
 * raw.*, the REAL dbt project built on the shared Postgres (own database),
 * then, logged in as the read-only BI role:
 *
 *   1. schema `bi` holds one masked view per star and report model, with the
 *      models' columns and types; e-mails are masked and street addresses
 *      null; LOGPIPE_BI_PII=full (migrate) shows both as stored, at once;
 *      everything else (analytics, raw, ops, monitoring, writes) is refused;
 *   2. every table, column and relationship key the TMDL semantic model
 *      names exists there with a compatible type, relationship keys are
 *      unique on the one side and have no orphans on the many side, and the
 *      date table is unique and gap-free;
 *   3. every DAX measure, translated here into the SQL it means over the
 *      same views (filters through the model's relationships), equals the
 *      same figure computed on the marts the site's Sales, Product and Users
 *      pages read (and the fixture's own totals where it counts them). Each
 *      measure's DAX is pinned below next to its SQL, so changing a measure
 *      without its translation fails.
 */
import assert from "node:assert/strict";
import pg from "pg";
import { createTestEnv } from "../testing/env.ts";
import { loadConfig } from "../config.ts";
import { migrate } from "../postgres/migrate.ts";
import { failedNodes, runDbt } from "./toolchain.ts";
import { seedRaw } from "../testing/dbt_fixtures.ts";
import { readTmdlModel } from "../powerbi/tmdl.ts";

const MODEL_DIR = new URL(
  "../../dbt/powerbi/logpipe.SemanticModel/definition",
  import.meta.url,
).pathname;
const START = new Date("2026-03-01T00:00:00Z");

/** TMDL dataType -> the Postgres types it can read without loss. */
const COMPATIBLE: Record<string, string[]> = {
  string: ["text", "character varying", "character"],
  int64: ["smallint", "integer", "bigint"],
  // The PostgreSQL connector reads numeric as a decimal number (double).
  double: ["numeric", "double precision", "real"],
  dateTime: ["date", "timestamp with time zone", "timestamp without time zone"],
  boolean: ["boolean"],
};

type Row = Record<string, unknown>;
type Query = (sql: string, params?: unknown[]) => Promise<Row[]>;

/**
 * A figure keyed by slice (or "" for the total). Blanks (null) and zeros are
 * dropped: DAX gives blank where SQL gives 0 or null, and a visual shows
 * neither row.
 */
type Figures = Record<string, number>;

async function figures(q: Query, sql: string, params: unknown[] = []) {
  const out: Figures = {};
  for (const r of await q(sql, params)) {
    const v = r.v === null ? 0 : Number(r.v);
    if (v !== 0) out[String(r.k ?? "")] = v;
  }
  return out;
}

function assertSame(measure: string, dax: Figures, marts: Figures) {
  assert.deepEqual(
    Object.keys(dax).sort(),
    Object.keys(marts).sort(),
    `${measure}: slices differ`,
  );
  for (const [k, v] of Object.entries(marts)) {
    const diff = Math.abs(dax[k] - v);
    assert.ok(
      diff <= 1e-9 * Math.max(1, Math.abs(v)),
      `${measure}${k ? ` [${k}]` : ""}: DAX-as-SQL ${dax[k]} vs marts ${v}`,
    );
  }
}

/**
 * Each measure of the model: its DAX (whitespace-insensitive) and, per
 * filter context, the SQL that DAX means over the `bi` views (`dax`) and the
 * same figure from the marts as the site's pages compute it (`marts`). Both
 * return rows of (k = slice, v = value).
 */
interface Translation {
  dax: string;
  checks: { context: string; dax: string; marts: string }[];
}

const COMPLETED = "f.status = 'completed'";
const ORDERS_BY_DAY =
  "from bi.fact_order f join bi.dim_date d on d.date_sk = f.date_sk";

const TRANSLATIONS: Record<string, Translation> = {
  Revenue: {
    dax:
      'CALCULATE ( SUM ( fact_order[amount] ), fact_order[status] = "completed" )',
    checks: [
      {
        context: "total",
        dax:
          `select sum(f.amount) as v from bi.fact_order f where ${COMPLETED}`,
        marts: "select sum(revenue) as v from analytics.mart_daily_sales",
      },
      {
        context: "dim_date[date_day]",
        dax:
          `select d.date_day::text as k, sum(f.amount) as v ${ORDERS_BY_DAY} where ${COMPLETED} group by 1`,
        marts:
          "select date_day::text as k, sum(revenue) as v from analytics.mart_daily_sales group by 1",
      },
      {
        context: "fact_order[payment_method]",
        dax:
          `select f.payment_method as k, sum(f.amount) as v from bi.fact_order f where ${COMPLETED} group by 1`,
        marts:
          "select payment_method as k, sum(revenue) as v from analytics.mart_daily_sales group by 1",
      },
      {
        context: "fact_order[geo_country]",
        dax:
          `select f.geo_country as k, sum(f.amount) as v from bi.fact_order f where ${COMPLETED} group by 1`,
        marts:
          "select geo_country as k, sum(revenue) as v from analytics.mart_daily_sales group by 1",
      },
      {
        context: "dim_product[category]",
        dax:
          `select p.category as k, sum(f.amount) as v from bi.fact_order f join bi.dim_product p on p.product_sk = f.product_sk where ${COMPLETED} group by 1`,
        marts:
          "select category as k, sum(revenue) as v from analytics.mart_daily_category_sales group by 1",
      },
    ],
  },
  "Orders Placed": {
    dax: "DISTINCTCOUNT ( fact_order[order_id] )",
    checks: [
      {
        context: "dim_date[date_day]",
        dax:
          `select d.date_day::text as k, count(distinct f.order_id) as v ${ORDERS_BY_DAY} group by 1`,
        marts:
          "select date_day::text as k, sum(orders_placed) as v from analytics.mart_daily_sales group by 1",
      },
    ],
  },
  "Completed Orders": {
    dax: 'CALCULATE ( [Orders Placed], fact_order[status] = "completed" )',
    checks: [{
      context: "total",
      dax:
        `select count(distinct f.order_id) as v from bi.fact_order f where ${COMPLETED}`,
      marts:
        "select sum(orders_completed) as v from analytics.mart_daily_sales",
    }],
  },
  "Failed Orders": {
    dax: 'CALCULATE ( [Orders Placed], fact_order[status] = "failed" )',
    checks: [{
      context: "total",
      dax:
        "select count(distinct f.order_id) as v from bi.fact_order f where f.status = 'failed'",
      marts: "select sum(orders_failed) as v from analytics.mart_daily_sales",
    }],
  },
  AOV: {
    dax: "DIVIDE ( [Revenue], [Completed Orders] )",
    checks: [
      {
        context: "total",
        dax:
          `select sum(f.amount) / nullif(count(distinct f.order_id), 0) as v from bi.fact_order f where ${COMPLETED}`,
        marts:
          "select sum(revenue) / nullif(sum(orders_completed), 0) as v from analytics.mart_daily_sales",
      },
      {
        context: "fact_order[geo_country]",
        dax:
          `select f.geo_country as k, sum(f.amount) / nullif(count(distinct f.order_id), 0) as v from bi.fact_order f where ${COMPLETED} group by 1`,
        marts:
          "select geo_country as k, sum(revenue) / nullif(sum(orders_completed), 0) as v from analytics.mart_daily_sales group by 1",
      },
    ],
  },
  "Units Sold": {
    dax:
      'CALCULATE ( SUM ( fact_order[quantity] ), fact_order[status] = "completed" )',
    checks: [
      {
        context: "total",
        dax:
          `select sum(f.quantity) as v from bi.fact_order f where ${COMPLETED}`,
        marts: "select sum(units_sold) as v from analytics.mart_daily_sales",
      },
      {
        context: "dim_product[category]",
        dax:
          `select p.category as k, sum(f.quantity) as v from bi.fact_order f join bi.dim_product p on p.product_sk = f.product_sk where ${COMPLETED} group by 1`,
        marts:
          "select category as k, sum(units_sold) as v from analytics.mart_daily_category_sales group by 1",
      },
    ],
  },
  "Failed Order Rate": {
    dax: "DIVIDE ( [Failed Orders], [Orders Placed] )",
    checks: [{
      context: "total",
      dax:
        "select count(distinct order_id) filter (where status = 'failed')::numeric / nullif(count(distinct order_id), 0) as v from bi.fact_order",
      marts:
        "select sum(orders_failed)::numeric / nullif(sum(orders_placed), 0) as v from analytics.mart_daily_sales",
    }],
  },
  // The previous period: as many days as the selection, just before it.
  // Checked for every single day, for every 3-day window and for the whole
  // range (a window is `$1`..`$2`).
  "Revenue Previous Period": {
    dax: `VAR FirstDay = MIN ( dim_date[date_day] )
      VAR LastDay = MAX ( dim_date[date_day] )
      VAR Days = DATEDIFF ( FirstDay, LastDay, DAY ) + 1
      RETURN
          CALCULATE ( [Revenue], DATESBETWEEN ( dim_date[date_day], FirstDay - Days, FirstDay - 1 ) )`,
    checks: [{
      context: "window",
      dax: `select sum(f.amount) as v ${ORDERS_BY_DAY}
            where ${COMPLETED}
              and d.date_day between $1::date - ($2::date - $1::date + 1) and $1::date - 1`,
      marts: `select sum(revenue) as v from analytics.mart_daily_sales
              where date_day between $1::date - ($2::date - $1::date + 1) and $1::date - 1`,
    }],
  },
  "Revenue vs Previous Period": {
    dax: "[Revenue] - [Revenue Previous Period]",
    checks: [{
      context: "window",
      dax:
        `select coalesce(sum(f.amount) filter (where d.date_day between $1 and $2), 0)
                 - coalesce(sum(f.amount) filter (where d.date_day between $1::date - ($2::date - $1::date + 1) and $1::date - 1), 0) as v
            ${ORDERS_BY_DAY} where ${COMPLETED}`,
      marts:
        `select coalesce(sum(revenue) filter (where date_day between $1 and $2), 0)
                 - coalesce(sum(revenue) filter (where date_day between $1::date - ($2::date - $1::date + 1) and $1::date - 1), 0) as v
              from analytics.mart_daily_sales`,
    }],
  },
  "Revenue Growth": {
    dax:
      "DIVIDE ( [Revenue] - [Revenue Previous Period], [Revenue Previous Period] )",
    checks: [{
      context: "window",
      dax: `with r as (
              select sum(f.amount) filter (where d.date_day between $1 and $2) as cur,
                     sum(f.amount) filter (where d.date_day between $1::date - ($2::date - $1::date + 1) and $1::date - 1) as prev
              ${ORDERS_BY_DAY} where ${COMPLETED})
            select (coalesce(cur, 0) - prev) / nullif(prev, 0) as v from r`,
      marts: `with r as (
              select sum(revenue) filter (where date_day between $1 and $2) as cur,
                     sum(revenue) filter (where date_day between $1::date - ($2::date - $1::date + 1) and $1::date - 1) as prev
              from analytics.mart_daily_sales)
            select (coalesce(cur, 0) - prev) / nullif(prev, 0) as v from r`,
    }],
  },
  "Product Views": {
    dax:
      'CALCULATE ( COUNTROWS ( fact_event ), fact_event[event_type] = "product_view" )',
    checks: [
      {
        context: "dim_product[category]",
        dax:
          "select p.category as k, count(*) as v from bi.fact_event e join bi.dim_product p on p.product_sk = e.product_sk where e.event_type = 'product_view' group by 1",
        marts:
          "select category as k, sum(views) as v from analytics.mart_product_performance group by 1",
      },
    ],
  },
  "Add To Carts": {
    dax:
      'CALCULATE ( COUNTROWS ( fact_event ), fact_event[event_type] = "add_to_cart" )',
    checks: [{
      context: "dim_product[category]",
      dax:
        "select p.category as k, count(*) as v from bi.fact_event e join bi.dim_product p on p.product_sk = e.product_sk where e.event_type = 'add_to_cart' group by 1",
      marts:
        "select category as k, sum(add_to_carts) as v from analytics.mart_product_performance group by 1",
    }],
  },
  "View To Cart Rate": {
    dax: "DIVIDE ( [Add To Carts], [Product Views] )",
    checks: [{
      context: "total",
      dax:
        "select count(*) filter (where event_type = 'add_to_cart')::numeric / nullif(count(*) filter (where event_type = 'product_view'), 0) as v from bi.fact_event",
      marts:
        "select sum(add_to_carts)::numeric / nullif(sum(views), 0) as v from analytics.mart_product_performance",
    }],
  },
  Products: {
    dax: "COUNTROWS ( mart_product_performance )",
    checks: [{
      // dim_product filters the mart through product_sk (current version).
      context: "dim_product[category]",
      dax:
        "select p.category as k, count(*) as v from bi.mart_product_performance m join bi.dim_product p on p.product_sk = m.product_sk group by 1",
      marts:
        "select category as k, count(*) as v from analytics.mart_product_performance group by 1",
    }],
  },
  "Products Viewed": {
    dax: "CALCULATE ( [Products], mart_product_performance[views] > 0 )",
    checks: [{
      context: "total",
      dax:
        "select count(*) as v from bi.mart_product_performance where views > 0",
      marts:
        "select count(*) filter (where views > 0) as v from analytics.mart_product_performance",
    }],
  },
  "Products With Price Changes": {
    dax:
      "CALCULATE ( [Products], mart_product_performance[price_versions] > 1 )",
    checks: [{
      // The fixture has one price version per product, so both are blank
      // here; pipeline/dbt/dbt_test.ts covers versions themselves.
      context: "total",
      dax:
        "select count(*) as v from bi.mart_product_performance where price_versions > 1",
      marts:
        "select count(distinct product_id) as v from analytics.dim_product where version_no > 1",
    }],
  },
  "Avg Current Price": {
    dax: "AVERAGE ( mart_product_performance[current_price] )",
    checks: [{
      context: "dim_product[category]",
      dax:
        "select p.category as k, avg(m.current_price) as v from bi.mart_product_performance m join bi.dim_product p on p.product_sk = m.product_sk group by 1",
      marts:
        "select category as k, avg(current_price) as v from analytics.mart_product_performance group by 1",
    }],
  },
  Sessions: {
    dax: "COUNTROWS ( mart_sessions )",
    checks: [{
      context: "dim_date[date_day]",
      dax:
        "select d.date_day::text as k, count(*) as v from bi.mart_sessions s join bi.dim_date d on d.date_sk = s.date_sk group by 1",
      marts:
        "select date_day::text as k, sum(sessions) as v from analytics.mart_user_behaviour group by 1",
    }],
  },
  "Active Users": {
    dax: "DISTINCTCOUNT ( mart_sessions[user_id] )",
    checks: [
      {
        context: "total",
        dax: "select count(distinct user_id) as v from bi.mart_sessions",
        marts: "select count(*) as v from analytics.mart_customers",
      },
      {
        // Distinct users per day, as the site's "Active users per day".
        context: "dim_date[date_day]",
        dax:
          "select d.date_day::text as k, count(distinct s.user_id) as v from bi.mart_sessions s join bi.dim_date d on d.date_sk = s.date_sk group by 1",
        marts:
          "select session_date::text as k, count(distinct user_id) as v from analytics.mart_sessions group by 1",
      },
    ],
  },
  "Conversion Rate": {
    dax:
      "DIVIDE ( CALCULATE ( [Sessions], mart_sessions[funnel_step] >= 4 ), [Sessions] )",
    checks: [{
      context: "total",
      dax:
        "select count(*) filter (where funnel_step >= 4)::numeric / nullif(count(*), 0) as v from bi.mart_sessions",
      marts:
        "select sum(sessions_purchased)::numeric / nullif(sum(sessions), 0) as v from analytics.mart_user_behaviour",
    }],
  },
  Customers: {
    dax: "COUNTROWS ( mart_customers )",
    checks: [
      {
        context: "dim_users[age_band]",
        dax:
          "select u.age_band as k, count(*) as v from bi.mart_customers c join bi.dim_users u on u.user_sk = c.user_sk group by 1",
        marts:
          "select coalesce(age_band, 'unknown') as k, count(*) as v from analytics.mart_customers group by 1",
      },
      {
        context: "dim_users[sex]",
        dax:
          "select u.sex as k, count(*) as v from bi.mart_customers c join bi.dim_users u on u.user_sk = c.user_sk group by 1",
        marts:
          "select coalesce(sex, 'unknown') as k, count(*) as v from analytics.mart_customers group by 1",
      },
    ],
  },
  Buyers: {
    dax: "CALCULATE ( [Customers], mart_customers[is_buyer] = TRUE () )",
    checks: [{
      context: "total",
      dax: "select count(*) as v from bi.mart_customers where is_buyer",
      marts:
        "select count(*) filter (where is_buyer) as v from analytics.mart_customers",
    }],
  },
  "Buyer Share": {
    dax: "DIVIDE ( [Buyers], [Customers] )",
    checks: [{
      context: "total",
      dax:
        "select count(*) filter (where is_buyer)::numeric / nullif(count(*), 0) as v from bi.mart_customers",
      marts:
        "select count(*) filter (where is_buyer)::numeric / count(*) as v from analytics.mart_customers",
    }],
  },
  "Customer Revenue": {
    dax: "SUM ( mart_customers[revenue] )",
    checks: [{
      context: "dim_users[city]",
      dax:
        "select u.city as k, sum(c.revenue) as v from bi.mart_customers c join bi.dim_users u on u.user_sk = c.user_sk group by 1",
      marts:
        "select coalesce(city, 'unknown') as k, sum(revenue) as v from analytics.mart_customers group by 1",
    }],
  },
  "Revenue per User": {
    dax: "DIVIDE ( [Customer Revenue], [Customers] )",
    checks: [{
      context: "total",
      dax:
        "select sum(revenue) / nullif(count(*), 0) as v from bi.mart_customers",
      marts:
        "select sum(revenue) / count(*) as v from analytics.mart_customers",
    }],
  },
  "New User Sessions": {
    dax: "CALCULATE ( [Sessions], mart_sessions[is_new_user] = TRUE () )",
    checks: [{
      context: "dim_date[date_day]",
      dax:
        "select d.date_day::text as k, count(*) as v from bi.mart_sessions s join bi.dim_date d on d.date_sk = s.date_sk where s.is_new_user group by 1",
      marts:
        "select date_day::text as k, sum(new_user_sessions) as v from analytics.mart_user_behaviour group by 1",
    }],
  },
  "Returning User Sessions": {
    dax: "CALCULATE ( [Sessions], mart_sessions[is_new_user] = FALSE () )",
    checks: [{
      context: "dim_date[date_day]",
      dax:
        "select d.date_day::text as k, count(*) as v from bi.mart_sessions s join bi.dim_date d on d.date_sk = s.date_sk where not s.is_new_user group by 1",
      marts:
        "select date_day::text as k, sum(returning_user_sessions) as v from analytics.mart_user_behaviour group by 1",
    }],
  },
  "Sessions per User": {
    dax: "DIVIDE ( [Sessions], [Active Users] )",
    checks: [{
      context: "total",
      dax:
        "select count(*)::numeric / nullif(count(distinct user_id), 0) as v from bi.mart_sessions",
      marts:
        "select sum(sessions)::numeric / count(*) as v from analytics.mart_customers",
    }],
  },
  "Avg Session Minutes": {
    dax: "DIVIDE ( SUM ( mart_sessions[duration_s] ), [Sessions] ) / 60",
    checks: [{
      context: "dim_date[date_day]",
      dax:
        "select d.date_day::text as k, sum(s.duration_s) / count(*) / 60 as v from bi.mart_sessions s join bi.dim_date d on d.date_sk = s.date_sk group by 1",
      marts:
        "select session_date::text as k, sum(duration_s) / count(*) / 60 as v from analytics.mart_sessions group by 1",
    }],
  },
};

const normalize = (dax: string) => dax.replace(/\s+/g, " ").trim();

Deno.test({
  name:
    "Power BI on the warehouse: masked bi views only, the TMDL model's tables, columns and keys exist with compatible types, every DAX measure equals its SQL on the marts",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const env = await createTestEnv("bi_warehouse", { noTopic: true });
    const owner = new pg.Client({ connectionString: env.config.postgres.url });
    const biUrl = new URL(env.config.postgres.url);
    biUrl.username = env.config.postgres.biUser;
    biUrl.password = env.config.postgres.biPassword ?? "";
    const bi = new pg.Client({ connectionString: biUrl.toString() });
    try {
      await owner.connect();
      const totals = await seedRaw(owner, {
        seed: 21,
        sessions: 900,
        users: 90,
        products: 120,
        start: START,
        sessionGapS: 600,
      });
      const run = await runDbt(env.config, [
        "build",
        "--exclude",
        "test_type:data",
        "test_type:unit",
      ]);
      assert.ok(
        run.ok,
        failedNodes(run).map((n) => `${n.name}: ${n.message}`).join("\n") ||
          run.stdout.slice(-2000),
      );
      await bi.connect();
      const asBi: Query = async (sql, params) =>
        (await bi.query(sql, params)).rows;
      const asOwner: Query = async (sql, params) =>
        (await owner.query(sql, params)).rows;

      await t.step(
        "the BI role sees one masked view per star and report model, nothing else, and can write nothing",
        async () => {
          const models = (await asOwner(
            `select table_name as n from information_schema.tables
           where table_schema = 'analytics' and table_name ~ '^(dim|fact|mart)_' order by 1`,
          )).map((r) => r.n);
          const visible = (await asBi(
            `select table_schema || '.' || table_name as n from information_schema.tables
           where table_schema not in ('pg_catalog', 'information_schema') order by 1`,
          )).map((r) => r.n);
          assert.deepEqual(visible, models.map((m) => `bi.${m}`));
          for (const m of models) {
            const shape = (rows: Row[]) =>
              rows.map((r) => `${r.column_name}:${r.data_type}`);
            const sql =
              `select column_name, data_type from information_schema.columns
                       where table_schema = $1 and table_name = $2 order by ordinal_position`;
            assert.deepEqual(
              shape(await asBi(sql, ["bi", m])),
              shape(await asOwner(sql, ["analytics", m])).filter((c) =>
                !c.startsWith("_")
              ),
              `bi.${m} has the columns of analytics.${m}`,
            );
          }
          const [users] = await asBi(
            `select count(*) filter (where email is not null) as n,
                  count(*) filter (where email !~ '^.\\*\\*\\*@[^@]+$') as unmasked
           from bi.dim_users`,
          );
          assert.ok(Number(users.n) >= 90);
          assert.equal(Number(users.unmasked), 0);
          const [orders] = await asBi(
            "select count(*) as n, count(shipping_address) as addresses from bi.fact_order",
          );
          assert.ok(Number(orders.n) > 100);
          assert.equal(Number(orders.addresses), 0);
          const [stored] = await asOwner(
            "select count(shipping_address) as n from analytics.fact_order",
          );
          assert.equal(
            Number(stored.n),
            Number(orders.n),
            "analytics keeps the addresses",
          );
          // No e-mail or street address left in any text column of any view.
          for (
            const c of await asBi(
              `select table_name, column_name from information_schema.columns
             where table_schema = 'bi' and data_type = 'text'`,
            )
          ) {
            const [leak] = await asBi(
              `select count(*) as n from bi."${c.table_name}"
             where "${c.column_name}" ~ '[^*@\\s]{2,}@' or "${c.column_name}" ~* 'main st'`,
            );
            assert.equal(
              Number(leak.n),
              0,
              `bi.${c.table_name}.${c.column_name}`,
            );
          }
          const refused = [
            "select * from analytics.dim_users limit 1",
            "select * from analytics.int_orders limit 1",
            "select * from raw.users limit 1",
            "select * from ops.bi_policy",
            "select * from monitoring.event_counts limit 1",
            "update bi.dim_users set city = 'x'",
            "delete from bi.mart_sessions",
            "create table bi.owned (x int)",
            "create view bi.mine as select 1 as x",
          ];
          // The role's default_transaction_read_only refuses DDL first
          // (25006, read-only transaction) ...
          for (const sql of refused) {
            await assert.rejects(
              bi.query(sql),
              (e: { code?: string }) => ["42501", "25006"].includes(e.code!),
              sql,
            );
          }
          // ... but a client may turn it off: the grants alone must still
          // refuse (42501, permission denied).
          await bi.query("set default_transaction_read_only = off");
          try {
            for (const sql of refused) {
              await assert.rejects(
                bi.query(sql),
                (e: { code?: string }) => e.code === "42501",
                sql,
              );
            }
          } finally {
            await bi.query("reset default_transaction_read_only");
          }
        },
      );

      await t.step(
        "LOGPIPE_BI_PII=full shows e-mails and addresses as stored at once (no dbt run); masked again after",
        async () => {
          const base = { ...Deno.env.toObject(), ...env.env };
          await migrate(loadConfig({ ...base, LOGPIPE_BI_PII: "full" }));
          const emails = await asBi(
            "select user_id, email from bi.dim_users order by user_id",
          );
          const stored = await asOwner(
            "select user_id, email from analytics.dim_users order by user_id",
          );
          assert.deepEqual(emails, stored);
          const [addr] = await asBi(
            "select count(*) as n, count(shipping_address) filter (where shipping_address ~ 'Main St') as a from bi.fact_order",
          );
          assert.equal(addr.a, addr.n);
          await migrate(loadConfig({ ...base, LOGPIPE_BI_PII: "masked" }));
          const [again] = await asBi(
            "select count(*) filter (where email ~ '^.\\*\\*\\*@') as masked, count(email) as n from bi.dim_users",
          );
          assert.equal(again.masked, again.n);
          const [none] = await asBi(
            "select count(shipping_address) as a from bi.fact_order",
          );
          assert.equal(Number(none.a), 0);
        },
      );

      const model = readTmdlModel(MODEL_DIR);

      await t.step(
        "every table, column and relationship key of the TMDL model exists in the warehouse with a compatible type; keys unique and without orphans",
        async () => {
          const columnsOf = async (schema: string, table: string) =>
            new Map(
              (await asBi(
                `select column_name, data_type from information_schema.columns
               where table_schema = $1 and table_name = $2`,
                [schema, table],
              )).map((r) => [r.column_name as string, r.data_type as string]),
            );
          const wrong: string[] = [];
          for (const table of model.tables) {
            const [p] = table.partitions;
            const cols = await columnsOf(p.schema!, p.item!);
            assert.ok(
              cols.size > 0,
              `${p.schema}.${p.item} is not readable by the BI role`,
            );
            for (const c of table.columns) {
              const pgType = cols.get(c.sourceColumn ?? c.name);
              if (!pgType) {
                wrong.push(
                  `${table.name}[${c.name}]: no ${p.item}.${c.sourceColumn}`,
                );
              } else if (!COMPATIBLE[c.dataType]?.includes(pgType)) {
                wrong.push(
                  `${table.name}[${c.name}]: ${c.dataType} cannot hold ${pgType}`,
                );
              }
            }
          }
          assert.deepEqual(wrong, []);
          const relation = (name: string) =>
            model.tables.find((x) => x.name === name)!.partitions[0];
          for (const r of model.relationships) {
            const from = relation(r.fromTable);
            const to = relation(r.toTable);
            const fromType = (await columnsOf(from.schema!, from.item!)).get(
              r.fromColumn,
            );
            const toType = (await columnsOf(to.schema!, to.item!)).get(
              r.toColumn,
            );
            assert.ok(
              fromType && fromType === toType,
              `${r.name}: ${fromType} -> ${toType}`,
            );
            const [one] = await asBi(
              `select count(*) as n, count(distinct "${r.toColumn}") as d,
                    count("${r.toColumn}") as nn from bi."${to.item}"`,
            );
            assert.ok(Number(one.n) > 0);
            assert.equal(
              one.d,
              one.n,
              `${r.toTable}[${r.toColumn}] is not unique`,
            );
            assert.equal(
              one.nn,
              one.n,
              `${r.toTable}[${r.toColumn}] has nulls`,
            );
            const [orphans] = await asBi(
              `select count(*) as n from bi."${from.item}" f
             where not exists (select 1 from bi."${to.item}" t where t."${r.toColumn}" = f."${r.fromColumn}")`,
            );
            assert.equal(
              Number(orphans.n),
              0,
              `${r.name}: keys without a ${r.toTable} row`,
            );
          }
          const [days] = await asBi(
            "select count(*) as n, count(distinct date_day) as d, max(date_day) - min(date_day) + 1 as span from bi.dim_date",
          );
          assert.equal(days.d, days.n);
          assert.equal(
            Number(days.span),
            Number(days.n),
            "the date table has gaps",
          );
        },
      );

      await t.step(
        "every DAX measure equals the same figure on the marts (and the fixture's own totals)",
        async () => {
          const measures = model.tables.flatMap((x) => x.measures);
          assert.deepEqual(
            measures.map((x) => x.name).sort(),
            Object.keys(TRANSLATIONS).sort(),
            "every measure has a translation here, and nothing else",
          );
          const days = (await asOwner(
            "select date_day::text as d from analytics.dim_date order by 1",
          )).map((r) => r.d as string);
          const windows: [string, string][] = [
            ...days.map((d) => [d, d] as [string, string]),
            ...days.slice(2).map((d, i) => [days[i], d] as [string, string]),
            [days[0], days.at(-1)!],
          ];
          let compared = 0;
          for (const m of measures) {
            const tr = TRANSLATIONS[m.name];
            assert.equal(
              normalize(m.expression),
              normalize(tr.dax),
              `${m.name}: DAX changed`,
            );
            for (const check of tr.checks) {
              const contexts = check.context === "window" ? windows : [[]];
              for (const params of contexts) {
                // Windows at the start have no previous period: blank on both sides.
                assertSame(
                  `${m.name} by ${check.context} ${params.join("..")}`,
                  await figures(asBi, check.dax, params),
                  await figures(asOwner, check.marts, params),
                );
                compared++;
              }
            }
          }
          // The windows include days with a previous period.
          const nonBlank = await figures(
            asBi,
            TRANSLATIONS["Revenue Previous Period"].checks[0].dax,
            [days[1], days[1]],
          );
          assert.ok(
            Object.keys(nonBlank).length,
            "no previous-period revenue to compare",
          );
          // The fixture counted these itself, independently of SQL and dbt.
          const total = async (name: string) =>
            Number(
              (await asBi(
                TRANSLATIONS[name].checks.find((c) => c.context === "total")!
                  .dax,
              ))[0].v,
            );
          assert.equal(
            Math.round(await total("Revenue") * 100),
            totals.revenueCents,
          );
          assert.equal(
            await total("Completed Orders"),
            totals.ordersByStatus.completed,
          );
          assert.equal(
            await total("Failed Orders"),
            totals.ordersByStatus.failed,
          );
          const [sessions] = await asBi(
            "select count(*) as n from bi.mart_sessions",
          );
          assert.equal(Number(sessions.n), 900);
          console.log(
            `${measures.length} measures, ${compared} filter contexts compared`,
          );
        },
      );
    } finally {
      await bi.end().catch(() => {});
      await owner.end().catch(() => {});
      await env.cleanup();
    }
  },
});
