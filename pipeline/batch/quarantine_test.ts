/**
 * No record stops the batch (issue 13), on the real HDFS and Postgres:
 * exact and conflicting duplicates at other offsets and partitions (the
 * first by Kafka coordinates kept, even when it arrives later), text
 * Postgres cannot store (U+0000, an unpaired surrogate), a missing required
 * value, a file overlapping another's offsets, an unreadable file, far-future
 * and +30-minute timestamps. Every other row loads, the run ends
 * success_with_warnings and says what was quarantined, the next run is
 * clean, a fixed row reloads; and a kill -9 while quarantining, then a
 * rerun, loses and doubles nothing.
 */
import assert from "node:assert/strict";
import pg from "pg";
import { createWebHdfs } from "../clients/webhdfs.ts";
import { createGenerator } from "../events/generator.ts";
import { type FlatRow, flattenEvent } from "../events/flatten.ts";
import { logger } from "../log.ts";
import type { RunNotice, TaskFailureNotice } from "../notify/messages.ts";
import type { ServiceCheck } from "../probes/probes.ts";
import type { BatchNotifier } from "../notify/notifier.ts";
import { createTestEnv, runTask, type TestEnv } from "../testing/env.ts";
import { startApi } from "../api/server.ts";
import { runDag } from "./dag.ts";
import { writeRawRows } from "../testing/raw_fixture.ts";

const quiet = logger("quarantine-test");
const SKIP = ["dbt", "export", "compaction"] as const;

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

/** Records the notifications a run sends. */
class RecordingNotifier implements BatchNotifier {
  runs: RunNotice[] = [];
  runFinished(n: RunNotice) {
    this.runs.push(n);
    return Promise.resolve();
  }
  taskTryFailed(_n: TaskFailureNotice) {
    return Promise.resolve();
  }
  servicesDown(_d: string, _r: string, _c: ServiceCheck[], _t: number) {
    return Promise.resolve();
  }
}

/** Valid events as flat rows, one hour of event time from 10:00. */
function events(n: number, topic: string): FlatRow[] {
  const out: FlatRow[] = [];
  const gen = createGenerator({
    seed: "quarantine-test",
    startTime: new Date("2026-01-05T10:00:00Z"),
    rate: 1,
  });
  for (const rec of gen) {
    if (!rec.event) continue;
    out.push(
      flattenEvent(rec.event, {
        topic,
        partition: 0,
        offset: 0,
        timestamp: rec.ts,
      }),
    );
    if (out.length >= n) break;
  }
  return out;
}

const at = (
  row: FlatRow,
  partition: number,
  offset: number,
  extra: Partial<FlatRow> = {},
): FlatRow => ({
  ...row,
  kafka_partition: partition,
  kafka_offset: offset,
  ...extra,
});

interface Planted {
  /** event_ids that must be in raw.events exactly once. */
  valid: Set<string>;
  nulRowId: string;
}

/** Writes the hostile zone; returns what must load. */
async function plant(t: TestEnv): Promise<Planted> {
  const hdfs = createWebHdfs(t.config);
  const raw = t.config.hdfs.rawDir;
  const topic = t.config.kafka.topic;
  const ev = events(200, topic);
  const valid = new Set<string>();
  // A: partition 0, offsets 0..99, all valid.
  const a = ev.slice(0, 100).map((r, i) => at(r, 0, i));
  a.forEach((r) => valid.add(r.event_id));
  await writeRawRows(hdfs, raw, a);
  // B: partition 1, offsets 0..39: duplicates and rows Postgres refuses.
  const b = ev.slice(100, 140).map((r, i) => at(r, 1, i));
  b[0] = at(ev[5], 1, 0); // exact duplicate of A's offset 5
  b[1] = at(ev[6], 1, 1, { geo_city: "Elsewhere" }); // conflicting duplicate
  b[2] = at(ev[102], 1, 2, { geo_city: "Ca\u0000iro" }); // U+0000
  b[3] = at(ev[103], 1, 3, {
    details_json: JSON.stringify({ note: "\ud800 alone" }),
  }); // unpaired surrogate escape: jsonb refuses it
  b[4] = at(ev[104], 1, 4, { event_type: null as unknown as string }); // NOT NULL
  b.slice(5).forEach((r) => valid.add(r.event_id));
  await writeRawRows(hdfs, raw, b);
  // H: partition 10, offsets 0..9. Its file sorts (and loads) before C's:
  // "+10+" < "+3+".
  const h = ev.slice(162, 172).map((r, i) => at(r, 10, i));
  h.forEach((r) => valid.add(r.event_id));
  await writeRawRows(hdfs, raw, h);
  // C: partition 3, offsets 0..19; offset 5 repeats H's offset 3: (3, 5)
  // comes first by coordinates, so it replaces the copy loaded before.
  const c = ev.slice(140, 160).map((r, i) => at(r, 3, i));
  c[5] = at(h[3], 3, 5);
  c.forEach((r) => valid.add(r.event_id));
  await writeRawRows(hdfs, raw, c);
  // D: partition 0, offsets 50..60 again, beside A in the same hour.
  await writeRawRows(hdfs, raw, a.slice(50, 61));
  // E: not Parquet at all.
  const eDir = `${raw}/event_date=2026-01-05/event_hour=10`;
  await hdfs.create(
    `${eDir}/${topic}+2+00000000000000000000+00000000000000000000.parquet`,
    new TextEncoder().encode("this is not parquet"),
  );
  // F: partition 2, offset 1, year 2099; G: offset 2, 30 minutes ahead.
  await writeRawRows(hdfs, raw, [
    at(ev[160], 2, 1, { event_ts: "2099-01-01T00:00:00.000Z" }),
  ]);
  const soon = new Date(Date.now() + 30 * 60_000).toISOString();
  await writeRawRows(hdfs, raw, [at(ev[161], 2, 2, { event_ts: soon })]);
  return { valid, nulRowId: b[2].event_id };
}

Deno.test({
  name:
    "quarantine: duplicates and every kind of bad row or file are set aside; the rest loads; success_with_warnings; next run clean; a fixed row reloads",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const t = await createTestEnv("quarantine", { noTopic: true });
    const url = t.config.postgres.url;
    try {
      const planted = await plant(t);
      const notifier = new RecordingNotifier();
      const r = await runDag(t.config, {
        skipGroups: [...SKIP],
        log: quiet,
        notifier,
      });
      assert.equal(r.state, "success_with_warnings", r.error);
      const ids = await q<{ event_id: string }>(
        url,
        "select event_id from raw.events",
      );
      assert.equal(ids.length, planted.valid.size, "each valid event once");
      assert.deepEqual(
        new Set(ids.map((x) => x.event_id)),
        planted.valid,
      );
      // The first copy by coordinates is the one kept.
      const kept = await q<{ kafka_partition: number; kafka_offset: number }>(
        url,
        `select kafka_partition, kafka_offset::int from raw.events
          where event_id in (select event_id from raw.duplicates) order by 1, 2`,
      );
      assert.deepEqual(kept, [
        { kafka_partition: 0, kafka_offset: 5 },
        { kafka_partition: 0, kafka_offset: 6 },
        { kafka_partition: 3, kafka_offset: 5 },
      ]);
      const dups = await q<
        {
          kafka_partition: number;
          kafka_offset: number;
          kind: string;
          differ: boolean;
        }
      >(
        url,
        `select kafka_partition, kafka_offset::int, kind,
                payload->>'geo_city' is distinct from kept_payload->>'geo_city' as differ
           from raw.duplicates order by 1, 2`,
      );
      assert.deepEqual(dups, [
        { kafka_partition: 1, kafka_offset: 0, kind: "exact", differ: false },
        {
          kafka_partition: 1,
          kafka_offset: 1,
          kind: "conflicting",
          differ: true,
        },
        { kafka_partition: 10, kafka_offset: 3, kind: "exact", differ: false },
      ]);
      const quarantined = await q<
        { scope: string; reason: string; n: number; copied: number }
      >(
        url,
        `select scope, reason, count(*)::int as n, count(hdfs_path)::int as copied
           from raw.quarantine group by 1, 2 order by 1, 2`,
      );
      assert.deepEqual(quarantined, [
        { scope: "file", reason: "overlapping_offsets", n: 1, copied: 1 },
        { scope: "file", reason: "unreadable_file", n: 1, copied: 1 },
        { scope: "row", reason: "data_error", n: 3, copied: 3 },
        { scope: "row", reason: "future_timestamp", n: 2, copied: 2 },
      ]);
      const sqlstates = await q<{ sqlstate: string }>(
        url,
        "select sqlstate from raw.quarantine where reason = 'data_error' order by first_offset",
      );
      assert.ok(
        sqlstates.every((s) => /^2[23]/.test(s.sqlstate)),
        `SQLSTATE classes 22/23: ${sqlstates.map((s) => s.sqlstate)}`,
      );
      // The HDFS copies hold what the table says.
      const hdfs = createWebHdfs(t.config);
      const copies = await q<{ hdfs_path: string; id: number; scope: string }>(
        url,
        "select hdfs_path, id::int, scope from raw.quarantine where scope = 'row'",
      );
      for (const c of copies) {
        const text = await hdfs.readText(c.hdfs_path);
        const line = text.split("\n").filter(Boolean).map((l) => JSON.parse(l))
          .find((l) => l.quarantine_id === c.id);
        assert.ok(line?.row_json, `copy of quarantine #${c.id}`);
      }
      // The notification says what was quarantined.
      const notice = notifier.runs.at(-1)!;
      assert.equal(notice.state, "success_with_warnings");
      assert.equal(notice.warnings?.count, 7);
      assert.match(
        notice.warnings!.summary,
        /5 row\(s\), 2 file\(s\) quarantined/,
      );
      assert.match(notice.warnings!.summary, /data_error 3/);
      const [run] = await q<{ state: string; warnings: number }>(
        url,
        "select state, warnings from ops.dag_runs where run_id = $1",
        [r.runId],
      );
      assert.deepEqual(run, { state: "success_with_warnings", warnings: 7 });

      // Visible through the API (the site's pipeline health page reads it).
      const api = await startApi(t.config, {
        port: 0,
        siteDir: null,
        services: () => Promise.resolve([]),
      });
      try {
        const res = await fetch(
          `${api.url}/api/batch/quarantine?reason=data_error`,
        );
        assert.equal(res.status, 200);
        const body = await res.json();
        assert.equal(body.items.length, 3);
        assert.ok(
          body.items.some((i: { row_json: string }) =>
            i.row_json.includes("Ca\\u0000iro")
          ),
          "the row is shown with U+0000 escaped",
        );
        assert.deepEqual(
          body.duplicates.map((d: { kind: string; rows: number }) => [
            d.kind,
            d.rows,
          ]),
          [["conflicting", 1], ["exact", 2]],
        );
        const bad = await fetch(`${api.url}/api/batch/quarantine?reason=nope`);
        assert.equal(bad.status, 400);
        await bad.body?.cancel();
      } finally {
        await api.shutdown();
      }

      // A quarantined item never blocks a later run.
      const again = await runDag(t.config, {
        skipGroups: [...SKIP],
        log: quiet,
      });
      assert.equal(again.state, "success", again.error);
      assert.equal(again.rowsLoaded, 0);

      // Flags are validated.
      for (
        const args of [
          ["--reason", "data_error"],
          ["--reload-quarantine", "--reason", "nope"],
          ["--reload-quarantine", "--id", "x1"],
          [
            "--reload-quarantine",
            "--backfill",
            "--from",
            "2026-01-01T00:00:00Z",
            "--to",
            "2026-01-02T00:00:00Z",
          ],
        ]
      ) {
        const bad = await runTask(t, "batch.ts", args);
        assert.equal(bad.code, 2, `${args.join(" ")}: ${bad.stderr}`);
        assert.match(bad.stderr, /^error: /);
      }
      const dry = await runTask(t, "batch.ts", [
        "--reload-quarantine",
        "--reason",
        "data_error",
        "--dry-run",
      ]);
      assert.equal(dry.code, 0, dry.stderr);
      assert.match(dry.stdout, /3 quarantined item\(s\) would be retried/);

      // The operator fixes the U+0000 row; the reload loads it and only it.
      await q(
        url,
        `update raw.quarantine set row_json = replace(row_json, '\\u0000', '')
          where event_id = $1`,
        [planted.nulRowId],
      );
      const reload = await runTask(t, "batch.ts", [
        "--reload-quarantine",
        "--reason",
        "data_error",
        "--skip",
        "dbt,export,compaction",
      ]);
      assert.equal(reload.code, 0, reload.stdout + reload.stderr);
      assert.match(
        reload.stdout,
        /reload of quarantined data: 3 row\(s\): 1 loaded, 0 duplicate\(s\), 0 already loaded, 2 still quarantined/,
      );
      const [fixed] = await q<{ geo_city: string; status: string }>(
        url,
        `select e.geo_city, q.status from raw.events e
           join raw.quarantine q on q.event_id = e.event_id where e.event_id = $1`,
        [planted.nulRowId],
      );
      assert.deepEqual(fixed, { geo_city: "Cairo", status: "reloaded" });
      const [left] = await q<{ n: number; attempts: number }>(
        url,
        `select count(*)::int as n, min(attempts)::int as attempts from raw.quarantine
          where reason = 'data_error' and status = 'quarantined'`,
      );
      assert.deepEqual(left, { n: 2, attempts: 1 });
    } finally {
      await t.cleanup();
    }
  },
});

Deno.test({
  name:
    "quarantine: kill -9 of the batch while it quarantines (before and after the commit), rerun: nothing lost, nothing doubled, every copy written",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const t = await createTestEnv("quarantine_kill", { noTopic: true });
    const url = t.config.postgres.url;
    try {
      const planted = await plant(t);
      for (const phase of ["quarantine-rows", "quarantine-committed"]) {
        const killed = await new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "-A",
            "tasks/batch.ts",
            "--skip",
            "dbt,export,compaction",
            "--failpoint",
            `${phase}:1`,
          ],
          cwd: new URL("../..", import.meta.url).pathname,
          env: { ...t.env, LOGPIPE_LOG_LEVEL: "warn" },
          stdout: "piped",
          stderr: "piped",
        }).output();
        assert.equal(killed.signal, "SIGKILL", `${phase} kills the run`);
        if (phase === "quarantine-rows") {
          const [n] = await q<{ n: number }>(
            url,
            "select count(*)::int as n from raw.quarantine",
          );
          assert.equal(
            n.n,
            0,
            "nothing of the killed file's transaction stays",
          );
        } else {
          const [n] = await q<{ n: number; pending: number }>(
            url,
            "select count(*)::int as n, count(*) filter (where hdfs_path is null)::int as pending from raw.quarantine",
          );
          assert.ok(
            n.n > 0 && n.pending > 0,
            "committed, copy not yet written",
          );
        }
      }
      const rerun = await runTask(t, "batch.ts", [
        "--skip",
        "dbt,export,compaction",
      ]);
      assert.equal(rerun.code, 0, rerun.stdout + rerun.stderr);
      const [c] = await q<{ n: number; d: number }>(
        url,
        "select count(*)::int as n, count(distinct event_id)::int as d from raw.events",
      );
      assert.deepEqual(c, { n: planted.valid.size, d: planted.valid.size });
      const [qq] = await q<
        { rows: number; distinct: number; pending: number; files: number }
      >(
        url,
        `select count(*) filter (where scope = 'row')::int as rows,
                count(distinct (kafka_partition, first_offset)) filter (where scope = 'row')::int as distinct,
                count(*) filter (where hdfs_path is null)::int as pending,
                count(*) filter (where scope = 'file')::int as files
           from raw.quarantine`,
      );
      assert.deepEqual(qq, { rows: 5, distinct: 5, pending: 0, files: 2 });
      const [d] = await q<{ n: number }>(
        url,
        "select count(*)::int as n from raw.duplicates",
      );
      assert.equal(d.n, 3);
      const runs = await q<{ state: string }>(
        url,
        "select state from ops.dag_runs order by started_at",
      );
      assert.deepEqual(runs.map((r) => r.state).slice(0, 2), [
        "failed",
        "failed",
      ]);
      assert.match(runs.at(-1)!.state, /^success/);
    } finally {
      await t.cleanup();
    }
  },
});
