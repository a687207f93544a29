/**
 * Integration tests of the dbt project on the REAL shared Postgres with REAL
 * dbt (the project venv): each test has its own database (createTestEnv),
 * fills raw.* with the seeded fixture and runs dbt through runDbt.
 */
import assert from "node:assert/strict";
import { createTestEnv, type TestEnv } from "../testing/env.ts";
import { withConnection } from "../clients/postgres.ts";
import {
  type DbtRunResult,
  failedNodes,
  generateDocs,
  runDbt,
} from "./toolchain.ts";
import {
  generateEvents,
  insertRows,
  seedRaw,
} from "../testing/dbt_fixtures.ts";

const START = new Date("2026-03-01T00:00:00Z");

function explain(run: DbtRunResult): string {
  const bad = failedNodes(run, { includeWarn: true });
  return bad.length
    ? bad.map((b) =>
      `${b.name}: ${b.status} ${b.failures ?? ""} ${b.message ?? ""}`
    ).join("\n")
    : run.stdout.split("\n").slice(-25).join("\n");
}

async function build(
  t: TestEnv,
  args: string[] = ["build"],
): Promise<DbtRunResult> {
  const run = await runDbt(t.config, args);
  assert.ok(run.ok, `dbt ${args.join(" ")} failed:\n${explain(run)}`);
  assert.equal(failedNodes(run, { includeWarn: true }).length, 0, explain(run));
  return run;
}

async function sql<T = Record<string, unknown>>(
  t: TestEnv,
  text: string,
  params: unknown[] = [],
): Promise<T[]> {
  return await withConnection(
    t.config.postgres.url,
    async (c) => (await c.query(text, params)).rows as T[],
  );
}

/** Row count of every analytics table and view. */
async function analyticsCounts(t: TestEnv): Promise<Record<string, number>> {
  const rels = await sql<{ name: string }>(
    t,
    `select table_name as name from information_schema.tables
     where table_schema = 'analytics' order by 1`,
  );
  const out: Record<string, number> = {};
  for (const { name } of rels) {
    out[name] = Number(
      (await sql<{ n: string }>(
        t,
        `select count(*) as n from analytics."${name}"`,
      ))[0].n,
    );
  }
  return out;
}

/** md5 over a table's rows in a stable order (excluding bookkeeping columns). */
async function fingerprint(
  t: TestEnv,
  table: string,
  orderBy: string,
): Promise<string> {
  const cols = await sql<{ column_name: string }>(
    t,
    `select column_name from information_schema.columns
     where table_schema = 'analytics' and table_name = $1 and column_name not like '\\_%'
     order by ordinal_position`,
    [table],
  );
  const list = cols.map((c) => `"${c.column_name}"`).join(", ");
  const [row] = await sql<{ h: string }>(
    t,
    `select md5(coalesce(string_agg(r::text, E'\\n' order by ${orderBy}), '')) as h
     from (select ${list} from analytics."${table}") r`,
  );
  return row.h;
}

Deno.test({
  name:
    "dbt: debug passes, build is green on generated data, marts equal independent totals, rebuild is a no-op, docs generate offline",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const t = await createTestEnv("dbt_build");
    try {
      const debug = await runDbt(t.config, ["debug"]);
      assert.ok(debug.ok, debug.stdout.slice(-2000));
      assert.match(debug.stdout, /All checks passed/);

      const totals = await withConnection(
        t.config.postgres.url,
        (c) =>
          seedRaw(c, {
            seed: 7,
            sessions: 1500,
            users: 150,
            products: 300,
            start: START,
            sessionGapS: 300,
          }),
      );
      assert.ok(
        totals.ordersByStatus.completed > 50 &&
          totals.ordersByStatus.pending > 0,
      );

      const first = await build(t);
      const kinds = new Set(first.results.map((r) => r.resourceType));
      for (const k of ["model", "snapshot", "test", "unit_test"]) {
        assert.ok(kinds.has(k), `no ${k} ran`);
      }
      const singular = first.results.filter((r) =>
        r.uniqueId.startsWith("test.logpipe.assert_")
      );
      assert.ok(singular.length >= 9, `singular tests ran: ${singular.length}`);

      // Independent check: totals counted by the generator itself, and SQL straight over raw.
      const [sales] = await sql<
        { revenue: string; completed: string; failed: string; pending: string }
      >(
        t,
        `select sum(revenue) as revenue, sum(orders_completed) as completed,
                sum(orders_failed) as failed, sum(orders_pending) as pending
         from analytics.mart_daily_sales`,
      );
      assert.equal(
        Math.round(Number(sales.revenue) * 100),
        totals.revenueCents,
      );
      assert.equal(Number(sales.completed), totals.ordersByStatus.completed);
      assert.equal(Number(sales.failed), totals.ordersByStatus.failed);
      assert.equal(Number(sales.pending), totals.ordersByStatus.pending);
      const [rawRevenue] = await sql<{ v: string }>(
        t,
        `select sum(p.amount) as v from raw.events p
         where p.event_type = 'purchase'
           and exists (select 1 from raw.events c where c.order_id = p.order_id and c.event_type = 'order_complete')`,
      );
      assert.equal(Math.round(Number(rawRevenue.v) * 100), totals.revenueCents);
      const byType = await sql<{ event_type: string; n: string }>(
        t,
        "select event_type, sum(events) as n from analytics.mart_event_counts group by 1",
      );
      assert.deepEqual(
        Object.fromEntries(byType.map((r) => [r.event_type, Number(r.n)])),
        totals.eventsByType,
      );
      const rawByType = await sql<{ event_type: string; n: string }>(
        t,
        "select event_type, count(*) as n from raw.events group by 1",
      );
      assert.deepEqual(
        Object.fromEntries(rawByType.map((r) => [r.event_type, Number(r.n)])),
        totals.eventsByType,
      );
      const [sess] = await sql<{ n: string }>(
        t,
        "select count(*) as n from analytics.mart_sessions",
      );
      assert.equal(Number(sess.n), 1500);
      const [days] = await sql<{ n: string; lo: string; hi: string }>(
        t,
        "select count(*) as n, min(date_day)::text as lo, max(date_day)::text as hi from analytics.dim_date",
      );
      assert.equal(days.lo, "2026-03-01");
      assert.ok(Number(days.n) >= 5, `dim_date days ${days.n}`);

      // Second build on the same raw data: no row count and no content changes.
      const countsBefore = await analyticsCounts(t);
      const prints = {
        fact_event: await fingerprint(t, "fact_event", "event_sk"),
        fact_order: await fingerprint(t, "fact_order", "order_line_sk"),
        mart_daily_sales: await fingerprint(
          t,
          "mart_daily_sales",
          "date_day, payment_method, geo_country",
        ),
        mart_sessions: await fingerprint(t, "mart_sessions", "session_id"),
      };
      await build(t);
      assert.deepEqual(await analyticsCounts(t), countsBefore);
      for (const [table, before] of Object.entries(prints)) {
        const orderBy = table === "fact_event"
          ? "event_sk"
          : table === "fact_order"
          ? "order_line_sk"
          : table === "mart_sessions"
          ? "session_id"
          : "date_day, payment_method, geo_country";
        assert.equal(
          await fingerprint(t, table, orderBy),
          before,
          `${table} changed on rebuild`,
        );
      }

      // Docs: generated offline, and every model and column described.
      const out = await Deno.makeTempDir({ prefix: "dbt-docs-" });
      try {
        const { dir, run } = await generateDocs(t.config, out);
        assert.ok(run.ok, explain(run));
        for (
          const f of [
            "index.html",
            "static_index.html",
            "manifest.json",
            "catalog.json",
          ]
        ) {
          assert.ok((await Deno.stat(`${dir}/${f}`)).size > 0, f);
        }
        const manifest = JSON.parse(
          await Deno.readTextFile(`${dir}/manifest.json`),
        );
        const catalog = JSON.parse(
          await Deno.readTextFile(`${dir}/catalog.json`),
        );
        const missing: string[] = [];
        for (
          const [id, node] of Object.entries<Record<string, unknown>>(
            manifest.nodes,
          )
        ) {
          if (!["model", "snapshot"].includes(node.resource_type as string)) {
            continue;
          }
          if (!(node.description as string)?.trim()) {
            missing.push(`${id} (model)`);
          }
          const described = node.columns as Record<
            string,
            { description: string }
          >;
          for (const col of Object.keys(catalog.nodes[id]?.columns ?? {})) {
            if (!described[col]?.description?.trim()) {
              missing.push(`${id}.${col}`);
            }
          }
        }
        assert.deepEqual(missing, [], `undocumented: ${missing.join(", ")}`);
      } finally {
        await Deno.remove(out, { recursive: true });
      }
    } finally {
      await t.cleanup();
    }
  },
});

/** A planted fault, the singular test that must catch it, and how to undo it. */
interface Plant {
  test: string;
  plant: string;
  undo: string;
}

Deno.test({
  name: "dbt: every singular test fails on a dataset planted to break it",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const t = await createTestEnv("dbt_plant");
    try {
      await withConnection(
        t.config.postgres.url,
        (c) =>
          seedRaw(c, {
            seed: 11,
            sessions: 600,
            users: 80,
            products: 120,
            start: START,
            sessionGapS: 600,
          }),
      );
      await build(t);
      const [o] = await sql<{ order_id: string; amount: string }>(
        t,
        `select order_id, amount::text from raw.events where event_type = 'purchase'
         and order_id in (select order_id from raw.events where event_type = 'order_complete')
         order by order_id limit 1`,
      );
      const [mid] = await sql<{ d: string }>(
        t,
        "select date_day::text as d from analytics.dim_date order by date_day offset 1 limit 1",
      );
      const [sale] = await sql<{ d: string; pm: string; c: string }>(
        t,
        `select date_day::text as d, payment_method as pm, geo_country as c from analytics.mart_daily_sales
         where revenue > 0 order by 1, 2, 3 limit 1`,
      );
      const saleKey =
        `date_day = '${sale.d}' and payment_method = '${sale.pm}' and geo_country = '${sale.c}'`;
      const [ev] = await sql<{ event_id: string }>(
        t,
        "select event_id from analytics.fact_event order by event_id limit 1",
      );
      const fakeComplete = (id: string, orderId: string, type: string) =>
        `insert into raw.events (event_id, schema_version, event_type, event_ts, level, service, user_id, session_id,
           device_type, geo_country, geo_city, response_time_ms, order_id, details_json, kafka_topic, kafka_partition,
           kafka_offset, source_file)
         values ('${id}', 1, '${type}', '2026-03-02T00:00:00Z', 'INFO', 'order-service', 'user_1', 'sess_x',
           'mobile', 'EG', 'Cairo', 10, '${orderId}', '{}', 'LogEvents', 0, 999999, 'planted')`;
      const plants: Plant[] = [
        {
          test: "assert_order_amount_equals_sum_of_lines",
          plant:
            `update raw.events set amount = amount + 0.01 where event_type = 'purchase' and order_id = '${o.order_id}'`,
          undo:
            `update raw.events set amount = ${o.amount} where event_type = 'purchase' and order_id = '${o.order_id}'`,
        },
        {
          test: "assert_completed_orders_have_purchase",
          plant: fakeComplete(
            "planted-orphan",
            "ord_never_placed",
            "order_complete",
          ),
          undo: "delete from raw.events where event_id = 'planted-orphan'",
        },
        {
          test: "assert_order_settled_once",
          plant: fakeComplete("planted-fail", o.order_id, "order_failed"),
          undo: "delete from raw.events where event_id = 'planted-fail'",
        },
        {
          test: "assert_sales_mart_revenue_matches_fact_order",
          plant:
            `update analytics.mart_daily_sales set revenue = revenue + 1 where ${saleKey}`,
          undo:
            `update analytics.mart_daily_sales set revenue = revenue - 1 where ${saleKey}`,
        },
        {
          test: "assert_fact_event_matches_staging",
          plant:
            `create table analytics.keep_event as select * from analytics.fact_event where event_id = '${ev.event_id}';
                  delete from analytics.fact_event where event_id = '${ev.event_id}'`,
          undo:
            "insert into analytics.fact_event select * from analytics.keep_event; drop table analytics.keep_event",
        },
        {
          test: "assert_fact_order_status_current",
          plant:
            `update analytics.fact_order set status = 'pending' where order_id = '${o.order_id}'`,
          undo:
            `update analytics.fact_order set status = 'completed' where order_id = '${o.order_id}'`,
        },
        {
          test: "assert_product_versions_contiguous",
          plant:
            "update analytics.dim_product set valid_from = '1950-01-01' where product_id = 'prod_00001'",
          undo:
            "update analytics.dim_product set valid_from = '1900-01-01' where product_id = 'prod_00001'",
        },
        {
          test: "assert_facts_join_version_in_force",
          plant:
            `create table analytics.keep_sk as select order_line_sk, product_sk from analytics.fact_order where order_id = '${o.order_id}';
                  update analytics.fact_order f set product_sk = (
                    select p.product_sk from analytics.dim_product p
                    where p.source = 'raw.products' and p.product_id <> f.product_id order by p.product_id limit 1)
                  where order_id = '${o.order_id}'`,
          undo:
            `update analytics.fact_order f set product_sk = k.product_sk from analytics.keep_sk k where k.order_line_sk = f.order_line_sk;
                 drop table analytics.keep_sk`,
        },
        {
          test: "assert_dim_date_has_no_gaps",
          plant:
            `create table analytics.keep_day as select * from analytics.dim_date where date_day = '${mid.d}';
                  delete from analytics.dim_date where date_day = '${mid.d}'`,
          undo:
            "insert into analytics.dim_date select * from analytics.keep_day; drop table analytics.keep_day",
        },
      ];
      const tested = new Set<string>();
      for (const p of plants) {
        await sql(t, p.plant);
        const run = await runDbt(t.config, ["test", "--select", p.test]);
        const r = run.results.find((x) => x.name === p.test);
        assert.ok(r, `${p.test} did not run:\n${run.stdout.slice(-1500)}`);
        assert.equal(
          r.status,
          "fail",
          `${p.test} should fail on its planted fault, got ${r.status}`,
        );
        assert.ok((r.failures ?? 0) > 0);
        assert.equal(run.ok, false);
        await sql(t, p.undo);
        tested.add(p.test);
      }
      // Undone, all singular tests pass again: the plants were the only faults.
      const again = await build(t, ["test", "--select", "test_type:singular"]);
      const names = again.results.filter((r) => r.resourceType === "test").map((
        r,
      ) => r.name);
      for (const name of names) {
        assert.ok(
          tested.has(name),
          `singular test ${name} has no planted-fault case`,
        );
      }
      assert.equal(names.length, tested.size);
    } finally {
      await t.cleanup();
    }
  },
});

Deno.test({
  name:
    "dbt: a price change makes two dim_product versions and facts join the version in force; late settlement updates the order",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const t = await createTestEnv("dbt_scd2");
    try {
      const opts = {
        seed: 5,
        sessions: 300,
        users: 40,
        products: 6,
        start: START,
        sessionGapS: 60,
      };
      await withConnection(t.config.postgres.url, (c) => seedRaw(c, opts));
      await build(t);
      const [{ price: oldPrice }] = await sql<{ price: string }>(
        t,
        "select price::text from raw.products where product_id = 'prod_00001'",
      );
      const changeAt = new Date(START.getTime() + 300 * 60_000 + 3_600_000); // after the first slice
      const newPrice = (Number(oldPrice) + 10).toFixed(2);
      await sql(
        t,
        "update raw.products set price = $1, updated_at = $2 where product_id = 'prod_00001'",
        [
          newPrice,
          changeAt.toISOString(),
        ],
      );
      // A pending order of the first slice completes in the second batch.
      const [pending] = await sql<{ order_id: string }>(
        t,
        "select order_id from analytics.fact_order where status = 'pending' order by order_id limit 1",
      );
      assert.ok(pending, "fixture has a pending order");
      // Second slice: later sessions, priced with the new price for prod_00001.
      const prices = new Map(
        (await sql<{ product_id: string; price: string }>(
          t,
          "select product_id, price::text from raw.products",
        ))
          .map((r) => [r.product_id, r.price]),
      );
      await withConnection(t.config.postgres.url, async (c) => {
        await generateEvents(
          {
            ...opts,
            start: new Date(changeAt.getTime() + 60_000 - 300 * 60_000),
            firstSession: 300,
          },
          (pid) => prices.get(pid)!,
          (rows) => insertRows(c, "raw.events", rows),
        );
        await c.query(
          `insert into raw.events (event_id, schema_version, event_type, event_ts, level, service, user_id, session_id,
             device_type, geo_country, geo_city, response_time_ms, order_id, shipping_method, completed_at,
             details_json, kafka_topic, kafka_partition, kafka_offset, source_file)
           select 'late-complete', 1, 'order_complete', $2::timestamptz, 'INFO', service, user_id, session_id,
             device_type, geo_country, geo_city, 12, order_id, 'express', $2::timestamptz,
             '{}', 'LogEvents', 0, 888888, 'late'
           from raw.events where event_type = 'purchase' and order_id = $1`,
          [
            pending.order_id,
            new Date(changeAt.getTime() + 7_200_000).toISOString(),
          ],
        );
      });
      await build(t);

      const versions = await sql<
        {
          version_no: number;
          price: string;
          valid_from: Date;
          is_current: boolean;
        }
      >(
        t,
        `select version_no, price::text, valid_from, is_current from analytics.dim_product
         where product_id = 'prod_00001' order by version_no`,
      );
      assert.equal(versions.length, 2);
      assert.equal(versions[0].price, oldPrice);
      assert.equal(versions[1].price, newPrice);
      assert.equal(
        versions[1].valid_from.toISOString(),
        changeAt.toISOString(),
      );
      assert.deepEqual(versions.map((v) => v.is_current), [false, true]);

      const joined = await sql<
        { before: boolean; price: string; unit_price: string; n: string }
      >(
        t,
        `select f.placed_at < $1::timestamptz as before, p.price::text, f.unit_price::text, count(*) as n
         from analytics.fact_order f join analytics.dim_product p on p.product_sk = f.product_sk
         where f.product_id = 'prod_00001' group by 1, 2, 3 order by 1`,
        [changeAt.toISOString()],
      );
      const before = joined.filter((j) => j.before);
      const after = joined.filter((j) => !j.before);
      assert.ok(
        before.length && after.length,
        `orders on both sides of the change: ${JSON.stringify(joined)}`,
      );
      for (const j of before) assert.equal(j.price, oldPrice);
      for (const j of after) assert.equal(j.price, newPrice);
      // The version joined carries the price the customer actually paid.
      for (const j of joined) assert.equal(j.unit_price, j.price);
      const [views] = await sql<{ wrong: string }>(
        t,
        `select count(*) filter (where (f.event_ts < $1::timestamptz) <> (p.version_no = 1)) as wrong
         from analytics.fact_event f join analytics.dim_product p on p.product_sk = f.product_sk
         where f.product_id = 'prod_00001'`,
        [changeAt.toISOString()],
      );
      assert.equal(Number(views.wrong), 0);

      const statuses = await sql<{ status: string }>(
        t,
        "select distinct status from analytics.fact_order where order_id = $1",
        [pending.order_id],
      );
      assert.deepEqual(statuses.map((s) => s.status), ["completed"]);
    } finally {
      await t.cleanup();
    }
  },
});
