/**
 * Waiting, deadlines and retries: one helper for each, shaped like Deno std's
 * `@std/async` (`delay`, `deadline`, `retry`) so a reader who knows std knows
 * these. std itself is not a dependency: it comes from JSR, and the project
 * takes packages only from npm.
 */

/** Options of `delay`. */
export interface DelayOptions {
  /** Aborting it ends the wait at once: the promise rejects with its reason. */
  signal?: AbortSignal;
}

/**
 * Resolves after `ms` milliseconds, or rejects with `signal.reason` as soon
 * as the signal aborts (at once if it already has).
 */
export function delay(ms: number, opts: DelayOptions = {}): Promise<void> {
  const { signal } = opts;
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** The rejection of `deadline` when its time is up. */
export class DeadlineError extends Error {
  override name = "DeadlineError";
}

/** Options of `deadline`. */
export interface DeadlineOptions {
  /** Aborting it rejects at once with its reason. */
  signal?: AbortSignal;
  /** The DeadlineError's message (default: "deadline of <ms> ms passed"). */
  message?: string;
}

/**
 * `promise`'s outcome if it settles within `ms`; otherwise a DeadlineError
 * (or the signal's reason, if it aborts first). The promise itself is not
 * cancelled: pass the same signal to the work when it must stop too.
 */
export function deadline<T>(
  promise: Promise<T>,
  ms: number,
  opts: DeadlineOptions = {},
): Promise<T> {
  const { signal } = opts;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onAbort: (() => void) | undefined;
  const expired = new Promise<never>((_, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    timer = setTimeout(
      () =>
        reject(
          new DeadlineError(opts.message ?? `deadline of ${ms} ms passed`),
        ),
      ms,
    );
    onAbort = () => reject(signal!.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
  return Promise.race([promise, expired]).finally(() => {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener("abort", onAbort);
  });
}

/** Options of `retry`. Delays: minTimeout × multiplier^(attempt−1), capped at maxTimeout, then jittered. */
export interface RetryOptions {
  /** Tries in all, the first included (default 5; Infinity: until it succeeds). */
  maxAttempts?: number;
  /** Delay after the first failure, in ms (default 1000). */
  minTimeout?: number;
  /** Growth of the delay per failure (default 2; 1 = a constant delay). */
  multiplier?: number;
  /** Upper bound of any delay, in ms (default 60 000). */
  maxTimeout?: number;
  /**
   * Spread of each delay as a fraction of it: 0.2 gives a delay uniformly
   * within ±20 % of the backoff (default 0, no spread). Unlike std's `jitter`
   * (which only shortens), this centres on the backoff.
   */
  jitter?: number;
  /** False for an error no retry can fix: it is thrown at once (default: all are retried). */
  isRetryable?: (err: unknown) => boolean;
  /** Called after a failure that will be retried, before the wait (logging, heartbeats). */
  onRetry?: (
    err: unknown,
    attempt: number,
    delayMs: number,
  ) => void | Promise<void>;
  /** Aborting it stops the loop: before a try or during a wait, its reason is thrown. */
  signal?: AbortSignal;
}

/** The wait after failed try `attempt` (1-based) under `opts`, before jitter. */
export function backoffDelay(opts: RetryOptions, attempt: number): number {
  const min = opts.minTimeout ?? 1000;
  const max = opts.maxTimeout ?? 60_000;
  const multiplier = opts.multiplier ?? 2;
  // The exponent is capped so a long outage never overflows to Infinity·0.
  return Math.min(max, min * multiplier ** Math.min(60, attempt - 1));
}

/**
 * Calls `fn` until it resolves, waiting a growing delay between failures
 * (see RetryOptions). Throws the last error once `maxAttempts` tries failed
 * or `isRetryable` refuses an error, and the signal's reason once it aborts.
 */
export async function retry<T>(
  fn: () => Promise<T>,
  opts: RetryOptions = {},
): Promise<T> {
  const maxAttempts = opts.maxAttempts ?? 5;
  const jitter = opts.jitter ?? 0;
  if (!(maxAttempts >= 1)) {
    throw new RangeError(`maxAttempts must be at least 1, got ${maxAttempts}`);
  }
  if (!(jitter >= 0 && jitter <= 1)) {
    throw new RangeError(`jitter must be within [0, 1], got ${jitter}`);
  }
  for (let attempt = 1;; attempt++) {
    if (opts.signal?.aborted) throw opts.signal.reason;
    try {
      return await fn();
    } catch (err) {
      if (attempt >= maxAttempts || opts.isRetryable?.(err) === false) {
        throw err;
      }
      const base = backoffDelay(opts, attempt);
      const delayMs = Math.round(
        base * (1 - jitter + Math.random() * 2 * jitter),
      );
      await opts.onRetry?.(err, attempt, delayMs);
      await delay(delayMs, { signal: opts.signal });
    }
  }
}
