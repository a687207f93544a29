/**
 * Issue test: the HDFS DataNode is stopped for 30 s while the consumer runs →
 * the consumer retries with backoff (and stops reading: back-pressure),
 * commits nothing it did not write, resumes when the DataNode is back, and
 * the zones hold every record exactly once.
 *
 * It stops the SHARED DataNode, so it disturbs whatever else writes to HDFS
 * meanwhile; the outage is kept to the 30 s the issue asks for and the
 * DataNode is always restarted (finally), then checked healthy.
 */
import assert from "node:assert/strict";
import { createTestEnv } from "../testing/env.ts";
import { loadConfig } from "../config.ts";
import { startService, stopService, waitHealthy } from "../services/manager.ts";
import { createWebHdfs } from "../clients/webhdfs.ts";
import {
  assertExactlyOnce,
  produceGenerated,
  spawnConsumer,
} from "../testing/consumer.ts";

const COUNT = Math.round(
  Number(Deno.env.get("LOGPIPE_TEST_SCALE") ?? "1") * 120_000,
);
const OUTAGE_MS = 30_000;

Deno.test({
  name: `consumer: HDFS DataNode stopped ${
    OUTAGE_MS / 1000
  } s → waits, resumes, exactly once`,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const t = await createTestEnv("consumer_datanode");
    const base = loadConfig();
    let stopped = false;
    try {
      const produced = await produceGenerated(t.config, {
        count: COUNT,
        badRate: 0.05,
        seed: "datanode",
      });
      // Slow the consumer down a little (small batches) so the outage
      // surely falls in the middle of the run.
      const child = spawnConsumer(t.env, [
        "--until-caught-up",
        "--json",
        "--no-metrics",
        "--max-batch-records",
        "2000",
      ], { stdout: "piped", stderr: "piped" });
      const out = child.output();
      const hdfs = createWebHdfs(t.config);
      // Wait for the first committed files, then pull the plug.
      const until = Date.now() + 60_000;
      while ((await hdfs.walk(t.config.hdfs.rawDir)).length < 3) {
        assert.ok(
          Date.now() < until,
          "the consumer committed nothing within 60 s",
        );
        await new Promise((r) => setTimeout(r, 200));
      }
      const filesBefore = (await hdfs.walk(t.config.hdfs.rawDir)).length;
      await stopService("datanode", base);
      stopped = true;
      await new Promise((r) => setTimeout(r, OUTAGE_MS));
      await startService("datanode", base);
      await waitHealthy("datanode", base);
      stopped = false;
      const res = await out;
      const stdout = new TextDecoder().decode(res.stdout);
      const stderr = new TextDecoder().decode(res.stderr);
      assert.equal(
        res.code,
        0,
        `consumer exited ${res.code}: ${stderr.slice(-2000)}`,
      );
      const summary = JSON.parse(stdout.trim().split("\n").at(-1)!);
      assert.equal(summary.caughtUp, true);
      // It noticed the outage and backed off (logged retries), rather than
      // failing or skipping.
      assert.match(stderr, /"msg":"retrying"/);
      const z = await assertExactlyOnce(t.config, produced);
      assert.ok(
        z.rawFiles > filesBefore,
        "files were written after the outage",
      );
      console.log(
        `  ${filesBefore} raw files before the outage, ${z.rawFiles} after; ` +
          `${z.raw.length} events, ${z.deadLetters.length} dead letters exactly once`,
      );
    } finally {
      if (stopped) {
        await startService("datanode", base).catch(() => {});
        await waitHealthy("datanode", base).catch(() => {});
      }
      await t.cleanup();
    }
  },
});
