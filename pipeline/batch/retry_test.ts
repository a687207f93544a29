import assert from "node:assert/strict";
import {
  backoffDelay,
  backoffSchedule,
  type RetryPolicy,
  TaskTimeoutError,
  withTimeout,
} from "./retry.ts";

const policy: RetryPolicy = {
  retries: 5,
  retryDelayMs: 1000,
  backoffFactor: 2,
  maxRetryDelayMs: 5000,
  timeoutMs: 100,
};

Deno.test("backoff doubles per retry and is capped", () => {
  assert.deepEqual(backoffSchedule(policy), [1000, 2000, 4000, 5000, 5000]);
  assert.equal(backoffDelay({ ...policy, backoffFactor: 3 }, 2), 3000);
  assert.throws(() => backoffDelay(policy, 0), RangeError);
});

Deno.test("withTimeout aborts a try that runs too long and waits for it to stop", async () => {
  let sawAbort = false;
  let settled = false;
  await assert.rejects(
    () =>
      withTimeout((signal) =>
        new Promise<void>((resolve) => {
          signal.addEventListener("abort", () => {
            sawAbort = true;
            setTimeout(() => {
              settled = true;
              resolve();
            }, 20);
          });
        }), 30),
    TaskTimeoutError,
  );
  assert.ok(sawAbort, "the try's signal was aborted");
  assert.ok(settled, "withTimeout returned only after the try settled");
});

Deno.test("withTimeout passes results and errors through", async () => {
  assert.equal(await withTimeout(() => Promise.resolve(42), 1000), 42);
  await assert.rejects(
    () => withTimeout(() => Promise.reject(new Error("boom")), 1000),
    /boom/,
  );
});
