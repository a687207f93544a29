/**
 * The HDFS commit protocol on the real HDFS, state by state: a committed
 * batch appears whole; recovery deletes uncommitted staging folders, finishes
 * a batch whose roll forward was interrupted half-way, and resumes after the
 * highest committed offset over both zones; an ownership loss before the
 * commit point leaves nothing visible; a fenced (deleted) staging folder is
 * never committed.
 */
import assert from "node:assert/strict";
import { createTestEnv } from "../testing.ts";
import { createWebHdfs } from "../clients/webhdfs.ts";
import { formatDataFileName } from "./names.ts";
import { type CommitBatch, HdfsCommitter } from "./commit.ts";

const enc = new TextEncoder();

function batch(
  topic: string,
  partition: number,
  first: number,
  last: number,
): CommitBatch {
  const mid = Math.floor((first + last) / 2);
  const name = (a: number, b: number, ext: "parquet" | "ndjson") =>
    formatDataFileName({
      topic,
      partition,
      firstOffset: a,
      lastOffset: b,
      extension: ext,
    });
  return {
    topic,
    partition,
    firstOffset: first,
    lastOffset: last,
    files: [
      {
        zone: "raw",
        dir: "event_date=2026-01-01/event_hour=07",
        name: name(first, mid - 1, "parquet"),
        bytes: enc.encode("a"),
      },
      {
        zone: "raw",
        dir: "event_date=2026-01-01/event_hour=08",
        name: name(first + 1, last - 1, "parquet"),
        bytes: enc.encode("b"),
      },
      {
        zone: "dead_letter",
        dir: "date=2026-01-01",
        name: name(mid, last, "ndjson"),
        bytes: enc.encode("c"),
      },
    ],
  };
}

Deno.test({
  name:
    "HDFS commit protocol: commit, interrupted roll forward, orphans, fencing",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const t = await createTestEnv("consumer_commit_protocol", {
      noTopic: true,
    });
    try {
      const hdfs = createWebHdfs(t.config);
      const c = new HdfsCommitter(hdfs, t.config.hdfs);
      const topic = "T";
      const phases: string[] = [];
      assert.equal(
        await c.commit(batch(topic, 0, 0, 99), {
          onPhase: (p) => void phases.push(p),
        }),
        true,
      );
      assert.deepEqual(phases, ["staged", "committed", "rolling", "rolled"]);
      const visible = async () =>
        (await hdfs.walk(t.config.hdfs.rawDir)).length +
        (await hdfs.walk(t.config.hdfs.deadLetterDir)).length;
      assert.equal(await visible(), 3);
      assert.deepEqual(await hdfs.listOrEmpty(c.committedDir), []);

      // Ownership lost before the commit point: nothing appears.
      assert.equal(
        await c.commit(batch(topic, 0, 100, 199), { stillOwner: () => false }),
        false,
      );
      assert.equal(await visible(), 3);

      // Interrupted roll forward: stop after the first file moved.
      class Crash extends Error {}
      await assert.rejects(
        c.commit(batch(topic, 0, 100, 199), {
          onPhase: (p) => {
            if (p === "rolling") throw new Crash();
          },
        }),
        Crash,
      );
      assert.equal(await visible(), 4, "one file of the batch moved");
      // An orphan staging folder of partition 0 and one of partition 1
      // (another owner's: must survive a recovery of partition 0 only).
      await assert.rejects(
        c.commit(batch(topic, 0, 200, 299), {
          onPhase: (p) => {
            if (p === "staged") throw new Crash();
          },
        }),
        Crash,
      );
      await assert.rejects(
        c.commit(batch(topic, 1, 0, 9), {
          onPhase: (p) => {
            if (p === "staged") throw new Crash();
          },
        }),
        Crash,
      );
      assert.equal((await hdfs.listOrEmpty(c.stagingDir)).length, 2);

      const rec = await c.recover(topic, [0]);
      assert.equal(
        rec.resume.get(0),
        200,
        "resume after the half-rolled batch 100–199",
      );
      assert.equal(rec.batchesRolledForward, 1);
      assert.equal(rec.stagingRemoved, 1);
      assert.equal(await visible(), 6, "the interrupted batch is complete");
      const staging = await hdfs.listOrEmpty(c.stagingDir);
      assert.deepEqual(
        staging.map((s) => s.pathSuffix.split("+").slice(0, 2).join("+")),
        ["T+1"],
      );
      // Recovery is idempotent.
      assert.equal((await c.recover(topic, [0])).resume.get(0), 200);
      // Partition 1 has nothing committed; other topics are ignored.
      const r1 = await c.recover(topic, [1]);
      assert.equal(r1.resume.has(1), false);
      assert.equal((await c.recover("Other", [0])).resume.has(0), false);

      // Fencing: a zombie whose staging folder was deleted by the new owner's
      // recovery cannot commit.
      let zombieStaging = "";
      const fenced = await c.commit(batch(topic, 2, 0, 9), {
        onPhase: async (p) => {
          if (p !== "staged") return;
          zombieStaging = (await hdfs.listOrEmpty(c.stagingDir))
            .map((s) => s.pathSuffix).find((n) => n.startsWith("T+2+"))!;
          await c.recover(topic, [2]); // the new owner
        },
      });
      assert.ok(zombieStaging);
      assert.equal(fenced, false);
      assert.equal((await c.recover(topic, [2])).resume.has(2), false);
    } finally {
      await t.cleanup();
    }
  },
});
