import assert from "node:assert/strict";
import {
  backoffDelay,
  deadline,
  DeadlineError,
  delay,
  retry,
} from "./async.ts";

/** Rejects with an instance of `type` whose message contains `text`. */
function assertRejects(
  fn: () => Promise<unknown>,
  // deno-lint-ignore no-explicit-any
  type: new (...args: any[]) => Error,
  text = "",
): Promise<void> {
  return assert.rejects(
    fn,
    (e) => e instanceof type && e.message.includes(text),
  );
}

Deno.test("delay: waits, and an abort ends the wait with the signal's reason", async () => {
  const t0 = performance.now();
  await delay(30);
  assert.ok(performance.now() - t0 >= 25);

  const c = new AbortController();
  const started = performance.now();
  const waiting = delay(10_000, { signal: c.signal });
  setTimeout(() => c.abort(new Error("stop")), 10);
  await assertRejects(() => waiting, Error, "stop");
  assert.ok(performance.now() - started < 1_000);

  // An already aborted signal rejects at once.
  await assertRejects(() => delay(10_000, { signal: c.signal }), Error, "stop");
});

Deno.test("deadline: the promise's outcome in time, else DeadlineError or the abort reason", async () => {
  assert.deepEqual(await deadline(Promise.resolve(7), 1_000), 7);
  await assertRejects(
    () => deadline(Promise.reject(new TypeError("own")), 1_000),
    TypeError,
    "own",
  );
  await assertRejects(
    () => deadline(delay(10_000, { signal: AbortSignal.timeout(200) }), 20),
    DeadlineError,
    "deadline of 20 ms passed",
  );
  await assertRejects(
    () =>
      deadline(delay(10_000, { signal: AbortSignal.timeout(200) }), 20, {
        message: "Postgres did not answer",
      }),
    DeadlineError,
    "Postgres did not answer",
  );
  const c = new AbortController();
  const p = deadline(new Promise(() => {}), 10_000, { signal: c.signal });
  c.abort(new Error("gone"));
  await assertRejects(() => p, Error, "gone");
});

Deno.test("retry: tries until success, up to maxAttempts, with capped exponential delays", async () => {
  let calls = 0;
  const delays: number[] = [];
  const v = await retry(() => {
    calls++;
    return calls < 4 ? Promise.reject(new Error("down")) : Promise.resolve(42);
  }, {
    minTimeout: 2,
    multiplier: 3,
    maxTimeout: 10,
    onRetry: (_e, _a, ms) => void delays.push(ms),
  });
  assert.deepEqual(v, 42);
  assert.deepEqual(calls, 4);
  assert.deepEqual(delays, [2, 6, 10]);

  calls = 0;
  await assertRejects(
    () =>
      retry(() => {
        calls++;
        return Promise.reject(new Error(`try ${calls}`));
      }, { maxAttempts: 3, minTimeout: 1 }),
    Error,
    "try 3",
  );
  assert.deepEqual(calls, 3);

  assert.deepEqual(
    [1, 2, 3, 4, 5, 100].map((a) =>
      backoffDelay({ minTimeout: 100, maxTimeout: 1_000 }, a)
    ),
    [100, 200, 400, 800, 1_000, 1_000],
  );
});

Deno.test("retry: isRetryable stops at once; jitter stays within its band", async () => {
  let calls = 0;
  await assertRejects(
    () =>
      retry(() => {
        calls++;
        return Promise.reject(new RangeError("fatal"));
      }, { minTimeout: 1, isRetryable: (e) => !(e instanceof RangeError) }),
    RangeError,
  );
  assert.deepEqual(calls, 1);

  const delays: number[] = [];
  calls = 0;
  await retry(() => {
    calls++;
    return calls <= 20 ? Promise.reject(new Error("x")) : Promise.resolve();
  }, {
    maxAttempts: Infinity,
    minTimeout: 10,
    multiplier: 1,
    jitter: 0.2,
    onRetry: (_e, _a, ms) => void delays.push(ms),
  });
  assert.ok(delays.every((d) => d >= 8 && d <= 12), String(delays));
  assert.ok(new Set(delays).size > 1, "jitter varies the delay");
});

Deno.test("retry: an abort during the wait or before a try throws the signal's reason", async () => {
  const c = new AbortController();
  let calls = 0;
  const p = retry(() => {
    calls++;
    return Promise.reject(new Error("down"));
  }, { maxAttempts: Infinity, minTimeout: 10_000, signal: c.signal });
  setTimeout(() => c.abort(new Error("stopped")), 20);
  await assertRejects(() => p, Error, "stopped");
  assert.deepEqual(calls, 1);
  await assertRejects(
    () => retry(() => Promise.resolve(1), { signal: c.signal }),
    Error,
    "stopped",
  );
});
