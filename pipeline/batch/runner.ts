/**
 * Runs the tasks of one DAG run in order, each with its own retries,
 * capped exponential backoff and per-try timeout, reporting every try to an
 * observer (run history in ops.*, notifications, the summary). Knows nothing
 * of Postgres or HDFS: the tasks and the observer bring those.
 */
import type { Logger } from "../log.ts";
import {
  backoffDelay,
  NonRetryableError,
  type RetryPolicy,
  TaskTimeoutError,
  withTimeout,
} from "./retry.ts";
import { delay } from "../async.ts";

/** States of a task try, as stored in ops.task_runs.state. */
export type TaskState =
  | "running"
  | "success"
  | "success_with_warnings"
  | "failed"
  | "up_for_retry"
  | "skipped";

/** What a try of a task gets. */
export interface TaskContext {
  runId: string;
  tryNumber: number;
  /** Aborted on timeout or when the run is cancelled. */
  signal: AbortSignal;
  log: Logger;
}

/** What a successful try reports (rows: loaded / written / tested). */
export interface TaskResult {
  rows?: number;
  detail?: Record<string, unknown>;
  /** Data set aside (quarantined) by the try: it ends success_with_warnings. */
  warnings?: number;
}

/** One task of the DAG. */
export interface TaskDef {
  group: string;
  id: string;
  policy: RetryPolicy;
  run(ctx: TaskContext): Promise<TaskResult | void>;
}

/** One try of one task, as the observer sees it at start and at end. */
export interface TryRecord {
  runId: string;
  group: string;
  taskId: string;
  tryNumber: number;
  /** tries allowed in all (retries + 1). */
  maxTries: number;
  state: TaskState;
  startedAt: Date;
  endedAt?: Date;
  durationMs?: number;
  rows?: number;
  detail: Record<string, unknown>;
  error?: string;
  /** The thrown value of a failed try (for notifications that need more than text). */
  cause?: unknown;
  /** Set on up_for_retry: how long until the next try. */
  retryInMs?: number;
}

/** Receives every try's start and end. Its errors never fail the run. */
export interface RunObserver {
  tryStarted(rec: TryRecord): Promise<void>;
  tryEnded(rec: TryRecord): Promise<void>;
}

/** The end state of one task in a run. */
export interface TaskOutcome {
  group: string;
  taskId: string;
  state: "success" | "success_with_warnings" | "failed" | "skipped";
  tries: number;
  /** From the first try's start to the last try's end (waits included). */
  durationMs: number;
  rows?: number;
  detail: Record<string, unknown>;
  error?: string;
  cause?: unknown;
}

export interface RunTasksOptions {
  log: Logger;
  /** Cancels the whole run (Ctrl-C). */
  signal?: AbortSignal;
  /** Called before every try; a throw fails that try (e.g. the run lock was lost). */
  beforeTry?: (task: TaskDef, tryNumber: number) => Promise<void>;
  /** Replaceable for tests; must honour the signal. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Grace period for a timed-out try to clean up before the next one. */
  timeoutGraceMs?: number;
}

/** The one-line text of a thrown value. */
export function errorText(err: unknown): string {
  if (err instanceof AggregateError && err.errors.length) {
    return err.errors.map(errorText).join("; ");
  }
  if (err instanceof Error) {
    const msg = err.message || err.name;
    return err.name && err.name !== "Error" && !msg.startsWith(err.name)
      ? `${err.name}: ${msg}`
      : msg;
  }
  return String(err);
}

async function safely(log: Logger, what: string, fn: () => Promise<void>) {
  try {
    await fn();
  } catch (err) {
    log.warn(`${what} failed (ignored)`, { error: errorText(err) });
  }
}

/** Runs one task to success or to its last failed try. */
export async function runTask(
  task: TaskDef,
  runId: string,
  observer: RunObserver,
  opts: RunTasksOptions,
): Promise<TaskOutcome> {
  const sleep = opts.sleep ??
    ((ms: number, signal?: AbortSignal) => delay(ms, { signal }));
  const maxTries = task.policy.retries + 1;
  const firstStart = Date.now();
  const log = opts.log;
  for (let tryNumber = 1;; tryNumber++) {
    const startedAt = new Date();
    const base = {
      runId,
      group: task.group,
      taskId: task.id,
      tryNumber,
      maxTries,
      startedAt,
    };
    await safely(
      log,
      "recording the try start",
      () => observer.tryStarted({ ...base, state: "running", detail: {} }),
    );
    log.info("task try started", {
      run_id: runId,
      task: `${task.group}.${task.id}`,
      try: tryNumber,
      max_tries: maxTries,
    });
    let result: TaskResult | void = undefined;
    let failure: unknown;
    try {
      if (opts.signal?.aborted) throw opts.signal.reason;
      await opts.beforeTry?.(task, tryNumber);
      result = await withTimeout(
        (signal) => task.run({ runId, tryNumber, signal, log: opts.log }),
        task.policy.timeoutMs,
        opts.timeoutGraceMs,
        opts.signal,
      );
    } catch (err) {
      failure = err ?? new Error("task failed without an error");
    }
    const endedAt = new Date();
    const durationMs = endedAt.getTime() - startedAt.getTime();
    if (failure === undefined) {
      const warned = (result?.warnings ?? 0) > 0;
      const rec: TryRecord = {
        ...base,
        state: warned ? "success_with_warnings" : "success",
        endedAt,
        durationMs,
        rows: result?.rows,
        detail: result?.detail ?? {},
      };
      log.info("task succeeded", {
        run_id: runId,
        task: `${task.group}.${task.id}`,
        try: tryNumber,
        duration_ms: durationMs,
        rows: rec.rows,
      });
      await safely(log, "recording the try end", () => observer.tryEnded(rec));
      return {
        group: task.group,
        taskId: task.id,
        state: warned ? "success_with_warnings" : "success",
        tries: tryNumber,
        durationMs: endedAt.getTime() - firstStart,
        rows: rec.rows,
        detail: rec.detail,
      };
    }
    const cancelled = opts.signal?.aborted === true;
    const retryable = !cancelled && !(failure instanceof NonRetryableError) &&
      tryNumber < maxTries;
    const retryInMs = retryable
      ? backoffDelay(task.policy, tryNumber)
      : undefined;
    const error = errorText(failure);
    const detail: Record<string, unknown> = {};
    if (failure instanceof TaskTimeoutError) detail.timeout = true;
    if (failure instanceof NonRetryableError) detail.non_retryable = true;
    if (cancelled) detail.cancelled = true;
    const rec: TryRecord = {
      ...base,
      state: retryable ? "up_for_retry" : "failed",
      endedAt,
      durationMs,
      detail,
      error,
      cause: failure,
      retryInMs,
    };
    log.warn(retryable ? "task try failed, will retry" : "task failed", {
      run_id: runId,
      task: `${task.group}.${task.id}`,
      try: tryNumber,
      max_tries: maxTries,
      duration_ms: durationMs,
      retry_in_ms: retryInMs,
      error,
    });
    await safely(log, "recording the try end", () => observer.tryEnded(rec));
    if (!retryable) {
      return {
        group: task.group,
        taskId: task.id,
        state: "failed",
        tries: tryNumber,
        durationMs: endedAt.getTime() - firstStart,
        detail,
        error,
        cause: failure,
      };
    }
    try {
      await sleep(retryInMs!, opts.signal);
    } catch {
      // Cancelled while waiting: the loop's next try sees the aborted signal.
    }
  }
}

/**
 * Runs `tasks` in order; the first task that fails stops the run and every
 * later task is recorded as skipped (Airflow's upstream_failed).
 */
export async function runTasks(
  tasks: TaskDef[],
  runId: string,
  observer: RunObserver,
  opts: RunTasksOptions,
): Promise<TaskOutcome[]> {
  const outcomes: TaskOutcome[] = [];
  let failed: TaskOutcome | undefined;
  for (const task of tasks) {
    if (failed) {
      const now = new Date();
      const rec: TryRecord = {
        runId,
        group: task.group,
        taskId: task.id,
        tryNumber: 0,
        maxTries: task.policy.retries + 1,
        state: "skipped",
        startedAt: now,
        endedAt: now,
        durationMs: 0,
        detail: { reason: "upstream_failed", upstream: failed.taskId },
      };
      await safely(
        opts.log,
        "recording a skipped task",
        () => observer.tryEnded(rec),
      );
      outcomes.push({
        group: task.group,
        taskId: task.id,
        state: "skipped",
        tries: 0,
        durationMs: 0,
        detail: rec.detail,
      });
      continue;
    }
    const outcome = await runTask(task, runId, observer, opts);
    outcomes.push(outcome);
    if (outcome.state === "failed") failed = outcome;
  }
  return outcomes;
}
