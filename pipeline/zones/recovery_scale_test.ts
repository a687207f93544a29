/**
 * Issue test (recovery against a big history): with many files in the
 * zones, the consumer's recovery (HdfsCommitter.recover, what it runs on
 * every partition assignment) takes the same time and memory as with none,
 * because it reads the partitions' high-water markers and `_tmp`, never the
 * zones: under 5 s and under 64 MB of extra heap.
 *
 * The files are empty files with valid names spread over a week of hour
 * folders, created through the NameNode's RPC (bulk_files.ts): 20,000 in the
 * suite; LOGPIPE_RECOVERY_FILES=200000 for the issue's full size (several
 * minutes to create). For contrast, the same recovery without markers (the
 * one-time walk of legacy zones, which is what every recovery did before)
 * is measured on the same files and printed.
 */
import assert from "node:assert/strict";
import { createTestEnv } from "../testing/env.ts";
import { createWebHdfs } from "../clients/webhdfs.ts";
import { formatDataFileName, rawPartitionDir } from "./names.ts";
import { HdfsCommitter } from "./commit.ts";
import { createEmptyFiles } from "./bulk_files.ts";

const FILES = Number(Deno.env.get("LOGPIPE_RECOVERY_FILES") ?? "20000");
const PARTITIONS = 6;

/** Runs `fn`, sampling the heap every 5 ms; returns its time and peak extra heap. */
async function measure<T>(
  fn: () => Promise<T>,
): Promise<{ value: T; ms: number; extraHeapMb: number }> {
  const base = Deno.memoryUsage().heapUsed;
  let peak = base;
  const timer = setInterval(() => {
    peak = Math.max(peak, Deno.memoryUsage().heapUsed);
  }, 5);
  const t0 = performance.now();
  try {
    const value = await fn();
    peak = Math.max(peak, Deno.memoryUsage().heapUsed);
    return {
      value,
      ms: performance.now() - t0,
      extraHeapMb: (peak - base) / 1024 / 1024,
    };
  } finally {
    clearInterval(timer);
  }
}

Deno.test({
  name:
    `consumer recovery with ${FILES} files in the zones: < 5 s, < 64 MB extra heap`,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const t = await createTestEnv("consumer_recovery_scale", {
      noTopic: true,
    });
    try {
      const hdfs = createWebHdfs(t.config);
      const topic = "Big";
      const parts = Array.from({ length: PARTITIONS }, (_, i) => i);
      // The zones: a week of hours, every partition, raw and dead letters;
      // each partition's offsets grow with the files.
      const paths: string[] = [];
      const perPartition = Math.ceil(FILES / PARTITIONS);
      const t0 = Date.UTC(2026, 0, 1);
      for (let p = 0; p < PARTITIONS; p++) {
        for (let i = 0; i < perPartition && paths.length < FILES; i++) {
          const hour = new Date(t0 + (i % 168) * 3_600_000).toISOString();
          const dead = i % 10 === 9;
          const name = formatDataFileName({
            topic,
            partition: p,
            firstOffset: i * 100,
            lastOffset: i * 100 + 99,
            extension: dead ? "ndjson" : "parquet",
          });
          paths.push(
            dead
              ? `${t.config.hdfs.deadLetterDir}/date=${
                hour.slice(0, 10)
              }/${name}`
              : `${t.config.hdfs.rawDir}/${
                rawPartitionDir(hour.slice(0, 10), hour.slice(11, 13))
              }/${name}`,
          );
        }
      }
      const made = performance.now();
      await createEmptyFiles(t.config, paths);
      console.log(
        `  created ${paths.length} files in ${
          ((performance.now() - made) / 1000).toFixed(0)
        } s`,
      );
      const expected = new Map<number, number>();
      for (let p = 0; p < PARTITIONS; p++) {
        const n = Math.min(perPartition, FILES - p * perPartition);
        if (n > 0) expected.set(p, (n - 1) * 100 + 100);
      }

      // First recovery of zones without markers: the one-time walk (the
      // cost every recovery used to have).
      const walk = await measure(() =>
        new HdfsCommitter(hdfs, t.config.hdfs).recover(topic, parts)
      );
      assert.equal(walk.value.legacyWalk, true);
      assert.deepEqual(walk.value.resume, expected);

      // Every later recovery (a restart: a new committer, a new epoch):
      // markers only.
      const rec = await measure(() =>
        new HdfsCommitter(hdfs, t.config.hdfs).recover(topic, parts)
      );
      assert.equal(rec.value.legacyWalk, false);
      assert.deepEqual(rec.value.resume, expected);
      console.log(
        `  ${FILES} files: recovery ${rec.ms.toFixed(0)} ms, +${
          rec.extraHeapMb.toFixed(1)
        } MB heap (the one-time walk of the same zones: ${
          walk.ms.toFixed(0)
        } ms, +${walk.extraHeapMb.toFixed(1)} MB)`,
      );
      assert.ok(rec.ms < 5_000, `recovery took ${rec.ms} ms`);
      assert.ok(rec.extraHeapMb < 64, `recovery used ${rec.extraHeapMb} MB`);
    } finally {
      await t.cleanup();
    }
  },
});
