/**
 * Issue test: two consumer processes in one group share the partitions; one
 * is killed midway (SIGKILL right after one of its commit points, the worst
 * moment) → the survivor takes its partitions over, finishes its committed
 * batch from HDFS, and the zones hold every record exactly once.
 */
import assert from "node:assert/strict";
import { createTestEnv } from "../testing/env.ts";
import { withConnection } from "../clients/postgres.ts";
import {
  assertExactlyOnce,
  produceGenerated,
  spawnConsumer,
} from "../testing/consumer.ts";

const COUNT = Math.round(
  Number(Deno.env.get("LOGPIPE_TEST_SCALE") ?? "1") * 150_000,
);

Deno.test({
  name:
    `consumer: two processes in one group, one killed midway → exactly once (${COUNT})`,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const t = await createTestEnv("consumer_group");
    try {
      const produced = await produceGenerated(t.config, {
        count: COUNT,
        badRate: 0.05,
        seed: "group",
      });
      const common = [
        "--max-batch-records",
        "3000",
        "--session-timeout-ms",
        "6000",
      ];
      // B runs until it has committed everything (with partitions it owns
      // itself and, after A dies, A's too).
      const b = spawnConsumer(
        t.env,
        ["--until-caught-up", "--json", ...common],
        {
          stdout: "piped",
        },
      );
      const bOut = b.output();
      // Let B start consuming, then A joins: a rebalance hands A half of the
      // partitions; A dies right after its 4th commit point.
      await waitFor(
        async () => (await consumerRows(t.env.LOGPIPE_DATABASE_URL)) >= 1,
        30_000,
      );
      await new Promise((r) => setTimeout(r, 1_000));
      const a = spawnConsumer(t.env, [
        "--until-caught-up",
        ...common,
        "--failpoint",
        "committed:4",
      ]);
      const aStatus = await a.status;
      assert.equal(aStatus.signal, "SIGKILL", "A was killed by its failpoint");
      const out = await bOut;
      const text = new TextDecoder().decode(out.stdout);
      assert.equal(out.code, 0, `B exited ${out.code}`);
      const summary = JSON.parse(text.trim().split("\n").at(-1)!);
      assert.equal(summary.caughtUp, true);
      assert.ok(
        summary.recordsIn < COUNT * 2,
        "B did not read everything twice",
      );
      const z = await assertExactlyOnce(t.config, produced);
      console.log(
        `  A killed after its 4th commit point; B finished: ${z.raw.length} events, ` +
          `${z.deadLetters.length} dead letters, B read ${summary.recordsIn} records`,
      );
    } finally {
      await t.cleanup();
    }
  },
});

/** Consumer heartbeat rows (a consumer has started and written metrics). */
async function consumerRows(url: string): Promise<number> {
  return await withConnection(url, async (c) => {
    const r = await c.query(
      "select count(*)::int as n from monitoring.components where component = 'consumer'",
    );
    return r.rows[0].n as number;
  });
}

async function waitFor(
  pred: () => Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await pred().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error("timed out waiting");
}
