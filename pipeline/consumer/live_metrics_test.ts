/**
 * Issue test (live metrics): a running consumer, a known input produced while
 * it runs → monitoring.* counts equal the input by event type, by country and
 * dead letters by reason; the feed holds the newest 1,000 events; lag goes
 * back to 0 on every partition; SIGTERM ends the consumer with exit 0 and
 * its heartbeat says "stopped". Then a rollup moves old 10-second buckets
 * into 1-minute ones without changing the totals.
 *
 * Exactly once: the metrics count CONSUMED records while the files wait for
 * their rotate interval, so the first consumer is killed (SIGKILL) midway,
 * when part of the input is counted and none of it is in HDFS; the second
 * one re-reads everything from HDFS's position 0 and must count only what
 * the first had not (the last counted offset per partition is in Postgres).
 */
import assert from "node:assert/strict";
import { createTestEnv } from "../testing/env.ts";
import { withConnection } from "../clients/postgres.ts";
import { createPool } from "../clients/postgres.ts";
import { produceGenerated, spawnConsumer } from "../testing/consumer.ts";
import { MetricsWriter } from "./metrics_writer.ts";

const COUNT = 30_000;

type Q = (
  sql: string,
  params?: unknown[],
) => Promise<Record<string, unknown>[]>;

Deno.test({
  name:
    "consumer: live metrics equal the input by type, country and reason; lag returns to 0",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const t = await createTestEnv("consumer_metrics");
    const url = t.env.LOGPIPE_DATABASE_URL;
    const q: Q = (sql, params = []) =>
      withConnection(url, async (c) => (await c.query(sql, params)).rows);
    const args = [
      "--metrics-interval-ms",
      "500",
      "--session-timeout-ms",
      "6000",
    ];
    let child = spawnConsumer(t.env, args);
    let out = child.output();
    let exited = false;
    try {
      // Produce while the consumer runs, and kill it once part of the input
      // is counted.
      const producing = produceGenerated(t.config, {
        count: COUNT,
        badRate: 0.05,
        seed: "metrics",
      });
      const counted = async () =>
        (await q(
          "select coalesce(sum(events), 0)::int as n from monitoring.event_counts",
        ))[0].n as number;
      const part = Date.now() + 120_000;
      while ((await counted()) < COUNT / 10) {
        assert.ok(Date.now() < part, "nothing counted within 2 minutes");
        await new Promise((r) => setTimeout(r, 50));
      }
      child.kill("SIGKILL");
      await out;
      const produced = await producing;
      const byType = new Map<string, number>();
      const byCountry = new Map<string, number>();
      for (const [type, country] of produced.good.values()) {
        byType.set(type, (byType.get(type) ?? 0) + 1);
        byCountry.set(country, (byCountry.get(country) ?? 0) + 1);
      }
      const byReason = new Map<string, number>();
      for (const reasons of produced.bad.values()) {
        for (const r of reasons) byReason.set(r, (byReason.get(r) ?? 0) + 1);
      }
      const [{ files }] = await q(
        "select coalesce(sum(files_written), 0)::int as files from monitoring.consumer_stats",
      );
      assert.equal(files, 0, "nothing was committed to HDFS before the kill");
      const countedBeforeKill = await counted();
      child = spawnConsumer(t.env, args);
      out = child.output();
      // Wait until the metrics show everything and the lag is zero.
      const deadline = Date.now() + 180_000;
      for (;;) {
        const [{ n }] = await q(
          "select coalesce(sum(events), 0)::int as n from monitoring.event_counts",
        );
        const lag = await q(
          "select kafka_partition, lag_offsets::int as lag, end_offset::int as e, consumed_offset::int as consumed from monitoring.consumer_lag",
        );
        assert.ok(
          (n as number) <= produced.good.size,
          `events counted twice: ${n}`,
        );
        if (
          n === produced.good.size &&
          lag.length === t.config.kafka.partitions &&
          lag.every((r) => r.lag === 0 && r.consumed === r.e) &&
          lag.reduce((a, r) => a + (r.e as number), 0) === COUNT
        ) break;
        assert.ok(
          Date.now() < deadline,
          `metrics incomplete: ${n} events, lag ${JSON.stringify(lag)}`,
        );
        await new Promise((r) => setTimeout(r, 500));
      }
      const types = await q(
        "select event_type, sum(events)::int as n from monitoring.event_counts group by 1",
      );
      assert.deepEqual(
        Object.fromEntries(types.map((r) => [r.event_type, r.n])),
        Object.fromEntries(byType),
      );
      const countries = await q(
        "select geo_country, sum(events)::int as n from monitoring.event_counts group by 1",
      );
      assert.deepEqual(
        Object.fromEntries(countries.map((r) => [r.geo_country, r.n])),
        Object.fromEntries(byCountry),
      );
      const [orders] = await q(
        `select sum(orders)::int as o, sum(failed_orders)::int as f from monitoring.event_counts`,
      );
      assert.equal(orders.o, byType.get("order_complete") ?? 0);
      assert.equal(orders.f, byType.get("order_failed") ?? 0);
      const reasons = await q(
        "select reason, sum(records)::int as n from monitoring.dead_letter_counts group by 1",
      );
      assert.deepEqual(
        Object.fromEntries(reasons.map((r) => [r.reason, r.n])),
        Object.fromEntries(byReason),
      );
      const [stats] = await q(
        `select sum(records_in)::int as rin, sum(events_out)::int as eout, sum(dead_letters)::int as dl,
                sum(files_written)::int as files, max(latency_p95_ms) as p95
           from monitoring.consumer_stats`,
      );
      assert.equal(stats.rin, COUNT);
      assert.equal(stats.eout, produced.good.size);
      assert.equal(stats.dl, produced.badCount);
      assert.ok(stats.p95 !== null && (stats.p95 as number) >= 0);
      const [feed] = await q(
        "select count(*)::int as n, count(distinct event_id)::int as d from monitoring.recent_events",
      );
      assert.equal(feed.n, 1_000);
      assert.equal(feed.d, 1_000);
      // The feed's rows are real events of this input, flattened.
      const sample = await q(
        "select event_id, event_json->>'event_id' as j from monitoring.recent_events limit 50",
      );
      for (const r of sample) {
        assert.ok(produced.good.has(r.event_id as string));
        assert.equal(r.j, r.event_id);
      }
      const [hb] = await q(
        `select state, detail from monitoring.components where component = 'consumer'
          order by updated_at desc limit 1`,
      );
      assert.equal(hb.state, "running");

      // SIGTERM → clean exit (the open files are committed), heartbeat
      // "stopped"; the counts did not move.
      child.kill("SIGTERM");
      const res = await out;
      exited = true;
      assert.equal(res.code, 0);
      const hb2 = await q(
        `select state from monitoring.components where component = 'consumer'
          order by updated_at desc limit 1`,
      );
      assert.equal(hb2[0].state, "stopped");
      const [after] = await q(
        `select sum(files_written)::int as files, sum(events_out)::int as eout
           from monitoring.consumer_stats`,
      );
      assert.ok((after.files as number) > 0, "files committed at the stop");
      assert.equal(after.eout, produced.good.size);
      assert.equal(await counted(), produced.good.size);
      console.log(
        `  ${countedBeforeKill} of ${produced.good.size} events counted before the kill; ` +
          `every event counted once after the replay; ${after.files} files at the stop`,
      );

      // Rollup: pretend the buckets are 2 hours old, roll up, totals unchanged.
      await q(
        "update monitoring.event_counts set bucket = bucket - interval '2 hours'",
      );
      const pool = createPool(t.config, { max: 1 });
      try {
        assert.equal(
          await new MetricsWriter(pool, t.config.kafka.topic, "x").rollup(),
          true,
        );
      } finally {
        await pool.end();
      }
      const rolled = await q(
        `select bucket_secs, count(*)::int as rows, sum(events)::int as n,
                bool_and(extract(second from bucket) = 0) as aligned
           from monitoring.event_counts group by 1`,
      );
      assert.deepEqual(rolled.map((r) => [r.bucket_secs, r.n, r.aligned]), [
        [60, produced.good.size, true],
      ]);
    } finally {
      if (!exited) {
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
        await out.catch(() => {});
      }
      await t.cleanup();
    }
  },
});
