/**
 * Where produced records go: the Kafka topic (the normal case) or an NDJSON
 * stream (`--out`), for inspection, replay with other tools and
 * reproducibility checks.
 */
import { Buffer } from "node:buffer";
import {
  CompressionTypes,
  type Kafka,
  type Message,
  type Producer,
} from "kafkajs";
import type { Config } from "../config.ts";
import { createKafka } from "../clients/kafka.ts";
import { logger } from "../log.ts";
import { SCHEMA_VERSION } from "../events/schema.ts";
import type { RecordBatch } from "./source.ts";
import { KeyPartitioner, partitionForKey } from "./partitioner.ts";
import { installKafkajsFastPath } from "./kafkajs_fastpath.ts";
import { acquireGzip } from "./gzip_codec.ts";
import { delay } from "../async.ts";

const log = logger("producer");

/** A destination of record batches. `send` resolves once the batch is durable. */
export interface Sink {
  send(batch: RecordBatch): Promise<void>;
  close(): Promise<void>;
  /** Failed attempts that were retried so far. */
  readonly retries: number;
}

/** The NDJSON reader went away (e.g. `produce --out - | head`): stop quietly. */
export class OutputClosed extends Error {
  override name = "OutputClosed";
}

/** Raised when a batch could not be delivered within the delivery timeout. */
export class DeliveryError extends Error {
  override name = "DeliveryError";
  constructor(message: string, readonly undelivered: number) {
    super(message);
  }
}

export interface KafkaSinkOptions {
  /** Give up on a batch after this long of failed attempts (ms). */
  deliveryTimeoutMs: number;
  /** Called on every failed attempt, before the backoff sleep. */
  onRetry?: (info: { attempt: number; error: string; waitMs: number }) => void;
  /** Abort waiting between retries (the records stay undelivered). */
  signal?: AbortSignal;
  /** Compress in a worker thread (uses a second core; ~25 MB more RSS). */
  gzipWorker?: boolean;
  /** Idempotent producers sending in parallel, each owning a share of the partitions (default 2). */
  lanes?: number;
}

// The same header object for every message: kafkajs only reads it.
const HEADERS = { schema_version: String(SCHEMA_VERSION) };

function toMessages(batch: RecordBatch): Message[] {
  const n = batch.keys.length;
  const out: Message[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const v = batch.values[i];
    out[i] = {
      key: batch.keys[i],
      value: typeof v === "string"
        ? v
        : Buffer.from(v.buffer, v.byteOffset, v.byteLength),
      headers: HEADERS,
    };
  }
  return out;
}

/**
 * gzip level: 1 compresses JSON logs ~5x at a third of level 6's CPU, which
 * matters on a 2-core machine shared with the broker. The benchmark runs
 * Kafka's own perf tool with the same level.
 */
export const GZIP_LEVEL = 1;

/**
 * Sends batches to the event topic with acks=all, idempotent producers
 * (kafkajs requires maxInFlightRequests 1 for idempotence, so throughput
 * comes from big batches, one `sendBatch` per batch and lane, and from
 * `lanes` producers that each own a share of the partitions) and gzip.
 *
 * Retrying: kafkajs itself retries a few times quickly; when that fails (the
 * broker is down or went away) this sink reports it and resends the SAME
 * batch with backoff (0.5 s doubling to 5 s) until `deliveryTimeoutMs`. That
 * is safe with idempotence: kafkajs rolls its per-partition sequence numbers
 * back when a request fails, so the resend carries the same producer id and
 * sequences and the broker drops any part it had already written. The
 * producer is never re-created mid-run (a new producer id would defeat it).
 */
export class KafkaSink implements Sink {
  #kafka: Kafka;
  #lanes: Producer[];
  #topic: string;
  #partitions = 0;
  #opts: KafkaSinkOptions;
  #connected = false;
  #releaseGzip: () => void;
  retries = 0;

  constructor(config: Pick<Config, "kafka">, opts: KafkaSinkOptions) {
    if (!installKafkajsFastPath()) {
      log.info("kafkajs fast path not installed (unverified kafkajs version)");
    }
    this.#releaseGzip = acquireGzip({
      level: GZIP_LEVEL,
      worker: opts.gzipWorker ?? false,
    });
    this.#kafka = createKafka(config, { clientId: "logpipe-producer" });
    this.#topic = config.kafka.topic;
    this.#opts = opts;
    this.#lanes = Array.from(
      { length: Math.max(1, opts.lanes ?? 2) },
      () =>
        this.#kafka.producer({
          idempotent: true,
          maxInFlightRequests: 1,
          allowAutoTopicCreation: false,
          // Messages carry their partition (murmur2 of the key, see send);
          // this partitioner honours it and is Java-compatible otherwise.
          createPartitioner: KeyPartitioner,
          // Short inner retries: the outer loop reports and keeps retrying.
          retry: { retries: 3, initialRetryTime: 200, maxRetryTime: 2_000 },
        }),
    );
  }

  async #attempt<T>(what: string, fn: () => Promise<T>, count: number) {
    const started = Date.now();
    let wait = 500;
    for (let attempt = 1;; attempt++) {
      try {
        return await fn();
      } catch (err) {
        const error = err instanceof Error ? err.message : String(err);
        const elapsed = Date.now() - started;
        if (
          elapsed >= this.#opts.deliveryTimeoutMs || this.#opts.signal?.aborted
        ) {
          throw new DeliveryError(
            `${what} failed for ${Math.round(elapsed / 1000)} s: ${error}`,
            count,
          );
        }
        this.retries++;
        const waitMs = Math.min(wait, this.#opts.deliveryTimeoutMs - elapsed);
        this.#opts.onRetry?.({ attempt, error, waitMs });
        // An abort ends the wait early; the next failure then throws.
        await delay(waitMs, { signal: this.#opts.signal }).catch(() => {});
        wait = Math.min(wait * 2, 5_000);
      }
    }
  }

  async connect(): Promise<void> {
    await this.#attempt("connecting to Kafka", async () => {
      for (const p of this.#lanes) await p.connect();
      const admin = this.#kafka.admin();
      await admin.connect();
      try {
        const md = await admin.fetchTopicMetadata({ topics: [this.#topic] });
        this.#partitions = md.topics[0]?.partitions.length ?? 0;
      } finally {
        await admin.disconnect();
      }
      if (this.#partitions < 1) {
        throw new Error(`topic ${this.#topic} has no partitions`);
      }
    }, 0);
    this.#connected = true;
  }

  /**
   * Sends a batch. Each lane (an idempotent producer with its own producer
   * id) owns the partitions p with p % lanes = its index, so every
   * partition still has exactly one writer with one request in flight
   * (order and exactly-once per partition hold), while the lanes' requests
   * overlap: the broker round trip no longer leaves the producer idle.
   */
  async send(batch: RecordBatch): Promise<void> {
    if (!this.#connected) {
      try {
        await this.connect();
      } catch (err) {
        throw new DeliveryError(
          err instanceof Error ? err.message : String(err),
          batch.keys.length,
        );
      }
    }
    const lanes = this.#lanes.length;
    const perLane: Message[][] = this.#lanes.map(() => []);
    const messages = toMessages(batch);
    for (const m of messages) {
      const p = partitionForKey(m.key as string, this.#partitions);
      m.partition = p;
      perLane[p % lanes].push(m);
    }
    const results = await Promise.allSettled(
      perLane.map((msgs, i) =>
        msgs.length === 0 ? Promise.resolve() : this.#attempt(
          `sending ${msgs.length} records`,
          async () => {
            await this.#lanes[i].sendBatch({
              acks: -1,
              compression: CompressionTypes.GZIP,
              topicMessages: [{ topic: this.#topic, messages: msgs }],
            });
          },
          msgs.length,
        )
      ),
    );
    const failed = results.flatMap((r, i) =>
      r.status === "rejected" ? [{ i, reason: r.reason }] : []
    );
    if (failed.length) {
      const undelivered = failed.reduce((n, f) => n + perLane[f.i].length, 0);
      throw new DeliveryError(
        failed.map((f) =>
          f.reason instanceof Error ? f.reason.message : String(f.reason)
        ).join("; "),
        undelivered,
      );
    }
  }

  async close(): Promise<void> {
    if (this.#connected) {
      for (const p of this.#lanes) {
        await p.disconnect().catch((err) =>
          log.warn("disconnect failed", { error: err })
        );
      }
    }
    this.#releaseGzip();
  }
}

const NEWLINE = new Uint8Array([10]);

/**
 * Writes records as NDJSON, one record per line, byte for byte what would
 * go to Kafka (so invalid-UTF-8 records stay invalid). `path` "-" = stdout.
 */
export class NdjsonSink implements Sink {
  #file: Deno.FsFile | undefined;
  #writer: { write(p: Uint8Array): Promise<number> };
  #encoder = new TextEncoder();
  retries = 0;

  private constructor(
    writer: { write(p: Uint8Array): Promise<number> },
    file?: Deno.FsFile,
  ) {
    this.#writer = writer;
    this.#file = file;
  }

  static async open(path: string): Promise<NdjsonSink> {
    if (path === "-") return new NdjsonSink(Deno.stdout);
    const file = await Deno.open(path, {
      write: true,
      create: true,
      truncate: true,
    });
    return new NdjsonSink(file, file);
  }

  async send(batch: RecordBatch): Promise<void> {
    // One buffer per batch: one write call instead of two per record.
    const parts: Uint8Array[] = [];
    let size = 0;
    for (const v of batch.values) {
      const b = typeof v === "string" ? this.#encoder.encode(v) : v;
      parts.push(b, NEWLINE);
      size += b.length + 1;
    }
    const buf = new Uint8Array(size);
    let at = 0;
    for (const p of parts) {
      buf.set(p, at);
      at += p.length;
    }
    try {
      for (let off = 0; off < buf.length;) {
        off += await this.#writer.write(buf.subarray(off));
      }
    } catch (err) {
      if (err instanceof Deno.errors.BrokenPipe) {
        throw new OutputClosed("the output was closed by its reader");
      }
      throw err;
    }
  }

  close(): Promise<void> {
    this.#file?.close();
    return Promise.resolve();
  }
}
