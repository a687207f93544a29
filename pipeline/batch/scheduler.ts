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
import { runDag, type RunDagOptions } from "./dag.ts";
import { formatSummary } from "./summary.ts";

/** A running schedule. */
export interface BatchSchedule {
  cron: string;
  /** Stops future ticks and cancels a run in progress (its tasks abort). */
  stop(): Promise<void>;
}

/** Starts the batch schedule. Needs `--unstable-cron` (deno.json has it). */
export function scheduleBatch(
  config: Config,
  opts: Omit<RunDagOptions, "trigger" | "signal" | "backfill"> = {},
): BatchSchedule {
  const log = logger("batch.scheduler");
  const stopping = new AbortController();
  let current: Promise<unknown> | undefined;
  const cronDone = Deno.cron(
    "logpipe-batch",
    config.batch.cron,
    { backoffSchedule: [], signal: stopping.signal },
    async () => {
      const run = runDag(config, {
        ...opts,
        trigger: "schedule",
        signal: stopping.signal,
      })
        .then((r) => {
          const fn = r.state === "failed" ? log.warn : log.info;
          fn("scheduled run done", {
            run_id: r.runId,
            state: r.state,
            summary: formatSummary(r),
          });
        })
        .catch((err) => log.error("scheduled run crashed", { error: err }));
      current = run;
      await run;
      current = undefined;
    },
  );
  log.info("batch scheduled", { cron: config.batch.cron, timezone: "UTC" });
  return {
    cron: config.batch.cron,
    async stop() {
      stopping.abort(new Error("schedule stopped"));
      await current;
      await cronDone.catch(() => {});
    },
  };
}
