/**
 * The live metrics' exactly-once bookkeeping on the real Postgres: a claim
 * per partition (the epoch goes up; the row starts at the given offset),
 * counts of several partitions of the same cell added in one write, a
 * replayed range refused, and a consumer whose claim was taken over can no
 * longer add counts.
 */
import assert from "node:assert/strict";
import { createTestEnv } from "../testing/env.ts";
import { createPool } from "../clients/postgres.ts";
import { MetricsAggregator } from "./metrics.ts";
import { MetricsWriter } from "./metrics_writer.ts";
import { type FlatRow, NO_DETAILS } from "../events/flatten.ts";

function row(offset: number): FlatRow {
  return {
    event_id: `e${offset}`,
    schema_version: 1,
    event_type: "search",
    event_ts: new Date().toISOString(),
    level: "INFO",
    service: "search-service",
    user_id: "user_1",
    session_id: "s",
    device_type: "mobile",
    geo_country: "EG",
    geo_city: "Cairo",
    response_time_ms: 10,
    ...NO_DETAILS,
    details_json: "{}",
    kafka_topic: "T",
    kafka_partition: 0,
    kafka_offset: offset,
    kafka_timestamp: null,
  };
}

const hb = {
  instanceId: "t",
  state: "running",
  startedAt: new Date(),
  detail: {},
};

Deno.test({
  name:
    "metrics writer: claims, counts added once per offset, a taken-over claim adds nothing",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const t = await createTestEnv("consumer_metrics_writer", { noTopic: true });
    const pool = createPool(t.config, { max: 2 });
    try {
      const w = new MetricsWriter(pool, "T", "a");
      const claims = await w.claim([
        { partition: 0, initialLast: 9 },
        { partition: 1, initialLast: -1 },
      ]);
      assert.deepEqual(
        claims.map((c) => [c.partition, c.epoch, c.lastCounted]).sort(),
        [[0, 1, 9], [1, 1, -1]],
      );
      const m = new MetricsAggregator();
      for (const c of claims) m.startCounting(c.partition, c.epoch);
      for (let o = 10; o < 15; o++) {
        m.countEvent(0, o, row(o), JSON.stringify(row(o)), 1);
      }
      for (let o = 0; o < 3; o++) {
        m.countEvent(1, o, row(o), JSON.stringify(row(o)), 1);
      }
      m.countDeadLetter(1, 3, "invalid_json");
      const snap = m.drain();
      assert.deepEqual((await w.write(snap, hb)).refused, []);
      const total = async () =>
        (await pool.query(
          "select coalesce(sum(events), 0)::int as n from monitoring.event_counts",
        )).rows[0].n;
      assert.equal(
        await total(),
        8,
        "two partitions' counts of one cell add up",
      );
      // The same snapshot again (a replay): refused, nothing added.
      assert.deepEqual((await w.write(snap, hb)).refused.sort(), [0, 1]);
      assert.equal(await total(), 8);
      // Another consumer claims partition 0: the first one's counts of it
      // are refused from now on; it resumes after offset 14.
      const b = new MetricsWriter(pool, "T", "b");
      const [taken] = await b.claim([{ partition: 0, initialLast: 0 }]);
      assert.deepEqual([taken.epoch, taken.lastCounted], [2, 14]);
      m.countEvent(0, 15, row(15), JSON.stringify(row(15)), 1);
      m.countEvent(1, 4, row(4), JSON.stringify(row(4)), 1);
      assert.deepEqual((await w.write(m.drain(), hb)).refused, [0]);
      assert.equal(await total(), 9);
      const [{ counted }] = (await pool.query(
        `select string_agg(kafka_partition || ':' || owner_epoch || ':' || last_counted_offset, ','
                           order by kafka_partition) as counted
           from monitoring.consumer_counted`,
      )).rows;
      assert.equal(counted, "0:2:14,1:1:4");
    } finally {
      await pool.end();
      await t.cleanup();
    }
  },
});
