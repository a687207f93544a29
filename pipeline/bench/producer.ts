/**
 * Producer benchmark (issue 3), on the real local Kafka, in its own topic
 * (createTestEnv), cleaned up afterwards:
 *
 * 1. throughput: `tasks/produce.ts --count N` exactly as `deno task produce`
 *    runs it (acks=all, idempotent, gzip level 1, batched; generation
 *    included), events/s over the producing time; side by side, in the same
 *    run, Kafka's own `org.apache.kafka.tools.ProducerPerformance` with the
 *    same settings (acks=all, idempotence, gzip level 1) sending the SAME
 *    realistic events (a payload file of generated events, so record size
 *    and compressibility match). Target ≥ 50,000 ev/s and ≥ 40 % of Kafka's.
 * 2. the producer process's peak RSS (VmHWM). Target ≤ 200 MB.
 * Optionally (`parallel`) the same run with `--parallel` (worker threads).
 */
import { createTestEnv, type TestEnv } from "../testing/env.ts";
import { kafkaToolCommand } from "../services/kafka.ts";
import { createGenerator } from "../events/generator.ts";
import { GZIP_LEVEL } from "../producer/sinks.ts";
import { type ProduceSummary } from "../producer/producer.ts";
import { type BenchRow, benchRow } from "./report.ts";
import { PRODUCER_RUNTIME } from "../runtime.ts";

export interface BenchProducerOptions {
  /** Events per run (default 300,000; 100,000 with quick). */
  events?: number;
  quick?: boolean;
  /** Also measure `--parallel` (default true). */
  parallel?: boolean;
  onProgress?: (m: string) => void;
}

const ROOT = new URL("../..", import.meta.url).pathname;

/** Runs the produce CLI in a subprocess; returns its summary. */
async function runProducer(
  t: TestEnv,
  count: number,
  extra: string[] = [],
): Promise<ProduceSummary> {
  const summaryFile = await Deno.makeTempFile({ suffix: ".json" });
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        ...PRODUCER_RUNTIME.denoArgs,
        `${ROOT}tasks/produce.ts`,
        "--count",
        String(count),
        "--seed",
        "bench-producer",
        "--quiet",
        "--summary-json",
        summaryFile,
        ...extra,
      ],
      cwd: ROOT,
      env: { ...PRODUCER_RUNTIME.env, ...t.env },
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!out.success) {
      throw new Error(
        `produce failed (exit ${out.code}): ${
          new TextDecoder().decode(out.stderr).slice(-800)
        }`,
      );
    }
    return JSON.parse(await Deno.readTextFile(summaryFile));
  } finally {
    await Deno.remove(summaryFile).catch(() => {});
  }
}

/** Writes `n` generated events (one per line) for ProducerPerformance. */
async function payloadFile(n: number): Promise<{ path: string; avg: number }> {
  const g = createGenerator({ seed: "bench-payload", startTime: Date.now() });
  const lines: string[] = [];
  let bytes = 0;
  for (const r of g.take(n)) {
    const v = r.value as string;
    lines.push(v);
    bytes += new TextEncoder().encode(v).length;
  }
  const path = await Deno.makeTempFile({ suffix: ".ndjson" });
  await Deno.writeTextFile(path, lines.join("\n"));
  return { path, avg: Math.round(bytes / n) };
}

/** Kafka's ProducerPerformance with our settings; records/s or undefined. */
async function kafkaProducerPerf(
  t: TestEnv,
  count: number,
  payload: string,
): Promise<{ rate: number; line: string } | undefined> {
  const cmd = kafkaToolCommand(
    t.config,
    "org.apache.kafka.tools.ProducerPerformance",
    [
      "--topic",
      t.config.kafka.topic,
      "--num-records",
      String(count),
      "--payload-file",
      payload,
      "--payload-delimiter",
      "\n",
      "--throughput",
      "-1",
      "--producer-props",
      `bootstrap.servers=${t.config.kafka.brokers.join(",")}`,
      "acks=all",
      "enable.idempotence=true",
      "compression.type=gzip",
      `compression.gzip.level=${GZIP_LEVEL}`,
    ],
  );
  const out = await new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  // "300000 records sent, 81234.5 records/sec (40.1 MB/sec), ..."
  const line = text.split("\n").filter((l) => /records sent/.test(l)).at(-1);
  const m = line && /records sent, ([\d.]+) records\/sec/.exec(line);
  if (!out.success || !m) return undefined;
  return { rate: Number(m[1]), line: line!.trim() };
}

/** The producer benchmark rows. */
export async function benchProducer(
  opts: BenchProducerOptions = {},
): Promise<BenchRow[]> {
  const say = opts.onProgress ?? (() => {});
  const count = opts.events ?? (opts.quick ? 100_000 : 300_000);
  const t = await createTestEnv("bench_producer");
  const payload = await payloadFile(10_000);
  try {
    say(`our producer: ${count.toLocaleString("en-US")} events…`);
    const ours = await runProducer(t, count);
    say("Kafka's ProducerPerformance on the same events…");
    const ref = await kafkaProducerPerf(t, count, payload.path);
    const rows: BenchRow[] = [];
    const target = 50_000;
    const ratio = ref ? ours.ratePerSec / ref.rate : undefined;
    rows.push(benchRow({
      name:
        `producer throughput (acks=all, idempotent, gzip-${GZIP_LEVEL}, ~${payload.avg} B events, generation included)`,
      ours: ours.ratePerSec,
      unit: "ev/s",
      reference: ref?.rate,
      referenceName: "Kafka ProducerPerformance",
      target: "≥ 50,000 ev/s and ≥ 40% of Kafka's",
      pass: ours.ratePerSec >= target && ratio !== undefined && ratio >= 0.4,
      note: ref
        ? (ours.ratePerSec < target
          ? `${ours.ratePerSec.toLocaleString("en-US")} ev/s < 50,000`
          : ratio! < 0.4
          ? "below 40% of Kafka's"
          : undefined)
        : "ProducerPerformance did not run",
    }));
    rows.push(benchRow({
      name: "producer peak RSS (default mode)",
      ours: ours.peakRssMb,
      unit: "MB",
      target: "≤ 200 MB",
      pass: ours.peakRssMb <= 200,
      note: ours.peakRssMb > 200 ? `${ours.peakRssMb} MB` : undefined,
    }));
    if (opts.parallel ?? true) {
      say("our producer with --parallel…");
      const par = await runProducer(t, count, ["--parallel"]);
      rows.push(benchRow({
        name: "producer throughput --parallel (generate + gzip in workers)",
        ours: par.ratePerSec,
        unit: "ev/s",
        reference: ref?.rate,
        referenceName: "Kafka ProducerPerformance",
        target: "informational (peak RSS below)",
        pass: true,
        note: `peak RSS ${par.peakRssMb} MB`,
      }));
    }
    return rows;
  } finally {
    await Deno.remove(payload.path).catch(() => {});
    await t.cleanup();
  }
}
