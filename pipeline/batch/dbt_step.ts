/**
 * The dbt task group: `dbt snapshot` → `dbt run` → `dbt test`, through the
 * dbt engineer's `runDbt` (project venv, profile from the configuration,
 * parsed run_results.json). A failing dbt test fails the run at once (a
 * retry would fail the same way) and its name goes into the notification;
 * a dbt command that errors otherwise (connection lost, lock timeout) is
 * retried by the task's policy.
 */
import type { Config } from "../config.ts";
import { type DbtRunResult, failedNodes, runDbt } from "../dbt/toolchain.ts";
import type { RunHistory } from "./history.ts";
import { NonRetryableError } from "./retry.ts";
import type { TaskContext, TaskResult } from "./runner.ts";

/** Runs one dbt command (replaceable in tests of the DAG logic). */
export type DbtRunner = (
  config: Config,
  args: string[],
  opts?: { timeoutMs?: number },
) => Promise<DbtRunResult>;

/** The real runner: dbt in the project venv (see runDbt). */
export function runDbtCommand(
  config: Config,
  args: string[],
  opts?: { timeoutMs?: number },
): Promise<DbtRunResult> {
  return runDbt(config, args, { timeoutMs: opts?.timeoutMs });
}

function tail(text: string, lines = 15): string {
  return text.trim().split("\n").slice(-lines).join("\n");
}

/** What one dbt task try needs. */
export interface DbtTaskOptions {
  /** Runs the dbt command (runDbtCommand, or a stand-in in tests). */
  runner: DbtRunner;
  config: Config;
  /** The dbt command and its arguments, e.g. ["run"]. */
  args: string[];
  ctx: TaskContext;
  /** Where `dbt test` results are recorded. */
  history: RunHistory;
  /** The run's state: receives the failing tests' names. */
  state: { failingTests?: string[] };
  /** Kills a dbt command running longer. */
  timeoutMs?: number;
}

/** Runs `dbt <args>` as a task try. */
export async function dbtTask(opts: DbtTaskOptions): Promise<TaskResult> {
  const { runner, config, args, ctx, history, state, timeoutMs } = opts;
  const command = args[0];
  if (command === "snapshot") {
    // A snapshot selects from staging views (cdc_product ← stg_products),
    // which exist only after a `dbt run`: build the snapshots' parent models
    // first (`dbt run` never runs snapshots themselves, so this is only them).
    const parents = await runner(config, [
      "run",
      "--select",
      "+resource_type:snapshot",
    ], { timeoutMs });
    if (!parents.ok) {
      const failing = failedNodes(parents);
      throw new Error(
        `dbt run of the snapshots' parents exited ${parents.exitCode}: ${
          failing.length
            ? failing.map((r) => `${r.name}: ${r.message ?? r.status}`).join(
              "; ",
            )
            : tail(parents.stdout + "\n" + parents.stderr)
        }`,
      );
    }
  }
  const run = await runner(config, args, { timeoutMs });
  const counts: Record<string, number> = {};
  for (const r of run.results) counts[r.status] = (counts[r.status] ?? 0) + 1;
  const detail = {
    command: `dbt ${args.join(" ")}`,
    exit_code: run.exitCode,
    statuses: counts,
    elapsed_ms: run.elapsedMs,
  };

  if (command === "test") {
    await history.recordDbtTests(
      ctx.runId,
      run.results.map((r) => ({
        name: r.name,
        status: r.status,
        failures: r.failures,
        message: r.message?.slice(0, 1000) ?? null,
      })),
    );
    const failing = failedNodes(run);
    if (failing.length) {
      state.failingTests = failing.map((r) => r.name);
      throw new NonRetryableError(
        `dbt test: ${failing.length} failing: ${
          failing.map((r) => `${r.name} (${r.failures ?? r.status})`).join(", ")
        }`,
      );
    }
  }
  if (!run.ok) {
    const failing = failedNodes(run);
    const what = failing.length
      ? failing.map((r) => `${r.name}: ${r.message ?? r.status}`).join("; ")
      : tail(run.stdout + "\n" + run.stderr);
    throw new Error(`dbt ${command} exited ${run.exitCode}: ${what}`);
  }
  const rows = run.results.reduce((a, r) => a + (r.rowsAffected ?? 0), 0);
  return { rows: command === "test" ? run.results.length : rows, detail };
}
