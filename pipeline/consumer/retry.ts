/**
 * Retry with capped exponential backoff and jitter, for HDFS and Postgres
 * calls that must eventually succeed (the consumer pauses — back-pressure —
 * instead of dropping or committing data that was not written).
 */

/** Raised when a retry loop is abandoned because the caller gave up. */
export class RetryAborted extends Error {
  override name = "RetryAborted";
}

export interface RetryOptions {
  initialMs?: number;
  maxMs?: number;
  /** Return true to stop retrying (the loop then throws RetryAborted). */
  aborted?: () => boolean;
  /** Called after each failure, before sleeping (logging, heartbeats). */
  onError?: (
    err: unknown,
    attempt: number,
    delayMs: number,
  ) => void | Promise<void>;
  /** Give up after this many attempts (default: never). */
  maxAttempts?: number;
}

/** Backoff delay of attempt n (1-based): initial·2^(n-1), capped, ±20 % jitter. */
export function backoffMs(
  attempt: number,
  initialMs: number,
  maxMs: number,
): number {
  const base = Math.min(maxMs, initialMs * 2 ** Math.min(30, attempt - 1));
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

/** Runs `fn` until it succeeds; see RetryOptions. */
export async function retry<T>(
  fn: () => Promise<T>,
  opts: RetryOptions = {},
): Promise<T> {
  const initial = opts.initialMs ?? 250;
  const max = opts.maxMs ?? 10_000;
  for (let attempt = 1;; attempt++) {
    if (opts.aborted?.()) throw new RetryAborted("retry abandoned");
    try {
      return await fn();
    } catch (err) {
      if (opts.maxAttempts !== undefined && attempt >= opts.maxAttempts) {
        throw err;
      }
      const delay = backoffMs(attempt, initial, max);
      await opts.onError?.(err, attempt, delay);
      // Sleep in short steps so an abort is noticed quickly.
      const until = Date.now() + delay;
      while (Date.now() < until) {
        if (opts.aborted?.()) throw new RetryAborted("retry abandoned");
        await new Promise((r) =>
          setTimeout(r, Math.min(200, until - Date.now()))
        );
      }
    }
  }
}
