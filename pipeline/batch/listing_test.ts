/**
 * The batch's listing grows with new data only, on the real HDFS and
 * Postgres: with a long history of tiny files already loaded, a run lists
 * the hour folders of its window and the old folders that changed, finds
 * exactly the new files, and never misses a late file in an old hour (far
 * beyond the lookback).
 *
 * In the suite: 2 days × 24 hours × 2 partitions × 2 files (192 files).
 * LOGPIPE_TEST_LISTING_FILES=200000 (opt-in; local HDFS only, written with
 * Hadoop's own client) puts ≥ 200,000 files in the zone over 7 days and 6
 * partitions and asserts the listing step stays under 5 s.
 */
import assert from "node:assert/strict";
import { createPool } from "../clients/postgres.ts";
import { createWebHdfs } from "../clients/webhdfs.ts";
import { setting } from "../config.ts";
import { logger } from "../log.ts";
import { createTestEnv } from "../testing/env.ts";
import { runDag } from "./dag.ts";
import { TinyRawFiles, type TinySpec } from "./tiny_files.ts";

const HOUR = 3_600_000;
const WANTED = Number(setting("LOGPIPE_TEST_LISTING_FILES") ?? "0");
const BIG = WANTED >= 10_000;
const DAYS = BIG ? 7 : 2;
const PARTITIONS = BIG ? 6 : 2;
const PER_HOUR_PARTITION = BIG
  ? Math.ceil(WANTED / (DAYS * 24 * PARTITIONS))
  : 2;
const START = Date.parse("2026-01-01T00:00:00Z");
const quiet = logger("listing-test");

interface ListingStats {
  listedFolders: number;
  changedOldFolders: number;
  filesListed: number;
  toLoad: number;
  hourFolders: number;
  ms: number;
}

Deno.test({
  name: `listing: ${DAYS} days of history (${
    DAYS * 24 * PARTITIONS * PER_HOUR_PARTITION
  } files); runs list the window and changed folders only, and a late file in the oldest hour is loaded`,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const t = await createTestEnv("listing", { noTopic: true });
    const hdfs = createWebHdfs(t.config, { timeoutMs: 120_000 });
    const pool = createPool(t.config, { max: 2 });
    const tiny = await TinyRawFiles.create(t.config.kafka.topic);
    const next = new Array(PARTITIONS).fill(0);
    const spec = (partition: number, ts: number): TinySpec => ({
      partition,
      offset: next[partition]++,
      ts,
    });
    const run = async (label: string) => {
      const r = await runDag(t.config, {
        skipGroups: ["dbt", "export", "compaction"],
        log: quiet,
        settleMarginMs: 0,
      });
      assert.equal(r.state, "success", `${label}: ${r.error}`);
      const load = r.tasks.find((x) => x.taskId === "load_raw_events")!;
      const stats = load.detail.listing as ListingStats;
      console.log(
        `${label}: listing ${stats.ms} ms (${stats.listedFolders}/${stats.hourFolders} folders, ${stats.filesListed} files listed, ${stats.toLoad} to load), ${r.rowsLoaded} rows loaded`,
      );
      return { r, stats };
    };
    try {
      // History: every hour of DAYS days, loaded long ago.
      const history: TinySpec[] = [];
      for (let h = 0; h < DAYS * 24; h++) {
        for (let p = 0; p < PARTITIONS; p++) {
          for (let k = 0; k < PER_HOUR_PARTITION; k++) {
            history.push(spec(p, START + h * HOUR + k * 1000));
          }
        }
      }
      const t0 = performance.now();
      if (BIG) {
        // WebHDFS writes a small file in ~0.5 s: Hadoop's own client, fast.
        await tiny.writeWithFsShell(t.config, t.config.hdfs.rawDir, history);
      } else await tiny.write(hdfs, t.config.hdfs.rawDir, history);
      await tiny.recordAsLoaded(pool, t.config.hdfs.rawDir, history);
      console.log(
        `history: ${history.length} files in ${
          ((performance.now() - t0) / 1000).toFixed(1)
        } s`,
      );
      const newest = START + DAYS * 24 * HOUR; // the hour after the history
      await tiny.write(hdfs, t.config.hdfs.rawDir, [
        spec(0, newest + 1000),
        spec(1, newest + 2000),
      ]);

      // First run: no folder settled yet, so every folder is listed once.
      const first = await run("first run");
      assert.equal(first.stats.toLoad, 2);
      assert.equal(first.r.rowsLoaded, 2);
      assert.equal(first.stats.listedFolders, DAYS * 24 + 1);

      // New data: one file in the newest hour, late files in the OLDEST
      // hour and in a middle one, far beyond the 3-hour lookback.
      const late = [
        spec(0, START + 5_000),
        spec(1, START + (DAYS * 12) * HOUR + 7_000),
      ];
      await tiny.write(hdfs, t.config.hdfs.rawDir, [
        spec(0, newest + 60_000),
        ...late,
      ]);
      const second = await run("second run");
      assert.equal(second.stats.toLoad, 3, "the new file and both late files");
      assert.equal(second.r.rowsLoaded, 3);
      assert.equal(
        second.stats.changedOldFolders,
        2,
        "only the changed old folders",
      );
      // The window: the newest hour and the 3 before it.
      assert.equal(second.stats.listedFolders, 4 + 2);
      assert.ok(
        second.stats.filesListed < 7 * PARTITIONS * PER_HOUR_PARTITION,
        `listed ${second.stats.filesListed} files, not the whole zone`,
      );
      const loaded = await pool.query(
        "select count(*)::int as n from raw.events where kafka_offset = any($1) and kafka_partition = any($2)",
        [late.map((s) => s.offset), late.map((s) => s.partition)],
      );
      assert.equal(loaded.rows[0].n, 2, "both late events are in raw.events");

      const third = await run("third run");
      assert.equal(third.stats.toLoad, 0);
      assert.equal(third.stats.changedOldFolders, 0);
      assert.equal(third.stats.listedFolders, 4);
      if (BIG) {
        assert.ok(
          second.stats.ms < 5000 && third.stats.ms < 5000,
          `listing step under 5 s with ${history.length} files: ${second.stats.ms} ms, ${third.stats.ms} ms`,
        );
      }
      const [total] = (await pool.query(
        "select count(*)::int as n, count(distinct event_id)::int as d from raw.events",
      )).rows;
      assert.deepEqual(total, {
        n: history.length + 5,
        d: history.length + 5,
      });
    } finally {
      await pool.end();
      await t.cleanup();
    }
  },
});
