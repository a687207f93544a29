/**
 * Issue test (crash): while 500k records (5 % bad) are consumed, the
 * consumer is killed with SIGKILL at least 5 times and restarted each time;
 * afterwards every event is present exactly once (valid ones in the raw zone,
 * bad ones in the dead-letter zone) and every Kafka offset is in exactly one
 * file.
 *
 * The first kills are placed exactly in every window of the commit protocol
 * with the consumer's testing failpoints (the process SIGKILLs itself there):
 * half-way through staging, after staging, right after the commit-point
 * rename, in the middle of the roll forward, after the high-water marker
 * moved (batch folder still there), between the rename and the Kafka offset
 * commit (the case the issue names), and after the Kafka commit. Then kill -9
 * from outside at random moments.
 */
import assert from "node:assert/strict";
import { createTestEnv } from "../testing/env.ts";
import {
  assertExactlyOnce,
  consumeUntilCaughtUp,
  produceGenerated,
  spawnConsumer,
} from "../testing/consumer.ts";
import { mulberry32 } from "../events/rng.ts";

const COUNT = Math.round(
  Number(Deno.env.get("LOGPIPE_TEST_SCALE") ?? "1") * 500_000,
);

Deno.test({
  name:
    `consumer: ${COUNT} records, SIGKILL at every commit phase and at random → exactly once`,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const t = await createTestEnv("consumer_crash");
    try {
      const produced = await produceGenerated(t.config, {
        count: COUNT,
        badRate: 0.05,
        seed: "crash",
      });
      // Small batches: many commit points, several files per batch.
      // A killed member stays in the group until its session times out; the
      // broker's minimum (6 s) keeps the restarts quick.
      const args = [
        "--until-caught-up",
        "--no-metrics",
        "--max-batch-records",
        "4000",
        "--session-timeout-ms",
        "6000",
      ];
      const kills: string[] = [];
      for (
        const fp of [
          "committed:2",
          "rolled:2",
          "rolling:3",
          "marked:2",
          "staging:3",
          "staged:4",
          "kafka-committed:3",
        ]
      ) {
        const child = spawnConsumer(t.env, [...args, "--failpoint", fp]);
        const status = await child.status;
        assert.equal(
          status.signal,
          "SIGKILL",
          `failpoint ${fp} must kill the process`,
        );
        kills.push(fp);
      }
      // Seeded, so the kill times are the same on every run.
      const rnd = mulberry32(42);
      let finished = false;
      for (let i = 0; i < 4 && !finished; i++) {
        const child = spawnConsumer(t.env, args);
        // After the dead member's session expired (≤ 6 s) the run consumes.
        const after = 7_000 + Math.floor(rnd() * 4_000);
        const timer = setTimeout(() => {
          try {
            child.kill("SIGKILL");
          } catch { /* already exited */ }
        }, after);
        const status = await child.status;
        clearTimeout(timer);
        if (status.signal === "SIGKILL") kills.push(`random@${after}ms`);
        else {
          assert.equal(status.code, 0);
          finished = true;
        }
      }
      console.log(`  kills: ${kills.join(", ")}`);
      assert.ok(kills.length >= 5, `at least 5 kills (${kills.length})`);
      const summary = await consumeUntilCaughtUp(t.env, [
        "--no-metrics",
        "--session-timeout-ms",
        "6000",
      ]);
      assert.equal(summary.caughtUp, true);
      const z = await assertExactlyOnce(t.config, produced);
      console.log(
        `  ${COUNT} records → ${z.raw.length} events in ${z.rawFiles} files, ` +
          `${z.deadLetters.length} dead letters, after ${kills.length} kills`,
      );
    } finally {
      await t.cleanup();
    }
  },
});
