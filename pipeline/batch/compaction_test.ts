/**
 * Compaction on the real HDFS and Postgres: the small files of a closed hour
 * become one file per partition, late files into a compacted hour are
 * loaded and merged on the next pass, and a kill -9 at every phase of the
 * compaction protocol (batch --failpoint) followed by a rerun neither loses
 * nor doubles a row, in the zone or in raw.events, and reloads nothing.
 */
import assert from "node:assert/strict";
import pg from "pg";
import { createWebHdfs } from "../clients/webhdfs.ts";
import { createTestEnv } from "../testing/env.ts";
import { COMPACTION_PHASES } from "../zones/compaction.ts";
import { readZones } from "../zones/readers.ts";
import { listRawFiles } from "../zones/raw_listing.ts";
import { RawZoneFixture } from "../testing/raw_fixture.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

async function q<T = Record<string, unknown>>(
  url: string,
  sql: string,
  params: unknown[] = [],
): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query(sql, params)).rows as T[];
  } finally {
    await c.end();
  }
}

/** `deno task batch` (no dbt, no export) with the test env; code, signal, output. */
async function batch(env: Record<string, string>, args: string[] = []) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "tasks/batch.ts", "--skip", "dbt,export", ...args],
    cwd: ROOT,
    env: { ...env, LOGPIPE_LOG_LEVEL: "warn" },
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    signal: out.signal,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

Deno.test({
  name:
    "compaction: kill -9 at every phase, rerun: each row once in HDFS and raw.events, one file per partition per closed hour, nothing reloaded",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const t = await createTestEnv("compaction", { noTopic: true });
    const hdfs = createWebHdfs(t.config);
    const fx = new RawZoneFixture(
      hdfs,
      t.config.hdfs.rawDir,
      t.config.kafka.topic,
      {
        partitions: 3,
        rate: 2,
        startTime: new Date("2026-01-05T10:50:00Z"),
      },
    );
    const url = t.config.postgres.url;
    let total = 0;
    try {
      // Two small files per partition in 10:00 and 11:00 (closed hours).
      for (let i = 0; i < 2; i++) total += (await fx.writeBatch(600)).events;
      const first = await batch(t.env);
      assert.equal(first.code, 0, first.stdout + first.stderr.slice(-2000));

      for (const phase of COMPACTION_PHASES) {
        // Late files into the compacted hours, then a run killed at `phase`.
        for (let i = 0; i < 2; i++) total += (await fx.writeBatch(300)).events;
        const killed = await batch(t.env, ["--failpoint", `${phase}:1`]);
        assert.equal(
          killed.signal,
          "SIGKILL",
          `failpoint ${phase} must kill the run: ${killed.stderr.slice(-1500)}`,
        );
        const rerun = await batch(t.env);
        assert.equal(rerun.code, 0, `${phase}: ${rerun.stdout}${rerun.stderr}`);
        assert.match(
          rerun.stdout,
          / 0 rows\n/,
          `${phase}: the rerun copies no row again`,
        );

        const zones = await readZones(t.config);
        assert.deepEqual(zones.foreign, [], `${phase}: foreign files`);
        const perPartition = new Map<number, number[]>();
        for (const r of zones.raw) {
          const list = perPartition.get(r.kafka_partition) ?? [];
          list.push(r.kafka_offset);
          perPartition.set(r.kafka_partition, list);
        }
        let zoneRows = 0;
        for (const [p, offsets] of perPartition) {
          offsets.sort((a, b) => a - b);
          offsets.forEach((o, i) =>
            assert.equal(o, i, `${phase}: partition ${p} offset ${i} once`)
          );
          zoneRows += offsets.length;
        }
        assert.equal(zoneRows, total, `${phase}: every row once in HDFS`);
        assert.equal(new Set(zones.raw.map((r) => r.event_id)).size, total);

        const [c] = await q<{ n: number; d: number; ledger: number }>(
          url,
          `select count(*)::int as n, count(distinct event_id)::int as d,
             (select sum(row_count)::int from raw.load_ledger where status = 'loaded') as ledger
           from raw.events`,
        );
        assert.deepEqual(c, { n: total, d: total, ledger: total }, phase);

        const files = await listRawFiles(hdfs, t.config.hdfs.rawDir);
        const perFolderPartition = new Map<string, number>();
        for (const f of files) {
          const k = `${f.eventDate} ${f.eventHour} ${f.coords.partition}`;
          perFolderPartition.set(k, (perFolderPartition.get(k) ?? 0) + 1);
        }
        assert.ok(
          [...perFolderPartition.values()].every((n) => n === 1),
          `${phase}: one file per partition per hour: ${[
            ...perFolderPartition,
          ]}`,
        );
        const leftovers = await hdfs.walk(
          `${t.config.hdfs.root}/_tmp/compaction`,
        );
        assert.deepEqual(leftovers.map((f) => f.path), [], phase);
        const [ledger] = await q<{ n: number; paths_ok: boolean }>(
          url,
          `select count(*)::int as n,
                  bool_and(path = any($1::text[])) as paths_ok
             from raw.load_ledger`,
          [files.map((f) => f.path)],
        );
        assert.equal(
          ledger.n,
          files.length,
          `${phase}: one ledger row per file`,
        );
        assert.ok(
          ledger.paths_ok,
          `${phase}: the ledger names the merged files`,
        );
      }
      const [runs] = await q<{ failed: number; ok: number }>(
        url,
        `select count(*) filter (where state = 'failed')::int as failed,
                count(*) filter (where state = 'success')::int as ok
           from ops.dag_runs`,
      );
      assert.equal(
        runs.failed,
        COMPACTION_PHASES.length,
        "each killed run is marked failed",
      );
      assert.equal(runs.ok, COMPACTION_PHASES.length + 1);
    } finally {
      await fx.close();
      await t.cleanup();
    }
  },
});
