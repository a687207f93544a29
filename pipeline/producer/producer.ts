/**
 * Records per Kafka request by default. 1,000 rather than 5,000: with one
 * request in flight (idempotence) the throughput is the same within the
 * noise (27–31k records/s either way from \`deno task produce --count
 * 500000\`), and the producer's peak RSS falls from ~220 to ~175 MB
 * (with MALLOC_ARENA_MAX=2, runtime.ts): fewer records encoded and
 * compressed at once.
 */
export const DEFAULT_BATCH_SIZE = 1_000;

/**
 * The producer loop: generate → batch → send, at a steady rate or as fast as
 * possible, with progress, a clean stop and an honest summary.
 *
 * - Batches: records are generated in batches (up to `batchSize`) and handed
 *   to the sink one `send` per batch; the next batch is generated while the
 *   previous one is in flight (gzip runs off the main thread), and a batch is
 *   only started after the previous one is acknowledged (acks=all), which is
 *   what the idempotent producer allows.
 * - Rate: with `rate`, the number of records due is computed from the wall
 *   clock since the start, so the rate holds on average and a stall (broker
 *   outage) is caught up afterwards instead of being lost.
 * - Stop: `stop` (first Ctrl-C) stops generating, flushes what was generated
 *   and returns; `abort` (second Ctrl-C) also gives up retrying.
 */
import type { Config } from "../config.ts";
import { logger } from "../log.ts";
import { BAD_KIND_LIST, type BadKind } from "../events/generator.ts";
import type { EventType } from "../events/schema.ts";
import {
  DeliveryError,
  KafkaSink,
  NdjsonSink,
  OutputClosed,
  type Sink,
} from "./sinks.ts";
import {
  addDelta,
  emptyDelta,
  InlineSource,
  type RecordBatch,
  type RecordSource,
  WorkerSource,
} from "./source.ts";
import { delay } from "../async.ts";

const log = logger("producer");

export interface ProduceOptions {
  config: Pick<Config, "kafka">;
  seed: string;
  /** Event time of the first event (epoch ms). */
  startTime: number;
  /** Total records to produce (bad ones included); unbounded if absent. */
  count?: number;
  /** Records per second of wall clock; as fast as possible if absent. */
  rate?: number;
  /** Stop after this long (ms of wall clock). */
  durationMs?: number;
  /** Events per second of event time (default: `rate`, else 1000/s). */
  eventRate?: number;
  badRate?: number;
  dailyRhythm?: boolean;
  /** Write NDJSON here ("-" = stdout) instead of sending to Kafka. */
  out?: string;
  /** Most records per send (default DEFAULT_BATCH_SIZE). */
  batchSize?: number;
  /** Give up on a batch after this long of failures (default 120 s). */
  deliveryTimeoutMs?: number;
  /** Stop generating, flush, return. */
  stop?: AbortSignal;
  /** Also stop retrying undelivered batches. */
  abort?: AbortSignal;
  /** Called about once a second. */
  onProgress?: (p: Progress) => void;
  /** A custom sink (tests). */
  sink?: Sink;
  /**
   * Use a second core: generate in a worker thread and gzip in another
   * (default false: one thread, the leanest memory; see the README).
   */
  parallel?: boolean;
  /** Idempotent producers in parallel, each owning a share of the partitions (default 2). */
  lanes?: number;
}

/** A progress snapshot. */
export interface Progress {
  generated: number;
  sent: number;
  /** Records per second over the last interval. */
  rate: number;
  retries: number;
  bad: number;
  elapsedMs: number;
  /** Set while a send keeps failing. */
  lastError?: string;
}

/** What a run did. */
export interface ProduceSummary {
  destination: string;
  seed: string;
  startTime: string;
  /** Event time of the last record generated. */
  lastEventTime: string | null;
  generated: number;
  /** Records acknowledged by Kafka (or written to the NDJSON output). */
  sent: number;
  /** Records generated but not delivered. */
  undelivered: number;
  events: Record<EventType, number>;
  bad: Record<BadKind, number>;
  badTotal: number;
  sessions: number;
  orders: number;
  /** Failed send attempts that were retried. */
  retries: number;
  elapsedMs: number;
  /** sent / elapsed seconds. */
  ratePerSec: number;
  interrupted: boolean;
  /** The NDJSON reader closed the output (not an error). */
  outputClosed: boolean;
  /** Peak resident memory of the process (MB), workers included. */
  peakRssMb: number;
  error?: string;
}

/** A macrotask yield, so socket callbacks run between sends. */
const yieldToIo = () => new Promise<void>((r) => setTimeout(r, 0));

/**
 * Sends one batch at a time (the next only after the previous is
 * acknowledged) and counts what was delivered and what was not.
 */
class Delivery {
  /** Records acknowledged (or written). */
  sent = 0;
  /** Records generated but not delivered. */
  undelivered = 0;
  /** The error that ended delivery. */
  failure: Error | undefined;
  /** The NDJSON reader went away. */
  outputClosed = false;
  /** Set while a send keeps failing. */
  lastError: string | undefined;
  #inflight: Promise<void> | undefined;

  /** Starts sending `batch`; settled() waits for it. */
  start(sink: Sink, batch: RecordBatch): void {
    const size = batch.keys.length;
    this.#inflight = sink.send(batch).then(
      () => {
        this.sent += size;
        this.lastError = undefined;
      },
      (err) => {
        if (err instanceof OutputClosed) {
          // Nobody reads any more: a normal way to end an --out - run.
          this.outputClosed = true;
          return;
        }
        // A partial failure (one lane) still delivered the rest.
        const lost = err instanceof DeliveryError
          ? Math.min(size, err.undelivered)
          : size;
        this.undelivered += lost;
        this.sent += size - lost;
        this.failure = err instanceof Error ? err : new Error(String(err));
      },
    );
  }

  /** Waits for the batch in flight, if any. */
  async settled(): Promise<void> {
    if (this.#inflight) await this.#inflight;
  }
}

/** The record source: a worker thread with `parallel`, else inline. */
function openSource(opts: ProduceOptions): RecordSource {
  const genOpts = {
    seed: opts.seed,
    startTime: opts.startTime,
    rate: opts.eventRate ?? opts.rate ?? 1000,
    badRate: opts.badRate ?? 0,
    dailyRhythm: opts.dailyRhythm ?? false,
  };
  return opts.parallel ? new WorkerSource(genOpts) : new InlineSource(genOpts);
}

/** The NDJSON output with `out`, else Kafka (retries noted on `delivery`). */
async function openSink(
  opts: ProduceOptions,
  delivery: Delivery,
): Promise<Sink> {
  if (opts.out !== undefined) return await NdjsonSink.open(opts.out);
  return new KafkaSink(opts.config, {
    deliveryTimeoutMs: opts.deliveryTimeoutMs ?? 120_000,
    gzipWorker: opts.parallel ?? false,
    lanes: opts.lanes,
    signal: opts.abort,
    onRetry: ({ attempt, error, waitMs }) => {
      delivery.lastError = error;
      log.warn("Kafka unavailable; retrying the same batch", {
        attempt,
        error,
        retryInMs: waitMs,
      });
    },
  });
}

/** What the loop has taken from the source so far. */
interface Taken {
  generated: number;
  /** Event time of the last record taken. */
  lastTs: number | null;
  /** Counters of the records taken. */
  stats: ReturnType<typeof emptyDelta>;
}

/** Reports progress about once a second; returns the timer to clear. */
function startProgress(
  onProgress: (p: Progress) => void,
  t0: number,
  sink: Sink,
  taken: Taken,
  delivery: Delivery,
): ReturnType<typeof setInterval> {
  let lastProgress = { at: t0, sent: 0 };
  return setInterval(() => {
    const now = performance.now();
    const sent = delivery.sent;
    onProgress({
      generated: taken.generated,
      sent,
      rate: Math.round(
        (sent - lastProgress.sent) / ((now - lastProgress.at) / 1000),
      ),
      retries: sink.retries,
      bad: Object.values(taken.stats.bad).reduce((a, b) => a + b, 0),
      elapsedMs: Math.round(now - t0),
      lastError: delivery.lastError,
    });
    lastProgress = { at: now, sent };
  }, 1000);
}

/**
 * How many records are due at `rate` (records/s) `t0` on; when none is,
 * waits until the next is (at most 50 ms, less on a stop) and returns 0.
 */
async function dueOrWait(
  rate: number,
  t0: number,
  generated: number,
  stop?: AbortSignal,
): Promise<number> {
  const elapsed = performance.now() - t0;
  const due = Math.floor((rate * elapsed) / 1000) + 1 - generated;
  if (due > 0) return due;
  const nextAt = (generated / rate) * 1000; // when the next one is due
  // A stop ends the wait early; the loop's condition then sees it.
  await delay(Math.max(1, Math.min(50, nextAt - elapsed)), {
    signal: stop,
  }).catch(() => {});
  return 0;
}

/**
 * Generates and sends batches until the count, the duration, a stop, a
 * delivery failure or the output's end; then waits for the last send.
 */
async function generateAndSend(
  opts: ProduceOptions,
  source: RecordSource,
  sink: Sink,
  delivery: Delivery,
  taken: Taken,
  t0: number,
): Promise<void> {
  const batchSize = opts.batchSize ?? DEFAULT_BATCH_SIZE;
  const limit = opts.count ?? Infinity;
  const rate = opts.rate;
  const deadline = opts.durationMs !== undefined
    ? t0 + opts.durationMs
    : Infinity;
  while (
    !opts.stop?.aborted && !delivery.failure && !delivery.outputClosed &&
    taken.generated < limit && performance.now() < deadline
  ) {
    let n = Math.min(batchSize, limit - taken.generated);
    if (rate !== undefined) {
      const due = await dueOrWait(rate, t0, taken.generated, opts.stop);
      if (due <= 0) continue;
      n = Math.min(n, due);
    }
    // Unthrottled: ask the source to start on the following batch now,
    // so generation overlaps with this batch's send.
    const next = rate === undefined
      ? Math.min(batchSize, limit - taken.generated - n)
      : undefined;
    const batch = await source.take(n, next);
    taken.generated += n;
    addDelta(taken.stats, batch.delta);
    taken.lastTs = batch.lastTs;
    await delivery.settled();
    if (delivery.failure || delivery.outputClosed) {
      if (delivery.failure) delivery.undelivered += n;
      break;
    }
    delivery.start(sink, batch);
    if (rate !== undefined) await yieldToIo();
  }
  await delivery.settled();
}

/** Runs the producer; resolves with the summary (never rejects on delivery errors). */
export async function produce(opts: ProduceOptions): Promise<ProduceSummary> {
  const source = openSource(opts);
  const delivery = new Delivery();
  const sink: Sink = opts.sink ?? await openSink(opts, delivery);
  const destination = opts.out !== undefined
    ? (opts.out === "-" ? "stdout" : opts.out)
    : `kafka:${opts.config.kafka.topic}`;

  // The clock starts when the source can deliver (a worker takes a moment
  // to start), so --rate and --duration measure producing, not start-up.
  await source.ready();
  const t0 = performance.now();
  const taken: Taken = { generated: 0, lastTs: null, stats: emptyDelta() };
  const progressTimer = opts.onProgress
    ? startProgress(opts.onProgress, t0, sink, taken, delivery)
    : undefined;
  try {
    await generateAndSend(opts, source, sink, delivery, taken, t0);
  } finally {
    if (progressTimer !== undefined) clearInterval(progressTimer);
    source.close();
    await sink.close().catch(() => {});
  }
  return summarize(opts, destination, taken, delivery, sink, t0);
}

/** The run's summary, once the source and the sink are closed. */
function summarize(
  opts: ProduceOptions,
  destination: string,
  taken: Taken,
  delivery: Delivery,
  sink: Sink,
  t0: number,
): ProduceSummary {
  const { stats, lastTs } = taken;
  const { sent, failure, outputClosed } = delivery;
  const elapsedMs = performance.now() - t0;
  const badTotal = Object.values(stats.bad).reduce((a, b) => a + b, 0);
  return {
    destination,
    seed: opts.seed,
    startTime: new Date(opts.startTime).toISOString(),
    lastEventTime: lastTs === null ? null : new Date(lastTs).toISOString(),
    generated: taken.generated,
    sent,
    undelivered: delivery.undelivered,
    events: stats.events,
    bad: stats.bad,
    badTotal,
    sessions: stats.sessions,
    orders: stats.orders,
    retries: sink.retries,
    elapsedMs: Math.round(elapsedMs),
    ratePerSec: Math.round(sent / (elapsedMs / 1000)),
    interrupted: (opts.stop?.aborted ?? false) || outputClosed,
    outputClosed,
    peakRssMb: peakRssMb(),
    error: failure
      ? (failure instanceof DeliveryError
        ? failure.message
        : `${failure.name}: ${failure.message}`)
      : undefined,
  };
}

/** Peak RSS in MB: Linux's VmHWM, else the current RSS. */
export function peakRssMb(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(
      Deno.readTextFileSync("/proc/self/status"),
    );
    if (m) return Math.round(Number(m[1]) / 1024);
  } catch {
    // not Linux
  }
  return Math.round(Deno.memoryUsage().rss / 1048576);
}

/** The summary as a few human lines (stderr). */
export function formatSummary(s: ProduceSummary): string {
  const n = (x: number) => x.toLocaleString("en-US");
  const lines = [
    `produce: ${
      s.error
        ? "FAILED"
        : s.outputClosed
        ? "output closed by its reader"
        : s.interrupted
        ? "interrupted, flushed"
        : "done"
    } in ${(s.elapsedMs / 1000).toFixed(1)} s: ${n(s.sent)} of ${
      n(s.generated)
    } records delivered to ${s.destination} (${n(s.ratePerSec)}/s), ${
      n(s.undelivered)
    } undelivered, ${n(s.retries)} retries, peak RSS ${s.peakRssMb} MB`,
    `  seed ${JSON.stringify(s.seed)}, event time ${s.startTime} .. ${
      s.lastEventTime ?? "-"
    }, ${n(s.sessions)} sessions, ${n(s.orders)} orders`,
    `  events: ${
      Object.entries(s.events).map(([k, v]) => `${k} ${n(v)}`).join(", ")
    }`,
  ];
  if (s.badTotal > 0) {
    lines.push(
      `  bad records injected: ${n(s.badTotal)} (${
        BAD_KIND_LIST.filter((k) => s.bad[k] > 0).map((k) =>
          `${k} ${n(s.bad[k])}`
        ).join(", ")
      })`,
    );
  }
  if (s.error) lines.push(`  error: ${s.error}`);
  return lines.join("\n");
}
