import assert from "node:assert/strict";
import { logger } from "../log.ts";
import { NonRetryableError, type RetryPolicy } from "./retry.ts";
import {
  type RunObserver,
  runTasks,
  type TaskDef,
  type TryRecord,
} from "./runner.ts";

const policy = (retries: number, timeoutMs = 1000): RetryPolicy => ({
  retries,
  retryDelayMs: 100,
  backoffFactor: 2,
  maxRetryDelayMs: 250,
  timeoutMs,
});

function recorder() {
  const ended: TryRecord[] = [];
  const started: TryRecord[] = [];
  const observer: RunObserver = {
    tryStarted: (r) => {
      started.push(r);
      return Promise.resolve();
    },
    tryEnded: (r) => {
      ended.push(r);
      return Promise.resolve();
    },
  };
  return { observer, ended, started };
}

const log = logger("runner-test");

Deno.test("a task that fails twice then succeeds is retried with capped backoff", async () => {
  const sleeps: number[] = [];
  let calls = 0;
  const flaky: TaskDef = {
    group: "g",
    id: "flaky",
    policy: policy(3),
    run: () => {
      calls++;
      if (calls < 3) return Promise.reject(new Error(`fail ${calls}`));
      return Promise.resolve({ rows: 7 });
    },
  };
  const { observer, ended, started } = recorder();
  const [out] = await runTasks([flaky], "r1", observer, {
    log,
    sleep: (ms) => {
      sleeps.push(ms);
      return Promise.resolve();
    },
  });
  assert.equal(out.state, "success");
  assert.equal(out.tries, 3);
  assert.equal(out.rows, 7);
  assert.deepEqual(sleeps, [100, 200]);
  assert.equal(started.length, 3);
  assert.deepEqual(ended.map((e) => e.state), [
    "up_for_retry",
    "up_for_retry",
    "success",
  ]);
  assert.equal(ended[0].error, "fail 1");
  assert.equal(ended[1].retryInMs, 200);
});

Deno.test("retries run out: the task fails and later tasks are skipped", async () => {
  let downstreamRan = false;
  const tasks: TaskDef[] = [
    {
      group: "a",
      id: "always_fails",
      policy: policy(2),
      run: () => Promise.reject(new Error("down")),
    },
    {
      group: "b",
      id: "downstream",
      policy: policy(2),
      run: () => {
        downstreamRan = true;
        return Promise.resolve();
      },
    },
  ];
  const { observer, ended } = recorder();
  const out = await runTasks(tasks, "r2", observer, {
    log,
    sleep: () => Promise.resolve(),
  });
  assert.equal(out[0].state, "failed");
  assert.equal(out[0].tries, 3);
  assert.equal(out[1].state, "skipped");
  assert.equal(downstreamRan, false);
  assert.deepEqual(ended.map((e) => `${e.taskId}:${e.state}`), [
    "always_fails:up_for_retry",
    "always_fails:up_for_retry",
    "always_fails:failed",
    "downstream:skipped",
  ]);
});

Deno.test("a NonRetryableError fails the task without retries", async () => {
  let calls = 0;
  const t: TaskDef = {
    group: "dbt",
    id: "dbt_test",
    policy: policy(2),
    run: () => {
      calls++;
      return Promise.reject(new NonRetryableError("2 failing tests"));
    },
  };
  const { observer } = recorder();
  const [out] = await runTasks([t], "r3", observer, {
    log,
    sleep: () => Promise.resolve(),
  });
  assert.equal(calls, 1);
  assert.equal(out.state, "failed");
  assert.equal(out.detail.non_retryable, true);
});

Deno.test("a try past its timeout is aborted and retried", async () => {
  let calls = 0;
  const t: TaskDef = {
    group: "g",
    id: "slow_once",
    policy: policy(1, 50),
    run: ({ signal }) => {
      calls++;
      if (calls === 1) {
        return new Promise((_, reject) =>
          signal.addEventListener("abort", () => reject(signal.reason))
        );
      }
      return Promise.resolve({ rows: 1 });
    },
  };
  const { observer, ended } = recorder();
  const [out] = await runTasks([t], "r4", observer, {
    log,
    sleep: () => Promise.resolve(),
  });
  assert.equal(out.state, "success");
  assert.equal(ended[0].detail.timeout, true);
  assert.match(ended[0].error ?? "", /timed out/);
});

Deno.test("an observer that throws never fails the run", async () => {
  const t: TaskDef = {
    group: "g",
    id: "ok",
    policy: policy(0),
    run: () => Promise.resolve({ rows: 1 }),
  };
  const bad: RunObserver = {
    tryStarted: () => Promise.reject(new Error("db down")),
    tryEnded: () => Promise.reject(new Error("db down")),
  };
  const [out] = await runTasks([t], "r5", bad, { log });
  assert.equal(out.state, "success");
});

Deno.test("beforeTry failing counts as a failed try", async () => {
  let lockOk = false;
  const t: TaskDef = {
    group: "g",
    id: "needs_lock",
    policy: policy(1),
    run: () => Promise.resolve(),
  };
  const { observer, ended } = recorder();
  const [out] = await runTasks([t], "r6", observer, {
    log,
    sleep: () => Promise.resolve(),
    beforeTry: () => {
      if (!lockOk) {
        lockOk = true;
        return Promise.reject(new Error("connection refused"));
      }
      return Promise.resolve();
    },
  });
  assert.equal(out.state, "success");
  assert.equal(out.tries, 2);
  assert.equal(ended[0].error, "connection refused");
});
