/**
 * The batch DAG (the original's Airflow `spark_batch_job_dag`, done as it
 * meant): one run = these task groups, in order, each task with its own
 * retries, capped exponential backoff and timeout:
 *
 *   check_services       check_services                    (retries 2)
 *   validate_and_process load_raw_events                    (retries 3)
 *                        upsert_catalogs                    (retries 2)
 *                        validate_raw                       (retries 2)
 *   dbt                  dbt_snapshot → dbt_run → dbt_test  (retries 2 each)
 *   export               export_marts                       (retries 2)
 *   compaction           compact_raw_zone                   (retries 2)
 *
 * Data never fails a run: rows or files Postgres refuses, duplicates and
 * offset conflicts are set aside (loader.ts, validate.ts); a run that set
 * anything aside ends `success_with_warnings` and its notification says
 * what. Compaction runs last, so a compaction failure never keeps fresh data
 * from dbt and the export.
 *
 * A run holds the Postgres advisory run lock from start to end (a second
 * run says so and leaves), records itself and every try in ops.* (Deno.cron
 * persists nothing), and notifies: webhook on every failed try and at the
 * end, e-mail when check_services gives up.
 */
import type { Config } from "../config.ts";
import { createPool, type Pool, withTransaction } from "../clients/postgres.ts";
import { createWebHdfs, type WebHdfs } from "../clients/webhdfs.ts";
import { type Logger, logger } from "../log.ts";
import { type BatchNotifier, Notifier } from "../notify/notifier.ts";
import { downCheck, ServicesDownError } from "../probes/probes.ts";
import { upsertCatalogs } from "./catalogs_upsert.ts";
import { type DbtRunner, dbtTask, runDbtCommand } from "./dbt_step.ts";
import { exportMarts } from "./export.ts";
import { RunHistory } from "./history.ts";
import { clearHourRows, loadFiles, type LoadResult } from "./loader.ts";
import { RunLock } from "./lock.ts";
import {
  hourOverlaps,
  listFolderFiles,
  listRawFiles,
  partitionStart,
  type RawFile,
} from "../zones/raw_listing.ts";
import {
  releaseQuarantinedFiles,
  type ReloadFilter,
  reloadQuarantinedRows,
  type ReloadResult,
} from "./reload.ts";
import { compactClosedHours, recoverCompactions } from "./compact.ts";
import { type BatchFailpoint, BatchFailpoints } from "./failpoints.ts";
import { listNewFiles, settleFolders } from "./listing.ts";
import {
  emptySummary,
  formatSummaryLine,
  type QuarantineSummary,
  writeQuarantineCopies,
} from "./quarantine.ts";
import type { RetryPolicy } from "./retry.ts";
import {
  errorText,
  type RunObserver,
  runTasks,
  type TaskContext,
  type TaskDef,
  type TaskOutcome,
  type TaskResult,
  type TryRecord,
} from "./runner.ts";
import { retry } from "../async.ts";
import { checkServices } from "./services_check.ts";
import { assertValid, validateLoaded } from "./validate.ts";

/** The DAG's id (dag_runs.dag_id). */
export const DAG_ID = "logpipe_batch";

/** Task groups, in run order. */
export const TASK_GROUPS = [
  "check_services",
  "validate_and_process",
  "dbt",
  "export",
  "compaction",
] as const;
export type TaskGroup = typeof TASK_GROUPS[number];

const SECOND = 1000;
const MINUTE = 60 * SECOND;

/** Each task's retry policy (delays scale with RunDagOptions.retryDelayMs). */
export const TASK_POLICIES: Record<string, RetryPolicy> = {
  check_services: p(2, 2 * MINUTE),
  load_raw_events: p(3, 20 * MINUTE),
  upsert_catalogs: p(2, 2 * MINUTE),
  validate_raw: p(2, 10 * MINUTE),
  dbt_snapshot: p(2, 15 * MINUTE),
  dbt_run: p(2, 20 * MINUTE),
  dbt_test: p(2, 15 * MINUTE),
  export_marts: p(2, 10 * MINUTE),
  compact_raw_zone: p(2, 30 * MINUTE),
};

function p(retries: number, timeoutMs: number): RetryPolicy {
  return {
    retries,
    retryDelayMs: 5 * SECOND,
    backoffFactor: 2,
    maxRetryDelayMs: 2 * MINUTE,
    timeoutMs,
  };
}

/** How a run was started (dag_runs.trigger). */
export type Trigger = "schedule" | "manual" | "backfill";

export interface RunDagOptions {
  trigger?: Trigger;
  /** Reload this event-time range (whole hour partitions overlapping it). */
  backfill?: { from: Date; to: Date };
  /** Task groups not to run (recorded as skipped), e.g. ["dbt", "export"]. */
  skipGroups?: TaskGroup[];
  /** First retry delay for every task (default 5 s). */
  retryDelayMs?: number;
  /** Cap of any retry delay (default 2 min). */
  maxRetryDelayMs?: number;
  notifier?: BatchNotifier;
  dbt?: DbtRunner;
  signal?: AbortSignal;
  log?: Logger;
  /** Progress lines (files loaded) for an interactive terminal. */
  onProgress?: (msg: string) => void;
  /** Testing only: kill this process at a phase (see failpoints.ts). */
  failpoint?: BatchFailpoint;
  /** Clock of the listing window and of compaction's closed hours (tests). */
  now?: () => Date;
  /** Also retry these quarantined items (after a fix) before loading new files. */
  reloadQuarantine?: ReloadFilter;
  /** How old a folder's last change must be to be settled (tests; see listing.ts). */
  settleMarginMs?: number;
}

/** A finished (or refused) run. */
export interface DagRunResult {
  runId: string;
  dagId: string;
  trigger: Trigger;
  /** "locked": another run held the lock, nothing was done. */
  state: "success" | "success_with_warnings" | "failed" | "locked";
  startedAt: Date;
  durationMs: number;
  rowsLoaded: number;
  filesLoaded: number;
  tasks: TaskOutcome[];
  failedTask?: string;
  error?: string;
  failingTests?: string[];
  /** What the run set aside (quarantine), when anything. */
  quarantine?: QuarantineSummary;
  /** What --reload-quarantine did. */
  reload?: ReloadResult;
  /** False when some history writes could not reach Postgres. */
  historySaved: boolean;
}

/** A run id that is also a valid HDFS path segment (no ':'). */
export function makeRunId(trigger: Trigger, at = new Date()): string {
  const stamp = at.toISOString().replace(/[-:]/g, "").replace(".", "");
  const rand = crypto.getRandomValues(new Uint8Array(3));
  return `${trigger}__${stamp}__${
    Array.from(rand, (b) => b.toString(16).padStart(2, "0")).join("")
  }`;
}

/** Scales every policy's delays by the run's options. */
export function effectivePolicy(
  base: RetryPolicy,
  opts: Pick<RunDagOptions, "retryDelayMs" | "maxRetryDelayMs">,
): RetryPolicy {
  return {
    ...base,
    retryDelayMs: opts.retryDelayMs ?? base.retryDelayMs,
    maxRetryDelayMs: Math.max(
      opts.retryDelayMs ?? 0,
      opts.maxRetryDelayMs ?? base.maxRetryDelayMs,
    ),
  };
}

/** Shared state the tasks of one run pass along. */
interface RunState {
  load?: LoadResult;
  /** Everything set aside by this run (load and validate). */
  quarantine: QuarantineSummary;
  reload?: ReloadResult;
  failingTests?: string[];
  servicesDown?: ServicesDownError;
}

interface TaskEnv {
  config: Config;
  pool: Pool;
  hdfs: WebHdfs;
  history: RunHistory;
  state: RunState;
  opts: RunDagOptions;
  dbt: DbtRunner;
  failpoints: BatchFailpoints;
  now: () => Date;
}

/** The run's tasks, in order (see the file's header). */
function buildTasks(env: TaskEnv): TaskDef[] {
  const { opts } = env;
  const task = (
    group: TaskGroup,
    id: string,
    run: TaskDef["run"],
  ): TaskDef => ({
    group,
    id,
    policy: effectivePolicy(TASK_POLICIES[id], opts),
    run,
  });
  const dbt = (id: string, command: string): TaskDef =>
    task("dbt", id, (ctx) =>
      dbtTask({
        runner: env.dbt,
        config: env.config,
        args: [command],
        ctx,
        history: env.history,
        state: env.state,
        timeoutMs: TASK_POLICIES[id].timeoutMs,
      }));

  return [
    task("check_services", "check_services", () => checkServicesTask(env)),
    task(
      "validate_and_process",
      "load_raw_events",
      (ctx) => loadRawEventsTask(env, ctx),
    ),
    task("validate_and_process", "upsert_catalogs", async () => {
      const r = await upsertCatalogs(env.pool, logger("batch.catalogs"));
      return {
        rows: r.users.inserted + r.users.updated + r.products.inserted +
          r.products.updated,
        detail: { ...r },
      };
    }),
    task(
      "validate_and_process",
      "validate_raw",
      (ctx) => validateRawTask(env, ctx),
    ),
    dbt("dbt_snapshot", "snapshot"),
    dbt("dbt_run", "run"),
    dbt("dbt_test", "test"),
    task("export", "export_marts", (ctx) => exportMartsTask(env, ctx)),
    task("compaction", "compact_raw_zone", (ctx) => compactTask(env, ctx)),
  ];
}

/** check_services; keeps what was down for the notification. */
async function checkServicesTask(env: TaskEnv): Promise<TaskResult> {
  try {
    const checks = await checkServices(env.config);
    env.state.servicesDown = undefined;
    return { detail: { checks } };
  } catch (err) {
    if (err instanceof ServicesDownError) env.state.servicesDown = err;
    throw err;
  }
}

/** The raw-zone files a run loads, and what their listing found. */
interface FilesToLoad {
  files: RawFile[];
  /** Every file of the listed folders (tells a second writer from a compaction). */
  present?: Set<string>;
  /** The incremental listing (absent for a backfill). */
  listing?: Awaited<ReturnType<typeof listNewFiles>>;
  /** Backfill: hours of the range HDFS no longer has, their rows removed. */
  removedHours: number;
}

/**
 * A backfill's files: every file of the hours overlapping the range. Hours
 * of the range HDFS no longer has lose their rows too (HDFS is the source
 * of truth of a backfill).
 */
async function backfillFiles(
  env: TaskEnv,
  backfill: { from: Date; to: Date },
): Promise<FilesToLoad> {
  const { config, pool, hdfs } = env;
  const files = await listRawFiles(hdfs, config.hdfs.rawDir, {
    hours: (date, hour) => hourOverlaps(date, hour, backfill.from, backfill.to),
  });
  const listed = new Set(files.map((f) => partitionStart(f).getTime()));
  const ledgerHours = await pool.query(
    `select distinct event_hour from raw.load_ledger
      where event_hour >= $1 and event_hour < $2`,
    [
      new Date(Math.floor(backfill.from.getTime() / 3_600_000) * 3_600_000),
      backfill.to,
    ],
  );
  let removedHours = 0;
  for (const { event_hour } of ledgerHours.rows as { event_hour: Date }[]) {
    if (listed.has(event_hour.getTime())) continue;
    await withTransaction(pool, (c) => clearHourRows(c, event_hour));
    removedHours++;
  }
  return { files, removedHours };
}

/**
 * --reload-quarantine, once per run: reloads the quarantined rows and
 * releases the quarantined files the filter names (returned, to be loaded).
 */
async function reloadQuarantine(
  env: TaskEnv,
  ctx: TaskContext,
  filter: ReloadFilter,
): Promise<RawFile[]> {
  const { pool, hdfs } = env;
  const rows = await reloadQuarantinedRows({
    pool,
    runId: ctx.runId,
    log: ctx.log,
    filter,
    now: env.now(),
  });
  const rel = await releaseQuarantinedFiles({
    pool,
    hdfs,
    runId: ctx.runId,
    filter,
  });
  env.state.reload = {
    ...rows,
    filesReleased: rel.files.length,
    filesMissing: rel.missing,
  };
  return rel.files;
}

/** A scheduled or manual run's files: the new ones, and any released from quarantine. */
async function newFiles(env: TaskEnv, ctx: TaskContext): Promise<FilesToLoad> {
  const { config, pool, hdfs, opts, state } = env;
  let released: RawFile[] = [];
  if (opts.reloadQuarantine && !state.reload) {
    released = await reloadQuarantine(env, ctx, opts.reloadQuarantine);
  }
  const listing = await listNewFiles({
    pool,
    hdfs,
    rawDir: config.hdfs.rawDir,
    lookbackHours: config.batch.lookbackHours,
    now: env.now(),
  });
  const present = new Set(listing.present);
  const toLoad = new Set(listing.toLoad.map((f) => f.path));
  const files = [
    ...listing.toLoad,
    ...released.filter((f) => !toLoad.has(f.path)),
  ];
  if (released.length) {
    // Their folders' files, to tell a second writer from a compaction.
    const dirs = [
      ...new Set(
        released.map((f) => f.path.slice(0, f.path.lastIndexOf("/"))),
      ),
    ];
    for (
      const f of await listFolderFiles(
        hdfs,
        config.hdfs.rawDir,
        dirs.map((dir) => ({ dir })),
      )
    ) present.add(f.path);
  }
  return { files, present, listing, removedHours: 0 };
}

/** load_raw_events: lists the raw zone and loads what is new into raw.events. */
async function loadRawEventsTask(
  env: TaskEnv,
  ctx: TaskContext,
): Promise<TaskResult> {
  const { config, pool, hdfs, state, opts } = env;
  const layout = { root: config.hdfs.root, rawDir: config.hdfs.rawDir };
  // A crashed compaction is finished first: the listing must never see
  // a merged file beside its inputs.
  await recoverCompactions(pool, hdfs, layout, ctx.runId, ctx.log);
  const backfill = opts.backfill;
  const listStart = performance.now();
  const { files, present, listing, removedHours } = backfill
    ? await backfillFiles(env, backfill)
    : await newFiles(env, ctx);
  const listingMs = Math.round(performance.now() - listStart);
  ctx.log.info("raw zone listed", {
    run_id: ctx.runId,
    to_load: files.length,
    listing_ms: listingMs,
    ...(listing ? { listing: listing.stats } : {}),
    backfill: backfill ? { from: backfill.from, to: backfill.to } : undefined,
  });
  let lastReport = 0;
  const result = await loadFiles({
    pool,
    hdfs,
    files,
    present,
    root: config.hdfs.root,
    runId: ctx.runId,
    log: ctx.log,
    signal: ctx.signal,
    replace: backfill !== undefined,
    onPhase: (phase) => env.failpoints.reached(phase),
    onProgress: (done, total, rows) => {
      if (Date.now() - lastReport > 2000 || done === total) {
        lastReport = Date.now();
        opts.onProgress?.(`loaded ${done}/${total} files, ${rows} rows`);
      }
    },
  });
  if (listing) await settleFolders(pool, listing, opts.settleMarginMs);
  // A retry after a partial failure loads only what is left; keep totals.
  state.load = mergeLoads(state.load, result);
  mergeSummary(state.quarantine, result.quarantine);
  const l = state.load;
  return {
    rows: l.rows,
    warnings: l.quarantine.rows + l.quarantine.files,
    detail: {
      files: l.files.length,
      bytes: l.bytes,
      listing_ms: listingMs,
      ...(listing ? { listing: listing.stats } : {}),
      exact_duplicates: l.duplicates.exact,
      conflicting_duplicates: l.duplicates.conflicting,
      already_loaded_rows: l.alreadyLoadedRows,
      compacted_files_adopted: l.adopted,
      careful_files: l.carefulFiles,
      quarantined_rows: l.quarantine.rows,
      quarantined_files: l.quarantine.files,
      quarantined_by_reason: l.quarantine.byReason,
      already_loaded_files: result.alreadyLoaded.length,
      ...(state.reload ? { reload: state.reload } : {}),
      ...(backfill
        ? { backfill: true, stale_hours_removed: removedHours }
        : {}),
    },
  };
}

/** validate_raw: checks the loaded rows, setting aside (quarantine) what fails. */
async function validateRawTask(
  env: TaskEnv,
  ctx: TaskContext,
): Promise<TaskResult> {
  const { config, pool, hdfs, state } = env;
  const report = await validateLoaded(pool, ctx.runId, { now: env.now() });
  if (report.quarantineIds.length) {
    await writeQuarantineCopies(
      pool,
      hdfs,
      config.hdfs.root,
      ctx.log,
      report.quarantineIds,
    );
  }
  mergeSummary(state.quarantine, report.quarantine);
  assertValid(report);
  return {
    rows: report.rows,
    warnings: report.quarantine.rows,
    detail: {
      files: report.files,
      quarantined_rows: report.quarantine.rows,
      quarantined_by_reason: report.quarantine.byReason,
    },
  };
}

/** export_marts: writes the marts to HDFS and records the export. */
async function exportMartsTask(
  env: TaskEnv,
  ctx: TaskContext,
): Promise<TaskResult> {
  const r = await exportMarts({
    pool: env.pool,
    hdfs: env.hdfs,
    exportsDir: env.config.hdfs.exportsDir,
    runId: ctx.runId,
    log: ctx.log,
    signal: ctx.signal,
  });
  await env.history.recordExport(ctx.runId, r.dir, r.tables);
  return {
    rows: Object.values(r.tables).reduce((a, b) => a + b, 0),
    detail: { dir: r.dir, tables: r.tables, bytes: r.bytes },
  };
}

/** compact_raw_zone: merges the closed hours' small files. */
async function compactTask(
  env: TaskEnv,
  ctx: TaskContext,
): Promise<TaskResult> {
  const { config } = env;
  const r = await compactClosedHours({
    pool: env.pool,
    hdfs: env.hdfs,
    layout: { root: config.hdfs.root, rawDir: config.hdfs.rawDir },
    runId: ctx.runId,
    log: ctx.log,
    graceMinutes: config.batch.compactionGraceMinutes,
    now: env.now(),
    signal: ctx.signal,
    onPhase: (phase) => env.failpoints.reached(phase),
  });
  return {
    rows: r.rows,
    detail: {
      hours_checked: r.hoursChecked,
      groups: r.groups,
      files_merged: r.filesMerged,
      bytes: r.bytes,
      recovered: r.recovered,
      discarded: r.discarded,
      ms: r.ms,
      rows_per_s: r.ms > 0 ? Math.round(r.rows / (r.ms / 1000)) : null,
    },
  };
}

/** Adds `b` to `a` (counts and examples). */
function mergeSummary(a: QuarantineSummary, b: QuarantineSummary): void {
  a.rows += b.rows;
  a.files += b.files;
  for (const [k, n] of Object.entries(b.byReason)) {
    a.byReason[k] = (a.byReason[k] ?? 0) + n;
  }
  for (const e of b.examples) if (a.examples.length < 10) a.examples.push(e);
}

function mergeLoads(a: LoadResult | undefined, b: LoadResult): LoadResult {
  if (!a) return b;
  const quarantine = emptySummary();
  mergeSummary(quarantine, a.quarantine);
  mergeSummary(quarantine, b.quarantine);
  return {
    files: [...a.files, ...b.files],
    rows: a.rows + b.rows,
    bytes: a.bytes + b.bytes,
    duplicates: {
      exact: a.duplicates.exact + b.duplicates.exact,
      conflicting: a.duplicates.conflicting + b.duplicates.conflicting,
    },
    alreadyLoadedRows: a.alreadyLoadedRows + b.alreadyLoadedRows,
    adopted: a.adopted + b.adopted,
    carefulFiles: a.carefulFiles + b.carefulFiles,
    quarantine,
    alreadyLoaded: [...a.alreadyLoaded, ...b.alreadyLoaded],
    unusedColumns: [...new Set([...a.unusedColumns, ...b.unusedColumns])],
  };
}

/** A skipped-group wrapper: recorded as a success-less skip without running. */
function skippedTask(t: TaskDef): TaskDef {
  return {
    ...t,
    policy: { ...t.policy, retries: 0 },
    run: () => Promise.resolve({ detail: { skipped: true } }),
  };
}

/**
 * Takes the run lock; when Postgres cannot be reached, retries with the
 * check_services policy, then gives up (returning the connection error).
 */
async function acquireLock(
  config: Config,
  policy: RetryPolicy,
  log: Logger,
  signal?: AbortSignal,
): Promise<{ lock?: RunLock; busy?: boolean; error?: unknown }> {
  let tries = 0;
  let lastErr: unknown;
  try {
    return await retry(async () => {
      try {
        const lock = await RunLock.tryAcquire(config.postgres.url);
        return lock ? { lock } : { busy: true };
      } catch (err) {
        lastErr = err;
        log.warn("cannot reach Postgres to take the run lock", {
          try: ++tries,
          error: errorText(err),
        });
        throw err;
      }
    }, {
      maxAttempts: policy.retries + 1,
      minTimeout: policy.retryDelayMs,
      multiplier: policy.backoffFactor,
      maxTimeout: policy.maxRetryDelayMs,
      signal,
    });
  } catch (err) {
    // A cancelled run stops waiting; it reports the last connection error.
    return { error: lastErr ?? err };
  }
}

/** What every result of one run starts from. */
type RunBase = Pick<
  DagRunResult,
  | "runId"
  | "dagId"
  | "trigger"
  | "startedAt"
  | "rowsLoaded"
  | "filesLoaded"
  | "tasks"
>;

/**
 * Postgres down before the run could start: no history can be written; tell
 * the operators exactly as check_services would have.
 */
async function failWithoutLock(
  config: Config,
  notifier: BatchNotifier,
  base: RunBase,
  checkPolicy: RetryPolicy,
  lockError: unknown,
): Promise<DagRunResult> {
  const { runId, trigger, startedAt } = base;
  let checks;
  try {
    checks = await checkServices(config);
  } catch (err) {
    checks = err instanceof ServicesDownError ? err.checks : undefined;
  }
  const error = `cannot take the run lock: ${errorText(lockError)}`;
  const down = checks ??
    [downCheck("postgres", "database", errorText(lockError))];
  await notifier.servicesDown(DAG_ID, runId, down, checkPolicy.retries + 1);
  const durationMs = Date.now() - startedAt.getTime();
  await notifier.runFinished({
    dagId: DAG_ID,
    runId,
    trigger,
    state: "failed",
    durationMs,
    rowsLoaded: 0,
    filesLoaded: 0,
    failedTask: "check_services",
    error,
    tasks: [],
  });
  return {
    ...base,
    state: "failed",
    durationMs,
    failedTask: "check_services",
    error,
    historySaved: false,
  };
}

/** Fails the runs of dead processes, then records this run as started. */
async function recordRunStart(
  history: RunHistory,
  base: RunBase,
  opts: RunDagOptions,
  log: Logger,
): Promise<void> {
  const { runId, trigger, startedAt } = base;
  const zombies = await history.failZombieRuns(DAG_ID, runId);
  if (zombies.length) {
    log.warn("marked runs of dead processes as failed", { runs: zombies });
  }
  await history.startRun({
    runId,
    dagId: DAG_ID,
    trigger,
    startedAt,
    params: {
      ...(opts.backfill
        ? {
          from: opts.backfill.from.toISOString(),
          to: opts.backfill.to.toISOString(),
        }
        : {}),
      ...(opts.skipGroups?.length ? { skip: opts.skipGroups } : {}),
      ...(opts.reloadQuarantine
        ? { reload_quarantine: opts.reloadQuarantine }
        : {}),
    },
  });
  log.info("run started", { run_id: runId, trigger });
}

/**
 * Records every try (a skipped task once, as skipped) and notifies each
 * failed try, and check_services giving up.
 */
function runObserver(
  runId: string,
  history: RunHistory,
  notifier: BatchNotifier,
  state: RunState,
  skippedIds: Set<string>,
): RunObserver {
  return {
    tryStarted: (rec) =>
      skippedIds.has(rec.taskId) ? Promise.resolve() : history.recordTry(rec),
    tryEnded: async (rec: TryRecord) => {
      if (skippedIds.has(rec.taskId)) {
        await history.recordTry({
          ...rec,
          state: "skipped",
          tryNumber: 0,
          detail: { reason: "skipped by option" },
        });
        return;
      }
      await history.recordTry(rec);
      if (rec.state === "failed" || rec.state === "up_for_retry") {
        await notifier.taskTryFailed({
          dagId: DAG_ID,
          runId,
          task: `${rec.group}.${rec.taskId}`,
          tryNumber: rec.tryNumber,
          maxTries: rec.maxTries,
          error: rec.error ?? "",
          durationMs: rec.durationMs ?? 0,
          retryInMs: rec.retryInMs,
          failingTests: rec.taskId === "dbt_test"
            ? state.failingTests
            : undefined,
        });
      }
      if (rec.taskId === "check_services" && rec.state === "failed") {
        const checks = state.servicesDown?.checks ??
          [downCheck("unknown", "check_services", rec.error ?? "")];
        await notifier.servicesDown(DAG_ID, runId, checks, rec.tryNumber);
      }
    },
  };
}

/**
 * Runs the tasks in order under the run lock; the skipped groups' tasks are
 * recorded as skipped without running.
 */
async function runAllTasks(
  env: TaskEnv,
  runId: string,
  notifier: BatchNotifier,
  lock: RunLock,
  log: Logger,
): Promise<TaskOutcome[]> {
  const { opts, history, state } = env;
  const skip = new Set(opts.skipGroups ?? []);
  const tasks = buildTasks(env).map((t) =>
    skip.has(t.group as TaskGroup) ? skippedTask(t) : t
  );
  const skippedIds = new Set(
    tasks.filter((t) => skip.has(t.group as TaskGroup)).map((t) => t.id),
  );
  const observer = runObserver(runId, history, notifier, state, skippedIds);
  const outcomes = await runTasks(tasks, runId, observer, {
    log,
    signal: opts.signal,
    beforeTry: () => lock.ensureHeld(),
  });
  return outcomes.map((o) =>
    skippedIds.has(o.taskId)
      ? {
        ...o,
        state: "skipped" as const,
        tries: 0,
        detail: { reason: "skipped by option" },
      }
      : o
  );
}

/** A finished run's figures and state, from its tasks' outcomes. */
function summarizeRun(
  startedAt: Date,
  result: TaskOutcome[],
  state: RunState,
) {
  const failed = result.find((o) => o.state === "failed");
  const endedAt = new Date();
  const durationMs = endedAt.getTime() - startedAt.getTime();
  const rowsLoaded = state.load?.rows ?? 0;
  const filesLoaded = state.load?.files.length ?? 0;
  const error = failed
    ? `${failed.group}.${failed.taskId}: ${failed.error}`
    : undefined;
  const q = state.quarantine;
  const warnings = q.rows + q.files;
  const runState = failed
    ? "failed"
    : warnings > 0
    ? "success_with_warnings"
    : "success";
  return {
    failed,
    endedAt,
    durationMs,
    rowsLoaded,
    filesLoaded,
    error,
    q,
    warnings,
    runState,
  } as const;
}

/**
 * Records the run's end and notifies it: failed when a task failed,
 * success_with_warnings when anything was set aside.
 */
async function recordRunEnd(
  base: RunBase,
  result: TaskOutcome[],
  state: RunState,
  history: RunHistory,
  notifier: BatchNotifier,
  log: Logger,
): Promise<DagRunResult> {
  const { runId, trigger } = base;
  const run = summarizeRun(base.startedAt, result, state);
  await history.finishRun(runId, {
    state: run.runState,
    endedAt: run.endedAt,
    durationMs: run.durationMs,
    rowsLoaded: run.rowsLoaded,
    filesLoaded: run.filesLoaded,
    error: run.error,
    warnings: run.warnings,
    warningDetail: run.warnings
      ? {
        quarantined_rows: run.q.rows,
        quarantined_files: run.q.files,
        by_reason: run.q.byReason,
        examples: run.q.examples,
      }
      : undefined,
  });
  await notifier.runFinished({
    dagId: DAG_ID,
    runId,
    trigger,
    state: run.runState,
    durationMs: run.durationMs,
    rowsLoaded: run.rowsLoaded,
    filesLoaded: run.filesLoaded,
    warnings: run.warnings
      ? {
        count: run.warnings,
        summary: formatSummaryLine(run.q),
        examples: run.q.examples,
      }
      : undefined,
    failedTask: run.failed
      ? `${run.failed.group}.${run.failed.taskId}`
      : undefined,
    error: run.failed?.error,
    failingTests: state.failingTests,
    tasks: result.map((o) => ({
      task: `${o.group}.${o.taskId}`,
      state: o.state,
      tries: o.tries,
      durationMs: o.durationMs,
    })),
  });
  log.info("run finished", {
    run_id: runId,
    state: run.runState,
    warnings: run.warnings,
    duration_ms: run.durationMs,
    rows_loaded: run.rowsLoaded,
    files_loaded: run.filesLoaded,
  });
  return {
    ...base,
    state: run.runState,
    quarantine: run.warnings ? run.q : undefined,
    reload: state.reload,
    durationMs: run.durationMs,
    rowsLoaded: run.rowsLoaded,
    filesLoaded: run.filesLoaded,
    tasks: result,
    failedTask: run.failed
      ? `${run.failed.group}.${run.failed.taskId}`
      : undefined,
    error: run.error,
    failingTests: state.failingTests,
    historySaved: true,
  };
}

/** The run's own bookkeeping failed (tasks never throw out): record and notify it. */
async function abortRun(
  base: RunBase,
  err: unknown,
  state: RunState,
  history: RunHistory,
  notifier: BatchNotifier,
  log: Logger,
): Promise<DagRunResult> {
  const { runId, trigger, startedAt } = base;
  const error = `run aborted: ${errorText(err)}`;
  log.error("run aborted", { run_id: runId, error });
  const durationMs = Date.now() - startedAt.getTime();
  await history.finishRun(runId, {
    state: "failed",
    endedAt: new Date(),
    durationMs,
    rowsLoaded: state.load?.rows ?? 0,
    filesLoaded: state.load?.files.length ?? 0,
    error,
  });
  await notifier.runFinished({
    dagId: DAG_ID,
    runId,
    trigger,
    state: "failed",
    durationMs,
    rowsLoaded: state.load?.rows ?? 0,
    filesLoaded: state.load?.files.length ?? 0,
    error,
    tasks: [],
  });
  return { ...base, state: "failed", durationMs, error, historySaved: true };
}

/** Runs the DAG once. Never throws for a task failure: see the result's state. */
export async function runDag(
  config: Config,
  opts: RunDagOptions = {},
): Promise<DagRunResult> {
  const log = opts.log ?? logger("batch");
  const trigger: Trigger = opts.trigger ??
    (opts.backfill ? "backfill" : "manual");
  const startedAt = new Date();
  const runId = makeRunId(trigger, startedAt);
  const notifier = opts.notifier ??
    new Notifier(config.notify, logger("notify"));
  const base: RunBase = {
    runId,
    dagId: DAG_ID,
    trigger,
    startedAt,
    rowsLoaded: 0,
    filesLoaded: 0,
    tasks: [] as TaskOutcome[],
  };

  const checkPolicy = effectivePolicy(TASK_POLICIES.check_services, opts);
  const got = await acquireLock(config, checkPolicy, log, opts.signal);
  if (got.busy) {
    log.warn("another batch run holds the run lock; not starting", {
      run_id: runId,
    });
    return {
      ...base,
      state: "locked",
      durationMs: Date.now() - startedAt.getTime(),
      historySaved: true,
    };
  }
  if (!got.lock) {
    return failWithoutLock(config, notifier, base, checkPolicy, got.error);
  }
  const lock = got.lock;

  const pool = createPool(config, { max: 4, applicationName: "logpipe-batch" });
  // An idle client's connection dying (Postgres restart) must not crash us.
  pool.on(
    "error",
    (err: Error) =>
      log.warn("idle Postgres connection lost", { error: err.message }),
  );
  const hdfs = createWebHdfs(config);
  const history = new RunHistory(pool, logger("batch.history"));
  const state: RunState = { quarantine: emptySummary() };
  let out: DagRunResult;
  let saved = false;
  try {
    await recordRunStart(history, base, opts, log);
    const env: TaskEnv = {
      config,
      pool,
      hdfs,
      history,
      state,
      opts,
      dbt: opts.dbt ?? runDbtCommand,
      failpoints: new BatchFailpoints(opts.failpoint, log),
      now: opts.now ?? (() => new Date()),
    };
    const result = await runAllTasks(env, runId, notifier, lock, log);
    out = await recordRunEnd(base, result, state, history, notifier, log);
  } catch (err) {
    out = await abortRun(base, err, state, history, notifier, log);
  } finally {
    saved = await history.drain();
    await lock.release();
    await pool.end().catch(() => {});
  }
  return { ...out, historySaved: saved };
}
