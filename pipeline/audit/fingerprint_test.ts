// Reproducibility: two fresh pipelines fed the same events
// (`produce --seed S --start-time T --count N`) end with identical mart
// fingerprints, and each passes the audit; and DuckDB straight over the
// raw-zone Parquet agrees with the marts. Surrogate keys, load timestamps
// and row order must not leak into the marts' content.
import assert from "node:assert/strict";
import { createTestEnv, runTask, type TestEnv } from "../testing/env.ts";
import { fingerprintMarts } from "./fingerprint.ts";
import { queryRawZone } from "../zones/readers.ts";
import { withConnection } from "../clients/postgres.ts";

const PRODUCE = [
  // Enough events for orders to complete: at the backfill's event clock
  // (1,000 events/s) sessions need several seconds to reach checkout.
  "--count",
  "12000",
  "--seed",
  "fingerprint",
  "--start-time",
  "2026-03-01T10:00:00Z",
  "--bad-rate",
  "0.05",
  "--quiet",
];

async function pipeline(t: TestEnv, partitions: string): Promise<void> {
  const p = await runTask(t, "produce.ts", PRODUCE);
  assert.equal(p.code, 0, p.stderr);
  // A different micro-batch size: other file boundaries, same content.
  const c = await runTask(t, "consume.ts", [
    "--until-caught-up",
    "--max-batch-records",
    partitions,
  ]);
  assert.equal(c.code, 0, c.stderr.slice(-2000));
  const b = await runTask(t, "batch.ts", []);
  assert.equal(b.code, 0, `${b.stdout}\n${b.stderr.slice(-2000)}`);
  const a = await runTask(t, "audit.ts", []);
  assert.equal(
    a.code,
    0,
    `audit failed:\n${a.stdout}\n${a.stderr.slice(-3000)}`,
  );
}

Deno.test("two fresh pipelines fed the same events have identical mart fingerprints", async () => {
  // Different partition counts too: Kafka placement must not matter.
  const a = await createTestEnv("fingerprint_a", { partitions: 3 });
  const b = await createTestEnv("fingerprint_b", { partitions: 5 });
  try {
    // Side by side: each has its own topic, HDFS root and database (and so
    // its own batch lock).
    await Promise.all([pipeline(a, "5000"), pipeline(b, "700")]);
    const fa = await fingerprintMarts(a.config);
    const fb = await fingerprintMarts(b.config);
    const diff = fa.tables.filter((t, i) => t.hash !== fb.tables[i]?.hash).map((
      t,
    ) => t.table);
    assert.deepEqual(
      diff,
      [],
      `tables whose content differs: ${diff.join(", ")}`,
    );
    assert.equal(fa.total, fb.total);
    // Not vacuous: the marts hold the events.
    const facts = fa.tables.find((t) => t.table === "fact_event");
    assert.ok(facts && facts.rows > 10_000, `fact_event rows: ${facts?.rows}`);
    assert.ok(
      fa.tables.length >= 8,
      `tables fingerprinted: ${fa.tables.length}`,
    );

    // An independent check outside dbt: DuckDB straight over the raw-zone
    // Parquet files gives the same revenue, orders by status and events by
    // type as the marts.
    const zone = await queryRawZone(a.config, {
      byType:
        `select event_type, count(*)::bigint as n from raw_zone group by 1 order by 1`,
      orders: `
        with o as (
          select order_id,
                 max(amount) filter (where event_type = 'purchase') as amount,
                 bool_or(event_type = 'order_complete') as done,
                 bool_or(event_type = 'order_failed') as failed
            from raw_zone where order_id is not null group by 1
          having bool_or(event_type = 'purchase'))
        select case when done then 'completed' when failed then 'failed' else 'pending' end as status,
               count(*)::bigint as n, sum(amount)::decimal(14,2)::varchar as amount
          from o group by 1 order by 1`,
    });
    const marts = await withConnection(a.config.postgres.url, async (c) => ({
      byType: (await c.query(
        `select event_type, sum(events)::bigint as n from analytics.mart_event_counts
          group by 1 order by 1`,
      )).rows,
      sales: (await c.query(
        `select sum(orders_completed)::int as completed, sum(orders_failed)::int as failed,
                sum(orders_pending)::int as pending, sum(revenue)::text as revenue
           from analytics.mart_daily_sales`,
      )).rows[0],
    }));
    assert.deepEqual(
      marts.byType.map((r) => [r.event_type, Number(r.n)]),
      zone.byType.map((r) => [r.event_type, Number(r.n)]),
      "events by type: marts vs DuckDB over the raw zone",
    );
    const status = Object.fromEntries(zone.orders.map((r) => [r.status, r]));
    assert.ok(
      Number(status.completed?.n ?? 0) > 10,
      "the data holds completed orders",
    );
    assert.equal(marts.sales.completed, Number(status.completed?.n ?? 0));
    assert.equal(marts.sales.failed, Number(status.failed?.n ?? 0));
    assert.equal(marts.sales.pending, Number(status.pending?.n ?? 0));
    assert.equal(
      Number(marts.sales.revenue).toFixed(2),
      Number(status.completed?.amount).toFixed(2),
    );
  } finally {
    await a.cleanup();
    await b.cleanup();
  }
});
