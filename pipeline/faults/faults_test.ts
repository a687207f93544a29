// The whole pipeline under faults: with producer, consumer and API running
// under load (supervised and restarted exactly as `deno task up` does), each
// component and each service is killed with SIGKILL in turn and restarted, a
// hostile corpus is fed, and then `deno task audit` must find nothing lost,
// nothing duplicated and nothing unexplained.
//
// `deno task test` runs the short version. `deno task test:faults` sets
// LOGPIPE_FAULTS=long: a higher rate and, after the faults, a 30-minute soak
// at 2,000 events/s with memory and lag sampled every minute (printed).
//
// It stops and restarts the shared Kafka, HDFS and Postgres, so it must not
// run beside other tests (deno test runs files one after the other).
import assert from "node:assert/strict";
import { loadConfig } from "../config.ts";
import { createTestEnv, runTask } from "../testing/env.ts";
import { Supervisor } from "../supervisor.ts";
import {
  type ServiceName,
  startService,
  stopService,
  waitHealthy,
} from "../services/manager.ts";
import { killHard, portIsFree } from "../services/process.ts";
import { rssBytes } from "../bench/proc.ts";
import { createPool } from "../clients/postgres.ts";
import { delay as sleep } from "../async.ts";

const LONG = Deno.env.get("LOGPIPE_FAULTS") === "long";

function freePort(): number {
  for (let p = 18_800 + Math.floor(Math.random() * 1000); p < 20_000; p++) {
    if (portIsFree(p)) return p;
  }
  throw new Error("no free port");
}

async function waitUntil(
  what: string,
  check: () => Promise<boolean> | boolean,
  ms: number,
) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await Promise.resolve(check()).catch(() => false)) return;
    await sleep(250);
  }
  throw new Error(`timed out after ${ms / 1000} s waiting for: ${what}`);
}

Deno.test({
  name: `pipeline under faults${
    LONG ? " (long)" : ""
  }: kill -9 every component and service, hostile input, audit clean`,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const t = await createTestEnv("faults", { partitions: 3 });
    const apiPort = freePort();
    const env = {
      ...t.env,
      LOGPIPE_API_PORT: String(apiPort),
      LOGPIPE_LOG_LEVEL: "warn",
    };
    const log: string[] = [];
    const note = (m: string) => {
      log.push(`${new Date().toISOString().slice(11, 19)} ${m}`);
      console.log(`  [faults] ${m}`);
    };
    const sup = new Supervisor(
      {
        projectRoot: t.config.projectRoot,
        localDir: `${t.config.localDir}/faults-${t.id}`,
      },
      (e) => {
        if (e.kind === "exited") {
          note(
            `${e.name} exited (${e.signal ?? e.code}); supervisor restarts it`,
          );
        }
      },
    );
    const rate = LONG ? 2_000 : 300;
    try {
      sup.start({
        name: "producer",
        args: [
          "tasks/produce.ts",
          "--rate",
          String(rate),
          "--bad-rate",
          "0.02",
          "--seed",
          "faults",
          "--quiet",
        ],
        env,
      });
      sup.start({ name: "consumer", args: ["tasks/consume.ts"], env });
      sup.start({ name: "api", args: ["tasks/api.ts", "--no-site"], env });
      const pidOf = (name: string) =>
        sup.status().find((c) => c.name === name)?.pid;
      const waitRestarted = (name: string, old: number) =>
        waitUntil(`${name} restarted`, () => {
          const p = pidOf(name);
          return p !== undefined && p !== old;
        }, 30_000);
      await sleep(8_000);

      // 1. The pipeline's own processes.
      for (const name of ["producer", "consumer", "api"]) {
        const pid = pidOf(name)!;
        note(`kill -9 ${name} (pid ${pid})`);
        await killHard(pid);
        await waitRestarted(name, pid);
        await sleep(4_000);
      }
      await waitUntil("API answers after its restart", async () => {
        const r = await fetch(`http://127.0.0.1:${apiPort}/healthz`);
        await r.body?.cancel();
        return r.ok;
      }, 30_000);

      // 2. The batch, in the middle of a run (after the load started).
      const root = t.config.projectRoot;
      const batch = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", `${root}/tasks/batch.ts`],
        cwd: root,
        env,
        stdout: "null",
        stderr: "null",
      }).spawn();
      await sleep(3_000);
      note(`kill -9 batch mid-run (pid ${batch.pid})`);
      await killHard(batch.pid);
      await batch.status;

      // 3. The services, one after the other, while everything keeps running.
      const config = loadConfig();
      for (
        const service of [
          "kafka",
          "namenode",
          "datanode",
          "postgres",
        ] as ServiceName[]
      ) {
        note(`kill -9 ${service}`);
        await stopService(service, config, { hard: true });
        await sleep(LONG ? 20_000 : 8_000);
        await startService(service, config);
        await waitHealthy(service, config, 180_000);
        note(`${service} back`);
        await sleep(5_000);
      }

      // 4. The hostile corpus: every bad kind (invalid UTF-8, invalid JSON, 2 MB
      //    payloads, year-3000 timestamps, HTML and SQL in strings, ...).
      note("feeding the hostile corpus");
      const hostile = await runTask(t, "produce.ts", [
        "--count",
        "3000",
        "--bad-rate",
        "1",
        "--seed",
        "hostile",
        "--quiet",
      ]);
      assert.equal(hostile.code, 0, hostile.stderr);

      if (LONG) await soak(t.config, sup, note);

      // 5. Drain: stop the producer (it flushes), let the consumer catch up.
      note("stopping producer and consumer (they flush and commit)");
      await sup.stopInOrder(["producer", "consumer", "api"]);
      const caught = await runTask(t, "consume.ts", ["--until-caught-up"]);
      assert.equal(caught.code, 0, caught.stderr.slice(-2000));
      const run = await runTask(t, "batch.ts", []);
      assert.equal(
        run.code,
        0,
        `batch after the faults failed:\n${run.stdout}\n${
          run.stderr.slice(-2000)
        }`,
      );

      // 6. The audit: every Kafka record exactly once in HDFS (raw or dead
      //    letters), every raw event once in Postgres and in the facts.
      const audit = await runTask(t, "audit.ts", ["--json"]);
      const report = JSON.parse(audit.stdout);
      const table = report.layers.map((l: Record<string, unknown>) =>
        `${l.layer}: ${l.count} (missing ${l.missing}, dup ${l.duplicated}, unexplained ${l.unexplained}) ${l.note}`
      ).join("\n  ");
      console.log(`  [faults] audit:\n  ${table}`);
      assert.equal(
        audit.code,
        0,
        `audit found unexplained differences:\n${report.problems.join("\n")}`,
      );
      assert.ok(report.ok);
      const hdfsLayer = report.layers.find((l: { layer: string }) =>
        l.layer.startsWith("hdfs")
      );
      const kafkaLayer = report.layers.find((l: { layer: string }) =>
        l.layer === "kafka"
      );
      assert.equal(
        hdfsLayer.count,
        kafkaLayer.count,
        "every Kafka record is in HDFS once",
      );
      assert.ok(
        kafkaLayer.count > 3000,
        `some load went through (${kafkaLayer.count})`,
      );
      assert.match(
        hdfsLayer.note,
        /too_large/,
        "the 2 MB payloads are dead letters",
      );
    } finally {
      await sup.stopInOrder(["producer", "consumer", "api"]).catch(() => {});
      // Whatever happened, leave the shared services running for what follows.
      const config = loadConfig();
      for (
        const s of [
          "postgres",
          "namenode",
          "datanode",
          "kafka",
        ] as ServiceName[]
      ) {
        await startService(s, config).catch(() => {});
        await waitHealthy(s, config, 180_000).catch(() => {});
      }
      console.log(`  [faults] timeline:\n    ${log.join("\n    ")}`);
      await t.cleanup();
    }
  },
});

/** 30 minutes at 2,000 events/s: RSS of producer and consumer and the lag, every minute. */
async function soak(
  config: ReturnType<typeof loadConfig>,
  sup: Supervisor,
  note: (m: string) => void,
): Promise<void> {
  const pool = createPool(config, { max: 1 });
  const samples: string[] = [];
  try {
    for (let minute = 1; minute <= 30; minute++) {
      await sleep(60_000);
      const pid = (n: string) => sup.status().find((c) => c.name === n)?.pid;
      const mb = (p?: number) =>
        p ? ((rssBytes(p) ?? 0) / 1024 / 1024).toFixed(0) : "?";
      const lag = await pool.query(
        "select coalesce(sum(lag_offsets), 0) as o, coalesce(max(lag_seconds), 0) as s from monitoring.consumer_lag",
      );
      const line = `minute ${String(minute).padStart(2)}: producer ${
        mb(pid("producer"))
      } MB, consumer ${mb(pid("consumer"))} MB, lag ${
        lag.rows[0].o
      } offsets / ${Number(lag.rows[0].s).toFixed(1)} s`;
      samples.push(line);
      note(line);
    }
  } finally {
    await pool.end();
  }
  console.log(`  [faults] soak samples:\n    ${samples.join("\n    ")}`);
}
