/**
 * Retry policy of one DAG task: how many extra tries, the exponential
 * backoff between them (capped), and the per-try timeout. Pure logic, so the
 * schedule of delays is tested without waiting for it.
 */
import { formatMs } from "../format.ts";

/** How a task is retried (Airflow's retries / retry_delay / retry_exponential_backoff / max_retry_delay / execution_timeout). */
export interface RetryPolicy {
  /** Extra tries after the first one (Airflow's `retries`). */
  retries: number;
  /** Delay before the first retry. */
  retryDelayMs: number;
  /** Upper bound of any delay. */
  maxRetryDelayMs: number;
  /** Growth of the delay per retry (2 = doubling). */
  backoffFactor: number;
  /** A try running longer than this is aborted and counts as failed. */
  timeoutMs: number;
}

/**
 * The delay to wait after try `tryNumber` (1-based) failed, before the next:
 * retryDelay × factor^(try−1), capped at maxRetryDelay. Deterministic (no
 * jitter): one scheduler, no herd to spread.
 */
export function backoffDelay(policy: RetryPolicy, tryNumber: number): number {
  if (!Number.isInteger(tryNumber) || tryNumber < 1) {
    throw new RangeError(
      `tryNumber must be a positive integer, got ${tryNumber}`,
    );
  }
  const raw = policy.retryDelayMs * policy.backoffFactor ** (tryNumber - 1);
  return Math.max(0, Math.min(policy.maxRetryDelayMs, Math.round(raw)));
}

/** All the delays a task can wait through, in order (length = retries). */
export function backoffSchedule(policy: RetryPolicy): number[] {
  return Array.from(
    { length: policy.retries },
    (_, i) => backoffDelay(policy, i + 1),
  );
}

/**
 * An error that retrying cannot fix (a failing dbt test, a data-validation
 * violation): the runner stops retrying and fails the task at once.
 */
export class NonRetryableError extends Error {
  override name = "NonRetryableError";
}

/** A try that ran past its timeout. */
export class TaskTimeoutError extends Error {
  override name = "TaskTimeoutError";
}

/**
 * Runs `fn` with a deadline. On timeout the signal passed to `fn` is aborted
 * (so its queries and requests stop) and TaskTimeoutError is thrown after
 * `fn` has settled, or after `graceMs` if it ignores the signal, so the next
 * try never overlaps a try that is still cleaning up.
 */
export async function withTimeout<T>(
  fn: (signal: AbortSignal) => Promise<T>,
  timeoutMs: number,
  graceMs = 15_000,
  outer?: AbortSignal,
): Promise<T> {
  const controller = new AbortController();
  const onOuterAbort = () => controller.abort(outer?.reason);
  outer?.addEventListener("abort", onOuterAbort, { once: true });
  if (outer?.aborted) controller.abort(outer.reason);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const running = fn(controller.signal);
  const timedOut = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  try {
    const first = await Promise.race([
      running.then((value) => ({ value })),
      timedOut,
    ]);
    if (first !== "timeout") return first.value;
    controller.abort(new TaskTimeoutError(`timed out after ${timeoutMs} ms`));
    let graceTimer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      running.catch(() => {}),
      new Promise((r) => graceTimer = setTimeout(r, graceMs)),
    ]);
    clearTimeout(graceTimer);
    throw new TaskTimeoutError(`timed out after ${formatMs(timeoutMs)}`);
  } finally {
    clearTimeout(timer);
    outer?.removeEventListener("abort", onOuterAbort);
  }
}
