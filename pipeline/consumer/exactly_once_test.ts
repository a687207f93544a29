/**
 * Issue test: 200k events with 5 % bad ones → the raw zone holds exactly the
 * valid event_ids once each (read back from Parquet with DuckDB), the
 * dead-letter zone exactly the bad records with the right reasons; nothing
 * else. Real Kafka, HDFS and Postgres, isolated by createTestEnv.
 */
import assert from "node:assert/strict";
import { createTestEnv } from "../testing/env.ts";
import {
  assertExactlyOnce,
  consumeUntilCaughtUp,
  produceGenerated,
} from "../testing/consumer.ts";

const COUNT = Number(Deno.env.get("LOGPIPE_TEST_SCALE") ?? "1") * 200_000;

Deno.test({
  name:
    `consumer: ${COUNT} events with 5% bad → raw and dead-letter zones exactly once`,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const t = await createTestEnv("consumer_exactly_once");
    try {
      const produced = await produceGenerated(t.config, {
        count: COUNT,
        badRate: 0.05,
        seed: "exactly-once",
      });
      assert.ok(
        produced.badCount > COUNT * 0.03 && produced.badCount < COUNT * 0.06,
      );
      const summary = await consumeUntilCaughtUp(t.env, ["--no-metrics"]);
      assert.equal(summary.recordsIn, COUNT);
      assert.equal(summary.eventsOut, produced.good.size);
      assert.equal(summary.deadLetters, produced.badCount);
      const z = await assertExactlyOnce(t.config, produced);
      const reasons = new Set(z.deadLetters.map((d) => d.reason));
      assert.ok(
        reasons.size >= 10,
        `dead-letter reasons seen: ${[...reasons]}`,
      );
      console.log(
        `  ${COUNT} records: ${z.raw.length} events in ${z.rawFiles} Parquet files ` +
          `(${
            (z.rawBytes / z.raw.length).toFixed(1)
          } B/event), ${z.deadLetters.length} dead letters; ` +
          `consumer ${summary.elapsedMs} ms`,
      );
    } finally {
      await t.cleanup();
    }
  },
});
