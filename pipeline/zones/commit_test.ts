/**
 * The HDFS commit protocol on the real HDFS, state by state: a committed
 * batch appears whole and moves the partition's high-water marker; recovery
 * claims a new owner epoch, deletes uncommitted staging folders, finishes a
 * batch whose roll forward was interrupted half-way, and resumes from the
 * marker; an ownership loss before the commit point leaves nothing visible;
 * a zombie (an older owner) can no longer commit once a new owner recovered,
 * and a batch it committed just before is rolled forward once, not twice;
 * zones from before markers get their position from one walk, then from
 * the marker; batch folders of the layout before epochs are rolled forward.
 */
import assert from "node:assert/strict";
import { createTestEnv } from "../testing/env.ts";
import { createWebHdfs } from "../clients/webhdfs.ts";
import { formatDataFileName } from "./names.ts";
import {
  batchFolderName,
  type CommitBatch,
  encodeStagedName,
  HdfsCommitter,
} from "./commit.ts";
import {
  legacyPositionsPath,
  parsePartitionMarkers,
  partitionStateDir,
} from "./markers.ts";

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

class Crash extends Error {}

Deno.test({
  name:
    "HDFS commit protocol: commit, marker, interrupted roll forward, orphans, epochs and zombies, legacy zones",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const t = await createTestEnv("consumer_commit_protocol", {
      noTopic: true,
    });
    try {
      const hdfs = createWebHdfs(t.config);
      const root = t.config.hdfs.root;
      const c = new HdfsCommitter(hdfs, t.config.hdfs);
      const topic = "T";
      const visible = async () =>
        (await hdfs.walk(t.config.hdfs.rawDir)).length +
        (await hdfs.walk(t.config.hdfs.deadLetterDir)).length;
      const markers = async (p: number) =>
        parsePartitionMarkers(
          (await hdfs.listOrEmpty(partitionStateDir(root, topic, p))).map((e) =>
            e.pathSuffix
          ),
        );

      // Committing needs ownership.
      await assert.rejects(c.commit(batch(topic, 0, 0, 99)), /not owned/);
      const first = await c.recover(topic, [0]);
      assert.equal(first.resume.has(0), false, "nothing in HDFS yet");
      assert.equal(first.epochs.get(0), 1);

      const phases: string[] = [];
      assert.equal(
        await c.commit(batch(topic, 0, 0, 99), {
          onPhase: (p) => void phases.push(p),
        }),
        "committed",
      );
      assert.deepEqual(phases, [
        "staging",
        "staged",
        "committed",
        "rolling",
        "marked",
        "rolled",
      ]);
      assert.equal(await visible(), 3);
      assert.deepEqual(
        (await markers(0)).markers.map((m) => [m.epoch, m.next]),
        [[1, 100]],
      );
      const epochDirs = await hdfs.listOrEmpty(c.committedDir);
      assert.deepEqual(epochDirs.map((e) => e.pathSuffix), [
        "T+0+e00000000000000000001",
      ]);
      assert.deepEqual(
        await hdfs.listOrEmpty(`${c.committedDir}/${epochDirs[0].pathSuffix}`),
        [],
      );

      // Ownership lost before the commit point: nothing appears.
      assert.equal(
        await c.commit(batch(topic, 0, 100, 199), { stillOwner: () => false }),
        "fenced",
      );
      assert.equal(await visible(), 3);

      // Interrupted roll forward: stop after the first file moved.
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
      await c.recover(topic, [1]);
      await assert.rejects(
        c.commit(batch(topic, 1, 0, 9), {
          onPhase: (p) => {
            if (p === "staged") throw new Crash();
          },
        }),
        Crash,
      );
      assert.equal((await hdfs.listOrEmpty(c.stagingDir)).length, 2);

      // A restart: a new process recovers partition 0.
      const c2 = new HdfsCommitter(hdfs, t.config.hdfs);
      const rec = await c2.recover(topic, [0]);
      assert.equal(
        rec.resume.get(0),
        200,
        "resume after the half-rolled batch 100–199",
      );
      assert.equal(rec.epochs.get(0), 2);
      assert.equal(rec.batchesRolledForward, 1);
      assert.equal(rec.stagingRemoved, 1);
      assert.equal(rec.legacyWalk, false);
      assert.equal(await visible(), 6, "the interrupted batch is complete");
      const staging = await hdfs.listOrEmpty(c.stagingDir);
      assert.deepEqual(
        staging.map((s) => s.pathSuffix.split("+").slice(0, 2).join("+")),
        ["T+1"],
      );
      // Only the new epoch's claim and marker are left.
      const m0 = await markers(0);
      assert.deepEqual(m0.claims, [2]);
      assert.deepEqual(m0.markers.map((m) => [m.epoch, m.next]), [[2, 200]]);
      // The old owner is fenced: its commits fail and show nothing.
      assert.equal(await c.commit(batch(topic, 0, 200, 299)), "fenced");
      assert.equal(await visible(), 6);
      // Recovery is idempotent; partition 1 has nothing committed; other
      // topics are not touched.
      assert.equal((await c2.recover(topic, [0])).resume.get(0), 200);
      const r1 = await c2.recover(topic, [1]);
      assert.equal(r1.resume.has(1), false);
      assert.equal(r1.stagingRemoved, 1);
      assert.equal(
        (await c2.recover("Other", [0])).resume.has(0),
        false,
      );

      // A zombie paused inside its commit, before the commit point: a new
      // owner recovers meanwhile; the zombie's rename fails.
      const zombie = new HdfsCommitter(hdfs, t.config.hdfs);
      await zombie.recover(topic, [2]);
      const owner = new HdfsCommitter(hdfs, t.config.hdfs);
      let ownerRec: Awaited<ReturnType<HdfsCommitter["recover"]>> | undefined;
      const fenced = await zombie.commit(batch(topic, 2, 0, 9), {
        onPhase: async (p) => {
          if (p === "staged") ownerRec = await owner.recover(topic, [2]);
        },
      });
      assert.equal(fenced, "fenced");
      assert.equal(ownerRec!.resume.has(2), false);
      assert.equal(await visible(), 6, "nothing of the zombie's batch");
      // The new owner commits the same offsets, once.
      assert.equal(await owner.commit(batch(topic, 2, 0, 9)), "committed");
      assert.equal(await visible(), 9);

      // A zombie whose commit point got in just before the new owner's
      // recovery: the new owner rolls the batch forward and resumes after
      // it; the zombie finishes without writing anything twice and learns
      // that it lost the partition.
      await zombie.recover(topic, [3]);
      const owner3 = new HdfsCommitter(hdfs, t.config.hdfs);
      let rec3: Awaited<ReturnType<HdfsCommitter["recover"]>> | undefined;
      const late = await zombie.commit(batch(topic, 3, 0, 9), {
        onPhase: async (p) => {
          if (p === "committed") rec3 = await owner3.recover(topic, [3]);
        },
      });
      assert.equal(late, "committed-then-fenced");
      assert.equal(rec3!.resume.get(3), 10);
      assert.equal(rec3!.batchesRolledForward, 1);
      assert.equal(await visible(), 12, "the batch once");
      assert.equal(await owner3.commit(batch(topic, 3, 10, 19)), "committed");
      assert.equal((await markers(3)).markers[0].next, 20);

      // Zones from before markers: one walk gives the position, kept in a
      // small file; afterwards the marker does.
      await hdfs.create(
        `${t.config.hdfs.rawDir}/event_date=2026-01-01/event_hour=09/${
          formatDataFileName({
            topic: "L",
            partition: 0,
            firstOffset: 0,
            lastOffset: 41,
            extension: "parquet",
          })
        }`,
        enc.encode("x"),
      );
      const legacy = await c2.recover("L", [0, 1]);
      assert.equal(legacy.resume.get(0), 42);
      assert.equal(legacy.resume.has(1), false);
      assert.equal(legacy.legacyWalk, true);
      assert.deepEqual(
        JSON.parse(await hdfs.readText(legacyPositionsPath(root, "L"))),
        { "0": 42 },
      );
      const again = await c2.recover("L", [0]);
      assert.equal(again.resume.get(0), 42);
      assert.equal(again.legacyWalk, false, "the marker, not the walk");

      // A committed batch folder of the layout before epochs is rolled
      // forward by recovery.
      const old = batch("L", 0, 42, 49);
      const oldDir = `${c.committedDir}/${batchFolderName(old, "old")}`;
      for (const f of old.files) {
        await hdfs.create(
          `${oldDir}/${encodeStagedName(f)}`,
          enc.encode("o"),
        );
      }
      const up = await c2.recover("L", [0]);
      assert.equal(up.resume.get(0), 50);
      assert.equal(up.batchesRolledForward, 1);
      assert.equal(await hdfs.exists(oldDir), false);
    } finally {
      await t.cleanup();
    }
  },
});
