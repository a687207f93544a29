/**
 * The 10-minute schedule inside `deno task up`: Deno.cron (UTC, expression
 * from LOGPIPE_BATCH_CRON) runs the DAG. Deno.cron persists nothing; each
 * run records itself in ops.dag_runs / ops.task_runs. Deno.cron skips a tick
 * while the previous handler is still running, and the run lock keeps a
 * manual `deno task batch` from overlapping a scheduled run. The handler
 * never throws (Deno.cron would retry a throwing handler, i.e. run again).
 */
import type { Config } from "../config.ts";
import { logger } from "../log.ts";
import { type DagRunResult, runDag, type RunDagOptions } from "./dag.ts";
import { formatSummary } from "./summary.ts";

/** A running schedule. */
export interface BatchSchedule {
  cron: string;
  /** Stops future ticks and cancels a run in progress (its tasks abort). */
  stop(): Promise<void>;
}

export interface ScheduleOptions
  extends Omit<RunDagOptions, "trigger" | "signal" | "backfill"> {
  /** Also run once this many ms after start (so a fresh pipeline fills soon). */
  firstRunAfterMs?: number;
  /** Called after each successful run (e.g. to republish the site). */
  onSuccess?: (result: DagRunResult) => Promise<void>;
}

/** Starts the batch schedule. Needs `--unstable-cron` (deno.json has it). */
export function scheduleBatch(
  config: Config,
  opts: ScheduleOptions = {},
): BatchSchedule {
  const { firstRunAfterMs, onSuccess, ...dagOpts } = opts;
  const log = logger("batch.scheduler");
  const stopping = new AbortController();
  let current: Promise<unknown> | undefined;
  // One handler for cron ticks and the first run. A tick that comes while
  // a run is going is skipped here (Deno.cron also skips overlapping ticks,
  // but not the first run), and the run lock guards against other processes.
  const runOnce = async (trigger: "schedule") => {
    if (current || stopping.signal.aborted) return;
    const run = runDag(config, { ...dagOpts, trigger, signal: stopping.signal })
      .then(async (r) => {
        const fn = r.state === "failed" ? log.warn : log.info;
        fn("scheduled run done", {
          run_id: r.runId,
          state: r.state,
          summary: formatSummary(r),
        });
        if (
          (r.state === "success" || r.state === "success_with_warnings") &&
          onSuccess
        ) {
          await onSuccess(r).catch((err) =>
            log.warn("after-run step failed", { run_id: r.runId, error: err })
          );
        }
      })
      .catch((err) => log.error("scheduled run crashed", { error: err }));
    current = run;
    await run;
    current = undefined;
  };
  const cronDone = Deno.cron(
    "logpipe-batch",
    config.batch.cron,
    { backoffSchedule: [], signal: stopping.signal },
    () => runOnce("schedule"),
  );
  const firstRun = firstRunAfterMs === undefined
    ? undefined
    : setTimeout(() => runOnce("schedule"), firstRunAfterMs);
  log.info("batch scheduled", { cron: config.batch.cron, timezone: "UTC" });
  return {
    cron: config.batch.cron,
    async stop() {
      if (firstRun !== undefined) clearTimeout(firstRun);
      stopping.abort(new Error("schedule stopped"));
      await current;
      await cronDone.catch(() => {});
    },
  };
}
