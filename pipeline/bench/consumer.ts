/**
 * Stream-consumer benchmark (issues 4 and 17), on the real services, in its
 * own topic / HDFS root / database (createTestEnv), cleaned up afterwards:
 *
 * 1. throughput: 1,000,000 realistic events pre-loaded (preload.ts: event
 *    times in the past, so every one is valid); `deno task consume
 *    --until-caught-up` (metrics on, as in production), measured from spawn
 *    to exit over its whole process tree (ProcessTreeMeter: events/s, CPU
 *    seconds per million events, peak RSS), side by side with Kafka's own
 *    reader `org.apache.kafka.tools.ConsumerPerformance` on the same topic in
 *    the same run (target ≥ 60,000 ev/s and ≥ 20 % of Kafka's; RSS ≤ 256 MB).
 *    The run must write every valid event and no dead letter: a bench that
 *    measured the dead-letter path would say nothing;
 * 2. the Parquet bytes/event;
 * 2b. memory on the poison topic (testing/consumer.ts POISON_TOPIC: 5 % bad
 *    records, 72 of 20,000 records 2 MB): peak RSS of the consumer's process
 *    tree, sampled every 50 ms (the peaks last a fetch), target ≤ 256 MB;
 * 3. latency: a steady 2,000 ev/s for 30 s with event_ts = send time;
 *    latency = the committed file's HDFS modification time − event_ts, p95
 *    over every event (target ≤ 2 s), measured from the files themselves,
 *    independently of the consumer's own metrics.
 */
import { Buffer } from "node:buffer";
import { DuckDBInstance } from "@duckdb/node-api";
import { createTestEnv, runTask, type TestEnv } from "../testing/env.ts";
import { createKafka } from "../clients/kafka.ts";
import { createWebHdfs } from "../clients/webhdfs.ts";
import { kafkaToolCommand } from "../services/kafka.ts";
import { createGenerator, recordBytes } from "../events/generator.ts";
import { preloadTopic } from "./preload.ts";
import { ProcessTreeMeter, type TreeUsage } from "./proc.ts";
import { logger } from "../log.ts";
import { type BenchRow, benchRow } from "./report.ts";
import { POISON_TOPIC, spawnConsumer } from "../testing/consumer.ts";
import { CONSUMER_RUNTIME } from "../runtime.ts";
import { delay } from "../async.ts";

const log = logger("bench.consumer");

export interface BenchConsumerOptions {
  /** Events pre-loaded for the throughput run (default 1,000,000). */
  events?: number;
  /** Steady rate of the latency run (default 2,000 ev/s). */
  latencyRate?: number;
  /** Duration of the latency run in seconds (default 30). */
  latencySeconds?: number;
}

/** Runs Kafka's ConsumerPerformance on the topic; returns messages/s (total and fetch-only). */
async function kafkaConsumerPerf(
  t: TestEnv,
  count: number,
): Promise<{ total: number; fetch: number } | undefined> {
  const cmd = kafkaToolCommand(
    t.config,
    "org.apache.kafka.tools.ConsumerPerformance",
    [
      "--bootstrap-server",
      t.config.kafka.brokers.join(","),
      "--topic",
      t.config.kafka.topic,
      "--messages",
      String(count),
      "--group",
      `perf-${t.id}`,
      "--timeout",
      "120000",
    ],
  );
  const out = await new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  // start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg,
  // nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
  const line = text.trim().split("\n").filter((l) => /^\d{4}-/.test(l)).at(-1);
  if (!out.success || !line) {
    log.warn("ConsumerPerformance failed", {
      stderr: new TextDecoder().decode(out.stderr).slice(-1000),
    });
    return undefined;
  }
  const cols = line.split(",").map((s) => s.trim());
  return { total: Number(cols[5]), fetch: Number(cols[9]) };
}

/** Runs the consumer with --until-caught-up; returns its summary and its process tree's usage. */
async function runConsumer(
  t: TestEnv,
  sampleMs?: number,
): Promise<{ summary: Record<string, number>; usage: TreeUsage }> {
  const child = spawnConsumer(t.env, ["--until-caught-up", "--json"], {
    stdout: "piped",
  });
  const meter = new ProcessTreeMeter(child.pid, sampleMs);
  const out = await child.output();
  const usage = meter.stop();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) throw new Error(`consumer failed (exit ${out.code})`);
  return { summary: JSON.parse(text.trim().split("\n").at(-1)!), usage };
}

/**
 * Latency run: steady load, p95 of (file mtime − event_ts) over every event,
 * with files rotated every second: the HDFS path's own latency (by default
 * files rotate every 5 minutes and the live path is measured by
 * freshness.ts).
 */
async function latencyRun(rate: number, seconds: number): Promise<
  { p50: number; p95: number; p99: number; events: number }
> {
  const t = await createTestEnv("bench_consumer_latency");
  const child = spawnConsumer(t.env, ["--json", "--rotate-interval", "1s"], {
    stdout: "piped",
  });
  const out = child.output();
  try {
    // Let the consumer join and recover before the clock starts.
    await delay(8_000);
    const start = Date.now();
    const gen = createGenerator({
      seed: "bench-latency",
      startTime: start,
      rate,
    })[
      Symbol.iterator
    ]();
    const producer = createKafka(t.config, { quiet: true }).producer({
      idempotent: true,
    });
    await producer.connect();
    let sent = 0;
    let next = gen.next();
    while (Date.now() - start < seconds * 1000) {
      const now = Date.now();
      const messages: { key: string; value: Buffer }[] = [];
      while (!next.done && next.value.ts <= now) {
        const v = recordBytes(next.value);
        messages.push({
          key: next.value.key,
          value: Buffer.from(v.buffer, v.byteOffset, v.byteLength),
        });
        next = gen.next();
      }
      if (messages.length) {
        await producer.send({
          topic: t.config.kafka.topic,
          acks: -1,
          messages,
        });
        sent += messages.length;
      }
      await delay(20);
    }
    await producer.disconnect();
    // Give the last batches time to commit, then stop the consumer cleanly.
    await delay(5_000);
    child.kill("SIGTERM");
    await out;
    // Latency per event from the committed files.
    const hdfs = createWebHdfs(t.config);
    const tmp = await Deno.makeTempDir({ prefix: "logpipe-bench-lat-" });
    const files = await hdfs.walk(t.config.hdfs.rawDir);
    const mtimes: string[] = [];
    let i = 0;
    for (const f of files) {
      const local = `${tmp}/${++i}.parquet`;
      await Deno.writeFile(local, await hdfs.read(f.path));
      mtimes.push(`('${local}', ${f.modificationTime})`);
    }
    const inst = await DuckDBInstance.create(":memory:");
    const con = await inst.connect();
    const res = await con.runAndReadAll(
      `with m(filename, mtime) as (values ${mtimes.join(", ")}),
            e as (select filename, epoch_ms(event_ts) as ts from read_parquet('${tmp}/*.parquet', filename = true))
       select quantile_cont(m.mtime - e.ts, [0.5, 0.95, 0.99]) as q, count(*)::int
         from e join m using (filename)`,
    );
    const [q, n] = res.getRows()[0] as [{ items: number[] } | number[], number];
    const qs = Array.isArray(q) ? q : q.items;
    con.closeSync();
    inst.closeSync();
    await Deno.remove(tmp, { recursive: true });
    log.info("latency run", { sent, committed: n });
    return {
      p50: Number(qs[0]),
      p95: Number(qs[1]),
      p99: Number(qs[2]),
      events: Number(n),
    };
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
    await out.catch(() => {});
    await t.cleanup();
  }
}

/** Peak RSS of the consumer on the poison topic (2b in the module comment). */
async function poisonTopicMemory(): Promise<BenchRow> {
  const t = await createTestEnv("bench_consumer_poison");
  try {
    log.info("producing the poison topic", { args: POISON_TOPIC.produceArgs });
    const p = await runTask(t, "produce.ts", [
      ...POISON_TOPIC.produceArgs,
      "--quiet",
    ]);
    if (p.code !== 0) throw new Error(`produce failed: ${p.stderr}`);
    const { summary: s, usage } = await runConsumer(t, 50);
    const complete = s.recordsIn === POISON_TOPIC.records;
    return benchRow({
      name: `consumer peak RSS, poison topic (${
        POISON_TOPIC.records.toLocaleString("en-US")
      } records, 5 % bad, ${POISON_TOPIC.twoMbRecords} of 2 MB)`,
      ours: usage.peakRssBytes / 1024 / 1024,
      unit: "MB",
      target: "≤ 256 MB",
      pass: complete && usage.peakRssBytes <= 256 * 1024 * 1024,
      note: complete
        ? `${s.eventsOut} events and ${s.deadLetters} dead letters in ${
          (usage.wallMs / 1000).toFixed(1)
        } s`
        : `INCOMPLETE: ${s.recordsIn} of ${POISON_TOPIC.records} records read`,
    });
  } finally {
    await t.cleanup();
  }
}

/** Runs the consumer benchmark; see the module comment. */
export async function benchConsumer(
  opts: BenchConsumerOptions = {},
): Promise<BenchRow[]> {
  const count = opts.events ?? 1_000_000;
  const rows: BenchRow[] = [];
  const t = await createTestEnv("bench_consumer");
  try {
    log.info("pre-loading events", { count });
    const loaded = await preloadTopic(t.config, {
      count,
      seed: "bench-consumer",
    });
    log.info("running the consumer", {
      ...loaded,
      runtime: CONSUMER_RUNTIME,
    });
    const { summary: s, usage } = await runConsumer(t);
    // Every valid event out, nothing dead-lettered: otherwise the figure
    // would measure another path than the one it names.
    const complete = s.eventsOut === loaded.valid &&
      s.deadLetters === loaded.records - loaded.valid;
    const ours = s.recordsIn / (usage.wallMs / 1000);
    log.info("running Kafka ConsumerPerformance");
    const kafka = await kafkaConsumerPerf(t, loaded.records);
    const ratio = kafka ? ours / kafka.total : undefined;
    const events = loaded.records.toLocaleString("en-US");
    rows.push(benchRow({
      name:
        `consumer Kafka → Parquet on HDFS (${events} events, --until-caught-up, spawn to exit)`,
      ours,
      unit: "ev/s",
      reference: kafka?.total,
      referenceName: "kafka ConsumerPerformance",
      target: "≥ 60,000 ev/s and ≥ 20% of Kafka's",
      pass: complete && ours >= 60_000 && (ratio ?? 0) >= 0.2,
      note: [
        complete
          ? `all ${s.eventsOut.toLocaleString("en-US")} events written`
          : `INCOMPLETE: ${s.eventsOut} events and ${s.deadLetters} dead letters for ${loaded.valid} valid of ${loaded.records}`,
        kafka
          ? `Kafka fetch-only ${
            Math.round(kafka.fetch).toLocaleString("en-US")
          }/s`
          : "ConsumerPerformance did not run",
        `${s.filesWritten} files`,
        `the consumer's own clock: ${
          Math.round(s.recordsIn / (s.elapsedMs / 1000)).toLocaleString(
            "en-US",
          )
        } ev/s`,
      ].join("; "),
    }));
    rows.push(benchRow({
      name: "consumer CPU seconds per million events (whole process tree)",
      ours: usage.cpuSeconds / (s.recordsIn / 1e6),
      unit: "s",
      target: "reported",
      pass: true,
      note: `${usage.cpuSeconds.toFixed(1)} s over ${
        (usage.wallMs / 1000).toFixed(1)
      } s of wall time`,
    }));
    rows.push(benchRow({
      name: "consumer peak RSS (whole process tree, same run)",
      ours: usage.peakRssBytes / 1024 / 1024,
      unit: "MB",
      target: "≤ 256 MB",
      pass: usage.peakRssBytes <= 256 * 1024 * 1024,
      note: `the process's own high-water mark: ${
        Math.round(s.peakRssBytes / 1024 / 1024)
      } MB`,
    }));
    const hdfs = createWebHdfs(t.config);
    const files = await hdfs.walk(t.config.hdfs.rawDir);
    const bytes = files.reduce((a, f) => a + f.length, 0);
    rows.push(benchRow({
      name: "Parquet bytes per event (zstd)",
      ours: bytes / Math.max(1, s.eventsOut),
      unit: "B/event",
      target: "reported",
      pass: true,
      note: `${files.length} files, ${(bytes / 1e6).toFixed(1)} MB`,
    }));
  } finally {
    await t.cleanup();
  }
  rows.push(await poisonTopicMemory());
  const rate = opts.latencyRate ?? 2_000;
  const lat = await latencyRun(rate, opts.latencySeconds ?? 30);
  rows.push(benchRow({
    name:
      `processing latency p95 (event_ts → committed, --rotate-interval 1s) at ${
        rate.toLocaleString("en-US")
      } ev/s`,
    ours: lat.p95 / 1000,
    unit: "s",
    target: "≤ 2 s",
    pass: lat.p95 <= 2_000,
    note: `p50 ${(lat.p50 / 1000).toFixed(2)} s, p99 ${
      (lat.p99 / 1000).toFixed(2)
    } s over ${lat.events} events`,
  }));
  return rows;
}

if (import.meta.main) {
  const { formatBenchTable } = await import("./report.ts");
  const events = Number(Deno.args[0] ?? 1_000_000);
  console.log(formatBenchTable(await benchConsumer({ events })));
}
