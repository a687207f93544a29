/**
 * Issue test (fencing): consumer A pauses itself (SIGSTOP) in the middle of
 * staging a batch — the worst moment for a zombie, its files half written —
 * and stays paused past its session timeout; consumer B takes every
 * partition over, recovers (a new owner epoch per partition, which removes
 * A's committed-batch folders) and commits everything; then A is resumed
 * (SIGCONT). A finishes staging and tries its commit point: the rename into
 * its epoch folder fails, so no file covering offsets B already committed
 * appears in the zones. A then rejoins, finds everything committed and
 * exits. Every offset is in exactly one file.
 *
 * Without the epoch folders, B's recovery deleting A's staging folder is
 * not enough: A's remaining CREATEs make the folder again and its commit
 * point renames a partial batch whose offsets B also committed.
 */
import assert from "node:assert/strict";
import { createTestEnv } from "../testing/env.ts";
import {
  assertExactlyOnce,
  produceGenerated,
  spawnConsumer,
} from "../testing/consumer.ts";

const COUNT = 30_000;

/** Process state letter from /proc (T = stopped). */
async function procState(pid: number): Promise<string | undefined> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
  } catch {
    return undefined;
  }
}

Deno.test({
  name:
    "consumer: a zombie paused past its session timeout cannot commit after the new owner took over",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const t = await createTestEnv("consumer_zombie");
    let a: Deno.ChildProcess | undefined;
    try {
      const produced = await produceGenerated(t.config, {
        count: COUNT,
        badRate: 0.05,
        seed: "zombie",
      });
      const common = [
        "--until-caught-up",
        "--no-metrics",
        "--max-batch-records",
        "1500",
        "--session-timeout-ms",
        "6000",
      ];
      a = spawnConsumer(t.env, [...common, "--failpoint", "staging:3:stop"], {
        stderr: "piped",
      });
      const aOut = a.output();
      const until = Date.now() + 120_000;
      while ((await procState(a.pid)) !== "T") {
        assert.ok(Date.now() < until, "A never reached its failpoint");
        await new Promise((r) => setTimeout(r, 100));
      }
      // B takes over once A's session expired, and commits everything.
      const b = spawnConsumer(t.env, [...common, "--json"], {
        stdout: "piped",
      });
      const bOut = await b.output();
      assert.equal(bOut.code, 0, "B finished");
      const summary = JSON.parse(
        new TextDecoder().decode(bOut.stdout).trim().split("\n").at(-1)!,
      );
      assert.equal(summary.caughtUp, true);
      // The zombie wakes up.
      Deno.kill(a.pid, "SIGCONT");
      const aRes = await aOut;
      a = undefined;
      const aErr = new TextDecoder().decode(aRes.stderr);
      assert.equal(aRes.code, 0, `A exited ${aRes.code}: ${aErr.slice(-2000)}`);
      assert.match(aErr, /batch not committed: partition no longer ours/);
      const z = await assertExactlyOnce(t.config, produced);
      console.log(
        `  A paused mid-staging, B committed ${summary.recordsIn} records; ` +
          `A resumed and was fenced; ${z.raw.length} events and ` +
          `${z.deadLetters.length} dead letters, each offset once`,
      );
    } finally {
      if (a) {
        try {
          Deno.kill(a.pid, "SIGCONT");
          a.kill("SIGKILL");
        } catch { /* gone */ }
      }
      await t.cleanup();
    }
  },
});
