// The local cluster under faults (opt-in: LOGPIPE_FAULTS=cluster).
//
// On a cluster instance of its own (3 Kafka brokers with RF 3 / min ISR 2,
// a NameNode and 2 DataNodes with replication 2, its own Postgres; its own
// LOGPIPE_HOME and LOGPIPE_PORT_OFFSET, so the shared services are never
// touched), with the producer and the consumer running under load and a
// batch run (its Kafka and HDFS tasks) during each fault, one broker is
// killed with SIGKILL and restarted, then one DataNode; a last, whole
// batch run (dbt and export too) follows. The consumer rotates its files every 5 s
// (instead of 5 minutes) so that HDFS writes go on through the DataNode's
// death. Meanwhile the test samples, every 500 ms, what the brokers
// acknowledged (the topic's end offsets), what the consumer consumed and
// counted (monitoring.consumer_counted) and what it made durable in HDFS
// (its positions in monitoring.components), and prints the longest stall of
// each; the run fails when a stall exceeds its bound, when a batch run
// fails, or when `deno task audit` finds anything lost, duplicated or
// unexplained.
//
//   LOGPIPE_FAULTS=cluster deno test -A --no-check=remote pipeline/faults/cluster_faults_test.ts
//
// About 6-8 minutes on the project's 2-core machine (half of it starting
// the cluster); the figures of the last run are in the README.
import assert from "node:assert/strict";
import {
  type Config,
  DEFAULT_PORTS,
  loadConfig,
  type Ports,
  setting,
} from "../config.ts";
import { createKafka, describeTopicReplication } from "../clients/kafka.ts";
import { createPool } from "../clients/postgres.ts";
import { createWebHdfs } from "../clients/webhdfs.ts";
import { Supervisor } from "../supervisor.ts";
import {
  type ServiceName,
  servicesDown,
  startService,
  stopService,
  waitHealthy,
} from "../services/manager.ts";
import { privateInstance } from "../testing/instance.ts";
import { liveDataNodeAddresses } from "../probes/probes.ts";
import { delay as sleep } from "../async.ts";

const ENABLED = (setting("LOGPIPE_FAULTS") ?? "").split(",").map((s) =>
  s.trim()
).includes("cluster");

/**
 * The stated bounds. Producer: kafkajs retries a produce for ~10 s and the
 * controller fences a dead broker after 6 s (broker.session.timeout.ms),
 * then elects new leaders from the ISR. Consumer: on top of that, a group
 * coordinator on the dead broker moves (a rebalance). Durable in HDFS: a
 * file is committed every 5 s, and a DataNode that died is avoided once
 * stale (9 s) while the writes sent to it are retried.
 */
const PRODUCER_STALL_BOUND_S = 30;
const CONSUMER_STALL_BOUND_S = 60;
const DURABLE_STALL_BOUND_S = 90;
/** The consumer's rotate interval in this test (see above). */
const ROTATE = "5s";

const RATE = 400;

/** Every port of an instance but the site preview's. */
const INSTANCE_PORTS = (Object.keys(DEFAULT_PORTS) as (keyof Ports)[]).filter(
  (k) => k !== "sitePreview",
);

/** `p`, or undefined after `ms`. */
async function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<undefined>((
        r,
      ) => (timer = setTimeout(() => r(undefined), ms))),
    ]);
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

interface Sample {
  t: number;
  value: number | undefined;
}

/**
 * Longest time without progress in [from, to]: between two samples where
 * the value grew (a sample that could not be taken counts as no progress).
 */
export function longestStall(
  samples: Sample[],
  from: number,
  to: number,
): { seconds: number; at: number } {
  let best = 0;
  let at = from;
  let lastProgress = from;
  let max = -Infinity;
  for (const s of samples) {
    if (s.value === undefined) continue;
    if (s.t < from) {
      max = Math.max(max, s.value);
      continue;
    }
    if (s.t > to) break;
    if (s.value > max) {
      if (max !== -Infinity && s.t - lastProgress > best) {
        best = s.t - lastProgress;
        at = lastProgress;
      }
      lastProgress = s.t;
      max = s.value;
    }
  }
  if (to - lastProgress > best) {
    best = to - lastProgress;
    at = lastProgress;
  }
  return { seconds: best / 1000, at };
}

/** Runs a tasks/ entry point with `env`; code and output. */
async function task(
  config: Config,
  env: Record<string, string>,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `${config.projectRoot}/tasks/${args[0]}`,
      ...args.slice(1),
    ],
    cwd: config.projectRoot,
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

Deno.test({
  name:
    "local cluster under faults: kill -9 a broker, then a DataNode, under load; bounded stalls, batch runs, audit clean",
  ignore: !ENABLED,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const shared = loadConfig();
    // The pinned jars and the dbt venv are the shared state folder's.
    const instance = await privateInstance(shared, {
      prefix: "logpipe-cluster-faults-",
      link: ["jars", "venv"],
      ports: INSTANCE_PORTS,
      offsets: { from: 7100, to: 9900, step: 200 },
      env: {
        LOGPIPE_CLUSTER: "1",
        LOGPIPE_SITE_PUBLISH: "false",
        LOGPIPE_LOG_LEVEL: "warn",
      },
    });
    const { home, offset, env } = instance;
    const t0 = Date.now();
    const log: string[] = [];
    const note = (m: string) => {
      const line = `${
        ((Date.now() - t0) / 1000).toFixed(1).padStart(6)
      } s  ${m}`;
      log.push(line);
      console.log(`  [cluster] ${line}`);
    };
    note(`instance: LOGPIPE_HOME=${home} LOGPIPE_PORT_OFFSET=${offset}`);
    let config: Config | undefined;
    const sup = new Supervisor({
      projectRoot: shared.projectRoot,
      localDir: home,
    });
    let sampling = true;
    let ok = false;
    const samplers: Promise<void>[] = [];
    try {
      const up = await task(shared, env, ["services.ts", "up", "--cluster"]);
      assert.equal(
        up.code,
        0,
        `services up --cluster failed:\n${up.stdout}\n${up.stderr}`,
      );
      config = loadConfig(env);
      note(`cluster up: ${up.stdout.trim().split("\n").at(-1)}`);
      const replication = await describeTopicReplication(config);
      assert.equal(replication.minInsyncReplicas, 2);
      assert.ok(replication.partitions.every((p) => p.replicas.length === 3));
      assert.equal((await liveDataNodeAddresses(config)).size, 2);

      // The sampled progress of the producer (acknowledged by the brokers)
      // and of the consumer (durable in HDFS).
      const produced: Sample[] = [];
      const consumed: Sample[] = [];
      const durable: Sample[] = [];
      const cfg = config;
      samplers.push((async () => {
        let admin = createKafka(cfg, { quiet: true, retries: 0 }).admin();
        await admin.connect().catch(() => {});
        let failures = 0;
        while (sampling) {
          const t = Date.now();
          const offsets = await within(
            admin.fetchTopicOffsets(cfg.kafka.topic),
            2_000,
          );
          produced.push({
            t,
            value: offsets?.reduce((n, o) => n + Number(o.high), 0),
          });
          if (!offsets && ++failures >= 3) {
            // A client stuck on a dead broker: start afresh.
            await admin.disconnect().catch(() => {});
            admin = createKafka(cfg, { quiet: true, retries: 0 }).admin();
            await admin.connect().catch(() => {});
            failures = 0;
          } else if (offsets) failures = 0;
          await sleep(Math.max(0, 500 - (Date.now() - t)));
        }
        await admin.disconnect().catch(() => {});
      })());
      const pool = createPool(cfg, {
        max: 1,
        applicationName: "cluster-faults",
      });
      samplers.push((async () => {
        while (sampling) {
          const t = Date.now();
          const r = await within(
            pool.query(
              `select (select sum(p.value::bigint)
                         from monitoring.components c, jsonb_each_text(c.detail->'positions') p
                        where c.component = 'consumer'
                          and c.updated_at > now() - interval '20 seconds') as durable,
                      (select sum(last_counted_offset)
                         from monitoring.consumer_counted) as counted`,
            ),
            2_000,
          );
          const value = (v: unknown) =>
            v === null || v === undefined ? undefined : Number(v);
          durable.push({ t, value: value(r?.rows[0]?.durable) });
          consumed.push({ t, value: value(r?.rows[0]?.counted) });
          await sleep(Math.max(0, 500 - (Date.now() - t)));
        }
        await pool.end();
      })());

      sup.start({
        name: "producer",
        args: [
          "tasks/produce.ts",
          "--rate",
          String(RATE),
          "--bad-rate",
          "0.01",
          "--seed",
          "cluster-faults",
          "--quiet",
        ],
        env,
      });
      sup.start({
        name: "consumer",
        args: [
          "tasks/consume.ts",
          "--rotate-interval",
          ROTATE,
          "--metrics-interval-ms",
          "500",
        ],
        env,
      });
      const batches: Promise<
        { code: number; stdout: string; stderr: string }
      >[] = [];
      const batchDuring = (what: string) => {
        note(`batch run started (during the ${what} outage)`);
        // Its HDFS and Kafka half (check_services, the load from the raw
        // zone, compaction): dbt and the export touch only Postgres and
        // take minutes on 2 busy cores; the last run below does them.
        const run = task(shared, env, [
          "batch.ts",
          "--skip",
          "dbt,export",
        ]).then((r) => {
          note(`batch run (${what}) exited ${r.code}`);
          return r;
        });
        batches.push(run);
      };
      await sleep(25_000);
      const loadStart = Date.now();
      note("load running; faults begin");

      const windows: { what: string; from: number; to: number }[] = [];
      const fault = async (service: ServiceName, what: string) => {
        const from = Date.now();
        note(`kill -9 ${service}`);
        await stopService(service, cfg, { hard: true });
        await sleep(5_000);
        batchDuring(what);
        await sleep(20_000);
        note(`restart ${service}`);
        await startService(service, cfg);
        await waitHealthy(service, cfg, 240_000);
        note(`${service} healthy again`);
        return from;
      };

      // 1. A broker (it leads a third of the partitions and holds a
      //    replica of every one).
      let from = await fault("kafka-2", "broker");
      const inSync = Date.now();
      for (;;) {
        const r = await within(describeTopicReplication(cfg), 5_000);
        if (r?.partitions.every((p) => p.isr.length === 3)) break;
        if (Date.now() - inSync > 180_000) {
          throw new Error("kafka-2 did not rejoin every ISR within 180 s");
        }
        await sleep(1_000);
      }
      note(
        `every partition has 3 in-sync replicas again (${
          ((Date.now() - inSync) / 1000).toFixed(1)
        } s after healthy)`,
      );
      await sleep(20_000);
      windows.push({ what: "broker kafka-2", from, to: Date.now() });
      // Runs never overlap (a second one exits 75): the next fault's run
      // waits for this one.
      if (batches.length) await batches[0];

      // 2. A DataNode (the first: the NameNode sends WebHDFS writes from
      //    127.0.0.1 to it first).
      from = await fault("datanode", "DataNode");
      await sleep(20_000);
      windows.push({ what: "DataNode datanode", from, to: Date.now() });

      // 3. Drain: stop the producer (it flushes), let the consumer commit
      //    everything, then one more batch and the audit.
      const end = Date.now();
      note("stopping the producer");
      await sup.stopInOrder(["producer"]);
      const results = await Promise.all(batches);
      sampling = false;
      await Promise.all(samplers);
      note("stopping the consumer; consume --until-caught-up");
      await sup.stopInOrder(["consumer"]);
      const caught = await task(shared, env, [
        "consume.ts",
        "--until-caught-up",
      ]);
      assert.equal(caught.code, 0, caught.stderr.slice(-2000));
      const last = await task(shared, env, ["batch.ts"]);
      note(`final batch run exited ${last.code}`);
      const audit = await task(shared, env, ["audit.ts", "--json"]);
      note(`audit exited ${audit.code}`);

      // The figures.
      const lines: string[] = [];
      const whole = { what: "whole run", from: loadStart, to: end };
      const stalls = [...windows, whole].map((w) => {
        const p = longestStall(produced, w.from, w.to);
        const c = longestStall(consumed, w.from, w.to);
        const d = longestStall(durable, w.from, w.to);
        const show = (x: { seconds: number; at: number }) =>
          `${x.seconds.toFixed(1).padStart(5)} s (from ${
            ((x.at - t0) / 1000).toFixed(0)
          } s)`;
        lines.push(
          `${w.what.padEnd(18)} producer ${show(p)}, consumer ${
            show(c)
          }, durable in HDFS ${show(d)}`,
        );
        return { p, c, d };
      });
      Deno.writeTextFileSync(
        `${home}/stall-samples.json`,
        JSON.stringify({ t0, windows, produced, consumed, durable }),
      );
      const report = JSON.parse(audit.stdout);
      const kafkaCount = report.layers.find((l: { layer: string }) =>
        l.layer === "kafka"
      )?.count;
      console.log(
        `  [cluster] longest stalls (bounds: producer ${PRODUCER_STALL_BOUND_S} s, consumer ${CONSUMER_STALL_BOUND_S} s, durable ${DURABLE_STALL_BOUND_S} s):\n    ${
          lines.join("\n    ")
        }\n  [cluster] ${kafkaCount} records; audit ${
          report.ok ? "clean" : "NOT clean"
        }:\n    ${
          report.layers.map((l: Record<string, unknown>) =>
            `${l.layer}: ${l.count} (missing ${l.missing}, dup ${l.duplicated}, unexplained ${l.unexplained}) ${
              l.note ?? ""
            }`
          ).join("\n    ")
        }`,
      );

      for (const [i, r] of results.entries()) {
        assert.equal(
          r.code,
          0,
          `batch run ${i + 1} during a fault failed:\n${
            r.stdout.slice(-2000)
          }\n${r.stderr.slice(-2000)}`,
        );
      }
      assert.equal(
        last.code,
        0,
        `final batch failed:\n${last.stderr.slice(-2000)}`,
      );
      assert.equal(audit.code, 0, `audit:\n${report.problems?.join("\n")}`);
      assert.ok(report.ok);
      const hdfsLayer = report.layers.find((l: { layer: string }) =>
        l.layer.startsWith("hdfs")
      );
      assert.equal(
        hdfsLayer.count,
        kafkaCount,
        "every Kafka record is in HDFS once",
      );
      assert.ok(
        kafkaCount > RATE * 60,
        `the load went through (${kafkaCount})`,
      );
      for (const { p, c, d } of stalls) {
        assert.ok(
          p.seconds <= PRODUCER_STALL_BOUND_S,
          `producer stalled ${p.seconds} s`,
        );
        assert.ok(
          c.seconds <= CONSUMER_STALL_BOUND_S,
          `consumer stalled ${c.seconds} s`,
        );
        assert.ok(
          d.seconds <= DURABLE_STALL_BOUND_S,
          `HDFS commits stalled ${d.seconds} s`,
        );
      }
      // Blocks written while a DataNode was down get their second replica.
      const hdfs = createWebHdfs(cfg);
      const files = await hdfs.walk(cfg.hdfs.rawDir, { skipHidden: true });
      note(
        `${files.length} raw files, replication ${
          [...new Set(files.map((f) => f.replication))].join("/")
        }`,
      );
      ok = true;
    } finally {
      sampling = false;
      await sup.stopInOrder(["producer", "consumer"]).catch(() => {});
      await Promise.all(samplers).catch(() => {});
      await servicesDown({ config: config ?? loadConfig(env) }).catch((e) =>
        console.error(`  [cluster] services down: ${e}`)
      );
      console.log(`  [cluster] timeline:\n    ${log.join("\n    ")}`);
      if (ok && setting("LOGPIPE_KEEP_TEST_DATA") !== "1") {
        await instance.remove();
      } else console.log(`  [cluster] kept ${home} (logs in ${home}/logs)`);
    }
  },
});
