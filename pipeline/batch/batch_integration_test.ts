/**
 * The batch against the real services (Postgres, HDFS, Kafka via
 * check_services): exactly once over growing data, idempotent reruns, kill -9
 * mid-load, the run lock, backfill, HDFS down with real webhook and SMTP
 * receivers. Each test has its own database and HDFS root.
 */
import assert from "node:assert/strict";
import pg from "pg";
import { createWebHdfs } from "../clients/webhdfs.ts";
import { logger } from "../log.ts";
import {
  startSmtpReceiver,
  startWebhookReceiver,
} from "../notify/receivers.ts";
import { runDag } from "./dag.ts";
import { RunLock } from "./lock.ts";
import { RawZoneFixture } from "../testing/raw_fixture.ts";
import { createTestEnv, type TestEnv } from "../testing/env.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const DENO = Deno.execPath();
const quiet = logger("batch-test");

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

function spawnBatch(env: Record<string, string>, args: string[] = []) {
  return new Deno.Command(DENO, {
    args: ["run", "-A", "tasks/batch.ts", ...args],
    cwd: ROOT,
    env: { ...env, LOGPIPE_LOG_LEVEL: "info" },
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
}

async function collect(child: Deno.ChildProcess) {
  const [status, out, err] = await Promise.all([
    child.status,
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
  ]);
  return { code: status.code, stdout: out, stderr: err };
}

const SKIP = ["dbt", "export"] as const;

/**
 * The kill tests' raw zone: 12 batches of 4,000 events over 6 partitions,
 * enough files (one per partition and event hour) for a load to be caught
 * in its middle.
 */
async function writeKillLoad(
  t: TestEnv,
): Promise<{ fx: RawZoneFixture; total: number; files: number }> {
  const fx = new RawZoneFixture(
    createWebHdfs(t.config),
    t.config.hdfs.rawDir,
    t.config.kafka.topic,
    { partitions: 6, rate: 400 },
  );
  let total = 0;
  let files = 0;
  for (let i = 0; i < 12; i++) {
    const b = await fx.writeBatch(4000);
    total += b.events;
    files += b.files.length;
  }
  return { fx, total, files };
}

/** Waits (up to 120 s) until the ledger shows at least `n` loaded files. */
async function waitLedgerFiles(url: string, n: number): Promise<number> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    // A light query: it runs every 25 ms beside the load it watches.
    const [{ files }] = await q<{ files: number }>(
      url,
      "select count(*)::int as files from raw.load_ledger",
    ).catch(() => [{ files: 0 }]);
    if (files >= n) return files;
    if (Date.now() > deadline) throw new Error(`no ${n} files were loaded`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Files and rows in the ledger, rows and distinct event_ids in raw.events. */
function ledgerTotals(url: string) {
  return q<{ files: number; rows: number; n: number; d: number }>(
    url,
    `select (select count(*) from raw.load_ledger)::int as files,
            (select coalesce(sum(row_count), 0) from raw.load_ledger)::int as rows,
            (select count(*) from raw.events)::int as n,
            (select count(distinct event_id) from raw.events)::int as d`,
  );
}

Deno.test({
  name:
    "3 batches over growing data: each event exactly once; a rerun loads 0 files and changes nothing",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const t = await createTestEnv("exactly_once", { noTopic: true });
    const fx = new RawZoneFixture(
      createWebHdfs(t.config),
      t.config.hdfs.rawDir,
      t.config.kafka.topic,
    );
    const url = t.config.postgres.url;
    try {
      let total = 0;
      for (const size of [500, 1500, 3000]) {
        const batch = await fx.writeBatch(size);
        total += batch.events;
        const r = await runDag(t.config, { skipGroups: [...SKIP], log: quiet });
        assert.equal(r.state, "success", r.error);
        assert.equal(
          r.rowsLoaded,
          batch.events,
          "only the new files are loaded",
        );
        assert.equal(r.filesLoaded, batch.files.length);
        const [c] = await q<{ n: number; d: number }>(
          url,
          "select count(*)::int as n, count(distinct event_id)::int as d from raw.events",
        );
        assert.equal(c.n, total);
        assert.equal(c.d, total);
      }
      const before = await q(
        url,
        "select md5(string_agg(event_id || loaded_at::text, ',' order by event_id)) as h from raw.events",
      );
      const again = await runDag(t.config, {
        skipGroups: [...SKIP],
        log: quiet,
      });
      assert.equal(again.state, "success");
      assert.equal(again.filesLoaded, 0);
      assert.equal(again.rowsLoaded, 0);
      const after = await q(
        url,
        "select md5(string_agg(event_id || loaded_at::text, ',' order by event_id)) as h from raw.events",
      );
      assert.deepEqual(after, before, "raw.events unchanged by the rerun");
      const runs = await q<{ state: string; rows_loaded: number }>(
        url,
        "select state, rows_loaded::int from ops.dag_runs order by started_at",
      );
      assert.deepEqual(runs.map((r) => r.state), [
        "success",
        "success",
        "success",
        "success",
      ]);
      assert.equal(runs.reduce((a, r) => a + r.rows_loaded, 0), total);
      const tasks = await q<{ task_id: string; state: string }>(
        url,
        "select task_id, state from ops.task_runs where run_id = $1 order by started_at, task_id",
        [again.runId],
      );
      assert.deepEqual(
        tasks.filter((x) => x.state === "success").map((x) => x.task_id),
        [
          "check_services",
          "load_raw_events",
          "upsert_catalogs",
          "validate_raw",
          "compact_raw_zone",
        ],
      );
      const [ledger] = await q<{ n: number; validated: number; rows: number }>(
        url,
        "select count(*)::int as n, count(validated_by)::int as validated, sum(row_count)::int as rows from raw.load_ledger",
      );
      assert.equal(ledger.rows, total);
      assert.equal(
        ledger.validated,
        ledger.n,
        "every loaded file was validated",
      );
      const [cat] = await q<{ u: number; p: number }>(
        url,
        "select (select count(*) from raw.users)::int as u, (select count(*) from raw.products)::int as p",
      );
      assert.deepEqual(cat, { u: 2000, p: 10000 });
    } finally {
      await fx.close();
      await t.cleanup();
    }
  },
});

Deno.test({
  name:
    "kill -9 of the batch in the middle of loading, then a rerun: exactly once",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const t = await createTestEnv("kill9", { noTopic: true });
    const url = t.config.postgres.url;
    let fx: RawZoneFixture | undefined;
    try {
      const load = await writeKillLoad(t);
      fx = load.fx;
      const { total, files } = load;
      const child = spawnBatch(t.env, ["--skip", "dbt,export,compaction"]);
      const outP = collect(child);
      // Some, not all, files committed: kill -9.
      await waitLedgerFiles(url, 2);
      child.kill("SIGKILL");
      const killed = await outP;
      assert.notEqual(killed.code, 0, "the batch was killed");
      const [mid] = await ledgerTotals(url);
      assert.ok(
        mid.files >= 2 && mid.files < files,
        `killed mid-load (${mid.files}/${files} files)`,
      );
      assert.equal(mid.n, mid.rows, "no partial file after kill -9");

      const rerun = await collect(
        spawnBatch(t.env, ["--skip", "dbt,export,compaction"]),
      );
      assert.equal(rerun.code, 0, rerun.stderr.slice(-2000));
      assert.match(
        rerun.stdout,
        new RegExp(
          `loaded ${files - mid.files} files, ${total - mid.rows} rows`,
        ),
      );
      const [end] = await ledgerTotals(url);
      assert.deepEqual(end, { files, rows: total, n: total, d: total });
      const runs = await q<{ state: string; error: string | null }>(
        url,
        "select state, error from ops.dag_runs order by started_at",
      );
      assert.equal(
        runs[0].state,
        "failed",
        "the killed run is marked failed by the next one",
      );
      assert.match(runs[0].error ?? "", /died/);
      assert.equal(runs[1].state, "success");
    } finally {
      await fx?.close();
      await t.cleanup();
    }
  },
});

Deno.test({
  name:
    "two runs at once: the second says so and exits 75; the lock frees when the first ends",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const t = await createTestEnv("lock", { noTopic: true });
    const fx = new RawZoneFixture(
      createWebHdfs(t.config),
      t.config.hdfs.rawDir,
      t.config.kafka.topic,
    );
    try {
      await fx.writeBatch(200);
      // First run: a real `deno task batch` process, stopped at its first
      // task by holding its lock session... no: we start it and race a second.
      const first = spawnBatch(t.env, ["--skip", "dbt,export"]);
      const firstOut = collect(first);
      // Wait until the first run holds the lock (its run row exists).
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline) {
        const rows = await q(
          t.config.postgres.url,
          "select 1 from ops.dag_runs",
        ).catch(() => []);
        if (rows.length) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      // Holding the lock from here as well makes the overlap certain even if
      // the first run is quick: a second run must refuse while either holds it.
      const held = await RunLock.tryAcquire(t.config.postgres.url).catch(() =>
        undefined
      );
      const second = await collect(spawnBatch(t.env, ["--skip", "dbt,export"]));
      await held?.release();
      const a = await firstOut;
      assert.equal(second.code, 75, second.stderr);
      assert.match(second.stderr, /another run is in progress/);
      assert.equal(a.code, 0, a.stderr.slice(-1500));
      const runs = await q(
        t.config.postgres.url,
        "select run_id from ops.dag_runs",
      );
      assert.equal(runs.length, 1, "the refused run recorded nothing");
      // Lock free again: a third run proceeds.
      const third = await collect(spawnBatch(t.env, ["--skip", "dbt,export"]));
      assert.equal(third.code, 0, third.stderr.slice(-1500));
    } finally {
      await fx.close();
      await t.cleanup();
    }
  },
});

Deno.test({
  name: "backfill of one hour reproduces the same counts",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const t = await createTestEnv("backfill", { noTopic: true });
    // 1 event/s of event time: 9,000 events span 09:30 to 12:00.
    const fx = new RawZoneFixture(
      createWebHdfs(t.config),
      t.config.hdfs.rawDir,
      t.config.kafka.topic,
      {
        rate: 1,
        startTime: new Date("2026-01-05T09:30:00Z"),
      },
    );
    const url = t.config.postgres.url;
    const perHour =
      `select date_trunc('hour', event_ts) as h, count(*)::int as n,
        count(distinct event_id)::int as d, sum(coalesce(amount, 0))::text as amount
      from raw.events group by 1 order by 1`;
    try {
      await fx.writeBatch(9000);
      const first = await runDag(t.config, {
        skipGroups: [...SKIP],
        log: quiet,
      });
      assert.equal(first.state, "success", first.error);
      const before = await q<{ h: Date; n: number }>(url, perHour);
      assert.ok(before.length >= 3, `data spans ${before.length} hours`);
      const hour = before[1].h;
      const from = new Date(hour);
      const to = new Date(from.getTime() + 3_600_000);
      const bf = await collect(spawnBatch(t.env, [
        "--backfill",
        "--from",
        from.toISOString(),
        "--to",
        to.toISOString(),
        "--skip",
        "dbt,export",
      ]));
      assert.equal(bf.code, 0, bf.stderr.slice(-2000));
      assert.match(bf.stdout, /\(backfill\): SUCCESS/);
      const after = await q(url, perHour);
      assert.deepEqual(
        after,
        before,
        "same counts per hour after the backfill",
      );
      const [reloaded] = await q<{ files: number; by_backfill: number }>(
        url,
        `select count(*)::int as files, count(*) filter (where run_id like 'backfill%')::int as by_backfill
         from raw.load_ledger where path like '%event_date=' || to_char($1::timestamptz at time zone 'UTC', 'YYYY-MM-DD')
           || '/event_hour=' || to_char($1::timestamptz at time zone 'UTC', 'HH24') || '/%'`,
        [from],
      );
      assert.ok(reloaded.files > 0);
      assert.equal(
        reloaded.by_backfill,
        reloaded.files,
        "the hour's files were reloaded by the backfill",
      );
      const [others] = await q<{ n: number }>(
        url,
        "select count(*)::int as n from raw.load_ledger where run_id like 'backfill%'",
      );
      assert.equal(
        others.n,
        reloaded.files,
        "no file outside the hour was touched",
      );
      // Flag validation: a clear one-line error, exit 2.
      const bad = await collect(
        spawnBatch(t.env, ["--backfill", "--from", "yesterday"]),
      );
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /^error: --from must be an ISO-8601 time/);
    } finally {
      await fx.close();
      await t.cleanup();
    }
  },
});

Deno.test({
  name:
    "HDFS down for the whole run: check_services fails after its retries, e-mail names HDFS, webhook gets the failure",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    // Nothing listens on this port: a real, unreachable WebHDFS for this run only.
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const deadPort = (probe.addr as Deno.NetAddr).port;
    probe.close();
    const hook = startWebhookReceiver();
    const smtp = await startSmtpReceiver();
    const t = await createTestEnv("hdfs_down", {
      noTopic: true,
      env: {
        LOGPIPE_WEBHDFS_URL: `http://127.0.0.1:${deadPort}`,
        LOGPIPE_SLACK_WEBHOOK_URL: hook.url,
        LOGPIPE_SMTP_URL: smtp.url,
        LOGPIPE_EMAIL_TO: "ops@example.com",
        LOGPIPE_EMAIL_FROM: "logpipe@example.com",
      },
    });
    try {
      const r = await collect(spawnBatch(t.env, ["--retry-delay", "0.2"]));
      assert.equal(r.code, 1, r.stderr.slice(-1500));
      assert.match(r.stdout, /check_services\.check_services\s+failed\s+3/);
      const mail = await smtp.waitFor(() => true);
      assert.deepEqual(mail.to, ["ops@example.com"]);
      assert.match(mail.subject, /Service Failure Alert: HDFS down/);
      assert.match(mail.raw, /HDFS:/);
      assert.doesNotMatch(mail.subject, /Kafka|PostgreSQL/);
      const kinds = hook.received.map((m) => m.body.logpipe?.kind);
      assert.deepEqual(kinds, [
        "task_failure",
        "task_failure",
        "task_failure",
        "run_failure",
      ]);
      assert.match(
        hook.received[3].body.text ?? "",
        /failed at check_services\.check_services/,
      );
      const [run] = await q<{ state: string; error: string }>(
        t.config.postgres.url,
        "select state, error from ops.dag_runs",
      );
      assert.equal(run.state, "failed");
      assert.match(run.error, /HDFS/);
      const skipped = await q(
        t.config.postgres.url,
        "select task_id from ops.task_runs where state = 'skipped'",
      );
      assert.equal(
        skipped.length,
        8,
        "every later task is recorded as skipped",
      );
    } finally {
      await hook.close();
      await smtp.close();
      // The root was never created (HDFS unreachable); only the database to drop.
      await t.cleanup();
    }
  },
});

Deno.test({
  name:
    "Postgres stopped once the run has started, back 20 s later: the failed task retries and the run succeeds",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const hook = startWebhookReceiver();
    const t = await createTestEnv("pg_outage", {
      noTopic: true,
      env: { LOGPIPE_SLACK_WEBHOOK_URL: hook.url },
    });
    const fx = new RawZoneFixture(
      createWebHdfs(t.config),
      t.config.hdfs.rawDir,
      t.config.kafka.topic,
    );
    const services = await import("../services/manager.ts");
    const { loadConfig } = await import("../config.ts");
    const local = loadConfig();
    try {
      const batch = await fx.writeBatch(60_000);
      // Retries 8 s, 16 s, 30 s apart: together longer than the outage.
      const child = spawnBatch(t.env, [
        "--skip",
        "dbt,export",
        "--retry-delay",
        "8",
        "--max-retry-delay",
        "30",
      ]);
      const result = collect(child);
      // As soon as the run is under way (check_services passed), take
      // Postgres away, as a crash or a restart by an operator would.
      const deadline = Date.now() + 60_000;
      for (;;) {
        const done = await q<{ n: number }>(
          t.config.postgres.url,
          `select count(*)::int as n from ops.task_runs
            where task_id = 'check_services' and state = 'success'`,
        ).catch(() => [{ n: 0 }]);
        if (done[0].n > 0) break;
        if (Date.now() > deadline) throw new Error("the run never started");
        await new Promise((r) => setTimeout(r, 100));
      }
      await services.stopService("postgres", local);
      await new Promise((r) => setTimeout(r, 20_000));
      await services.startService("postgres", local);
      await services.waitHealthy("postgres", local, 60_000);

      const r = await result;
      assert.equal(r.code, 0, `${r.stdout}\n${r.stderr.slice(-2000)}`);
      const kinds = hook.received.map((m) => m.body.logpipe?.kind);
      assert.ok(
        kinds.includes("task_failure"),
        `a task failed during the outage and was reported: ${kinds}`,
      );
      assert.equal(kinds.at(-1), "run_success");
      const [c] = await q<{ n: number; d: number }>(
        t.config.postgres.url,
        "select count(*)::int as n, count(distinct event_id)::int as d from raw.events",
      );
      assert.equal(c.n, batch.events, "every event loaded");
      assert.equal(c.d, batch.events, "and exactly once");
    } finally {
      // Never leave the shared Postgres down.
      await services.startService("postgres", local).catch(() => {});
      await services.waitHealthy("postgres", local, 60_000).catch(() => {});
      await hook.close();
      await t.cleanup();
    }
  },
});

Deno.test({
  name:
    "kill -9 of Postgres in the middle of a load (its files committed without waiting for the WAL flush): rows and ledger agree after recovery, the run retries and loads every row once",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const t = await createTestEnv("pg_crash_load", { noTopic: true });
    const services = await import("../services/manager.ts");
    const { loadConfig } = await import("../config.ts");
    const local = loadConfig();
    const url = t.config.postgres.url;
    let fx: RawZoneFixture | undefined;
    try {
      const load = await writeKillLoad(t);
      fx = load.fx;
      const { total, files } = load;
      const child = spawnBatch(t.env, [
        "--skip",
        "dbt,export,compaction",
        "--retry-delay",
        "5",
        "--max-retry-delay",
        "20",
      ]);
      const result = collect(child);
      // The moment some files are visible as loaded, their commits may
      // still be in Postgres's WAL buffers only (synchronous_commit off):
      // crash Postgres right then, as a power cut would.
      const seen = await waitLedgerFiles(url, 2);
      await services.stopService("postgres", local, { hard: true });
      // The dead postmaster's pid file stays until its process is reaped:
      // a restart is refused until then (the fault test waits 8 s).
      for (let attempt = 1;; attempt++) {
        try {
          await services.startService("postgres", local);
          break;
        } catch (err) {
          if (attempt >= 30) throw err;
          await new Promise((r) => setTimeout(r, 1_000));
        }
      }
      await services.waitHealthy("postgres", local, 60_000);
      const [after] = await ledgerTotals(url);
      console.log(
        `  ${seen} files seen loaded before the crash; after recovery ${after.files} (the run may have gone on)`,
      );
      assert.equal(after.n, after.rows, "recovered rows and ledger agree");

      // The run retries its failed task (5, 10, 20 s apart; Postgres is
      // back within seconds) and must end well: it once died after a
      // successful run, from a checked-out connection's unhandled error.
      const r = await result;
      assert.equal(r.code, 0, `${r.stdout}\n${r.stderr.slice(-2000)}`);
      const [end] = await ledgerTotals(url);
      assert.equal(end.files, files, "every file in the ledger once");
      assert.equal(end.rows, total, "the ledger accounts for every row");
      assert.equal(end.n, total, "every event loaded");
      assert.equal(end.d, total, "and exactly once");
    } finally {
      // Never leave the shared Postgres down.
      await services.startService("postgres", local).catch(() => {});
      await services.waitHealthy("postgres", local, 60_000).catch(() => {});
      await fx?.close();
      await t.cleanup();
    }
  },
});
