/**
 * The stream consumer: Kafka topic → HDFS raw zone (Parquet) and dead-letter
 * zone (NDJSON), exactly once, with live metrics in Postgres.
 *
 * Flow per Kafka partition: records are validated (pipeline/events/schema.ts)
 * and flattened (flatten.ts) into the partition's open MicroBatch; when it
 * reaches its size or age bound it is written (Parquet via DuckDB), committed
 * to HDFS by the protocol of ../zones/commit.ts, and only then is the Kafka offset
 * committed. Positions come from HDFS on every assignment, so a crash at any
 * moment loses nothing and duplicates nothing.
 *
 * What kafkajs 2.2.4 really offers for rebalances (read from its source):
 * - no revoke/assign callbacks. It emits `consumer.events.GROUP_JOIN` (with
 *   `memberAssignment`) synchronously after JoinGroup+SyncGroup and before it
 *   fetches, and `consumer.events.REBALANCING` when a heartbeat or fetch saw
 *   REBALANCE_IN_PROGRESS, right before it rejoins.
 * - the coordinator completes a rebalance only when every member rejoined (or
 *   the rebalance timeout passed); a member rejoins only after its running
 *   eachBatch returned. So work done INSIDE eachBatch before it returns
 *   happens before anyone else can own the partitions.
 * Hence: (1) eachBatch ends with `heartbeat()`; when that reports a
 * rebalance, we flush and commit every open batch there, then rethrow (the
 * "flush before giving a partition up"). (2) If kafkajs notices the rebalance
 * on its own heartbeat instead (outside our handler), REBALANCING bumps our
 * generation and the open batches are dropped, not committed: their records
 * were never committed, so whoever owns the partition next reads them again.
 * (3) On GROUP_JOIN we pause the assigned partitions, recover their positions
 * from HDFS, seek, and resume. (4) Every commit re-checks the generation just
 * before its commit point. Records already delivered from before a seek are
 * recognised (offset below the expected next one, or `isStale()`) and skipped.
 */
import type { Consumer, EachBatchPayload, KafkaMessage } from "kafkajs";
import type { Config } from "../config.ts";
import { createKafka } from "../clients/kafka.ts";
import { createWebHdfs } from "../clients/webhdfs.ts";
import { createPool, type Pool } from "../clients/postgres.ts";
import { type Logger, logger } from "../log.ts";
import { validateEvent } from "../events/schema.ts";
import { flattenEvent } from "../events/flatten.ts";
import { formatDataFileName } from "../zones/names.ts";
import {
  type BatchFile,
  type CommitPhase,
  HdfsCommitter,
} from "../zones/commit.ts";
import { type BatchLimits, DEFAULT_LIMITS, MicroBatch } from "./micro_batch.ts";
import { ParquetWriter } from "./parquet_writer.ts";
import { deadLetterRecord } from "../zones/dead_letter.ts";
import {
  addDeadLetterStats,
  addEventStats,
  MetricsAggregator,
} from "./metrics.ts";
import { MetricsWriter } from "./metrics_writer.ts";
import { retry, RetryAborted } from "./retry.ts";

/** Crash points for tests: the process kills itself (SIGKILL) at the n-th hit. */
export type FailPhase = CommitPhase | "kafka-committed";
export const FAIL_PHASES: readonly FailPhase[] = [
  "staged",
  "committed",
  "rolling",
  "rolled",
  "kafka-committed",
];

export interface Failpoint {
  phase: FailPhase;
  /** 1-based: crash at the n-th time the phase is reached. */
  hit: number;
}

export interface StreamConsumerOptions {
  config: Config;
  limits?: BatchLimits;
  /** Commit everything up to the end offsets seen at start, then stop. */
  untilCaughtUp?: boolean;
  /** How often live metrics are written (default 2 s). */
  metricsIntervalMs?: number;
  /** Kafka group session timeout (default 30 s). */
  sessionTimeoutMs?: number;
  /** Write live metrics to Postgres (default true). */
  metrics?: boolean;
  failpoint?: Failpoint;
  instanceId?: string;
  log?: Logger;
}

/** What a run did (printed by `deno task consume` and used by tests/bench). */
export interface ConsumerSummary {
  instanceId: string;
  recordsIn: number;
  eventsOut: number;
  deadLetters: number;
  filesWritten: number;
  bytesWritten: number;
  batches: number;
  elapsedMs: number;
  caughtUp: boolean;
  /** Highest resident set size sampled (every 100 ms). */
  peakRssBytes: number;
  /** Per partition: next offset durably committed (owned partitions only). */
  positions: Record<string, number>;
}

interface PartitionState {
  ready: boolean;
  /** Next offset to take into a batch. */
  nextOffset: number;
  /** Next offset after the last batch committed to HDFS. */
  durableOffset: number;
  buffer: MicroBatch | undefined;
  /** When this partition last made durable progress (or was assigned). */
  lastProgressMs: number;
}

const isRebalancing = (e: unknown) => {
  const t = (e as { type?: string })?.type;
  return t === "REBALANCE_IN_PROGRESS" || t === "NOT_COORDINATOR_FOR_GROUP" ||
    t === "ILLEGAL_GENERATION" || t === "UNKNOWN_MEMBER_ID";
};

/** A new instance id: host, pid and a random suffix. */
export function newInstanceId(): string {
  let host = "host";
  try {
    host = Deno.hostname();
  } catch { /* no permission */ }
  return `${host}-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
}

/** The consumer; create, then `run()`; `stop()` (or a signal) ends it cleanly. */
export class StreamConsumer {
  readonly config: Config;
  readonly topic: string;
  readonly limits: BatchLimits;
  readonly instanceId: string;
  readonly log: Logger;
  readonly metrics = new MetricsAggregator();

  #opts: StreamConsumerOptions;
  #consumer!: Consumer;
  #admin!: ReturnType<ReturnType<typeof createKafka>["admin"]>;
  #committer: HdfsCommitter;
  #parquet!: ParquetWriter;
  #pool: Pool | undefined;
  #metricsWriter: MetricsWriter | undefined;
  #scratch: string;

  #parts = new Map<number, PartitionState>();
  #assigned = new Set<number>();
  #generation = 0;
  #lock: Promise<unknown> = Promise.resolve();
  /** In-flight flush per partition (partitions flush concurrently). */
  #flushing = new Map<number, Promise<void>>();
  #peakRss = 0;
  #inBatch: Promise<void> = Promise.resolve();
  #heartbeat: (() => Promise<void>) | undefined;
  #targets: Map<number, number> | undefined;
  #groupOffsets = new Map<number, number>();
  #stopping = false;
  #forced = false;
  #stopRequested!: () => void;
  #stopPromise: Promise<void>;
  #fatal: Error | undefined;
  #failHits = 0;
  #batches = 0;
  #state = "starting";
  #lastError: string | undefined;
  #startedAt = new Date();
  #caughtUp = false;

  constructor(opts: StreamConsumerOptions) {
    this.#opts = opts;
    this.config = opts.config;
    this.topic = opts.config.kafka.topic;
    this.limits = opts.limits ?? DEFAULT_LIMITS;
    this.instanceId = opts.instanceId ?? newInstanceId();
    this.log = opts.log ?? logger("consumer");
    this.#committer = new HdfsCommitter(
      createWebHdfs(opts.config, { timeoutMs: 30_000 }),
      opts.config.hdfs,
    );
    this.#scratch = `${opts.config.localDir}/consumer/${this.instanceId}`;
    this.#stopPromise = new Promise((r) => (this.#stopRequested = r));
  }

  /** Asks the consumer to finish its open batches, commit and return. A second call gives up on them. */
  stop(): void {
    if (this.#stopping) this.#forced = true;
    this.#stopping = true;
    this.#stopRequested();
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(fn, fn);
    this.#lock = run.catch(() => {});
    return run;
  }

  async #failpoint(phase: FailPhase): Promise<void> {
    const fp = this.#opts.failpoint;
    if (!fp || fp.phase !== phase) return;
    if (++this.#failHits === fp.hit) {
      this.log.warn("failpoint reached: killing this process", {
        phase,
        hit: fp.hit,
      });
      Deno.kill(Deno.pid, "SIGKILL");
      await new Promise(() => {}); // never continue past a failpoint
    }
  }

  #retry<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return retry(fn, {
      initialMs: 250,
      maxMs: 10_000,
      aborted: () => this.#forced,
      onError: async (err, attempt, delayMs) => {
        this.#lastError = `${what}: ${
          err instanceof Error ? err.message : err
        }`;
        this.#state = "backing-off";
        this.log.warn("retrying", { what, attempt, delayMs, error: err });
        // Stay in the group while we wait (eachBatch is blocked meanwhile).
        try {
          await this.#heartbeat?.();
        } catch (e) {
          if (isRebalancing(e)) this.#onRebalancing();
        }
      },
    });
  }

  /** Runs until stopped (or caught up with `untilCaughtUp`). */
  async run(): Promise<ConsumerSummary> {
    const t0 = performance.now();
    await Deno.mkdir(this.#scratch, { recursive: true });
    await this.#cleanOldScratch();
    this.#parquet = await ParquetWriter.create({
      tempDirectory: `${this.#scratch}/duckdb`,
    });
    if (this.#opts.metrics !== false) {
      this.#pool = createPool(this.config, {
        max: 2,
        applicationName: "logpipe-consumer",
      });
      this.#metricsWriter = new MetricsWriter(
        this.#pool,
        this.topic,
        this.instanceId,
      );
    }
    const kafka = createKafka(this.config, { clientId: `logpipe-consumer` });
    this.#admin = kafka.admin();
    await this.#admin.connect();
    if (this.#opts.untilCaughtUp) {
      const offs = await this.#admin.fetchTopicOffsets(this.topic);
      this.#targets = new Map(offs.map((o) => [o.partition, Number(o.high)]));
      this.log.info("catching up to end offsets", {
        topic: this.topic,
        targets: Object.fromEntries(this.#targets),
      });
    }
    this.#consumer = kafka.consumer({
      groupId: this.config.kafka.consumerGroup,
      sessionTimeout: this.#opts.sessionTimeoutMs ?? 30_000,
      rebalanceTimeout: 60_000,
      heartbeatInterval: 3_000,
      maxBytesPerPartition: 1024 * 1024,
      maxBytes: 6 * 1024 * 1024,
      maxWaitTimeInMs: 200,
      retry: { retries: 10 },
    });
    const { GROUP_JOIN, REBALANCING, CRASH } = this.#consumer.events;
    this.#consumer.on(
      GROUP_JOIN,
      (e) => this.#onJoin(e.payload.memberAssignment),
    );
    this.#consumer.on(REBALANCING, () => this.#onRebalancing());
    this.#consumer.on(CRASH, (e) => {
      const err = e.payload.error;
      this.log.error("kafka consumer crashed", {
        error: err,
        restart: e.payload.restart,
      });
      if (!e.payload.restart) {
        this.#fatal = err instanceof Error ? err : new Error(String(err));
        this.stop();
      }
    });
    await this.#consumer.connect();
    await this.#consumer.subscribe({
      topics: [this.topic],
      fromBeginning: true,
    });
    await this.#consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: 1,
      eachBatch: (p) => {
        const run = this.#eachBatch(p);
        this.#inBatch = run.catch(() => {});
        return run;
      },
    });
    this.#state = "running";

    const tick = setInterval(() => this.#tick(), 100);
    const metricsEvery = this.#opts.metricsIntervalMs ?? 2_000;
    let metricsRunning = false;
    const metricsTimer = setInterval(() => {
      if (metricsRunning) return;
      metricsRunning = true;
      this.#writeMetrics().finally(() => (metricsRunning = false));
    }, metricsEvery);

    try {
      await this.#stopPromise;
      this.#state = "stopping";
      clearInterval(tick);
      // Stop taking new records, let the running eachBatch end, then commit
      // everything we hold while we still own it.
      try {
        this.#consumer.pause([{ topic: this.topic }]);
      } catch { /* not running */ }
      await this.#inBatch;
      if (!this.#fatal) {
        await this.#flushAll("stop").catch((err) => {
          if (!(err instanceof RetryAborted)) throw err;
          this.log.warn("stopped without committing open batches (forced)");
        });
      }
    } finally {
      clearInterval(tick);
      clearInterval(metricsTimer);
      await this.#consumer.disconnect().catch(() => {});
      this.#state = this.#fatal ? "failed" : "stopped";
      await this.#writeMetrics(true);
      await this.#admin.disconnect().catch(() => {});
      await this.#pool?.end().catch(() => {});
      this.#parquet.close();
      for (const st of this.#parts.values()) await st.buffer?.discard();
      await Deno.remove(this.#scratch, { recursive: true }).catch(() => {});
    }
    if (this.#fatal) throw this.#fatal;
    const t = this.metrics.totals;
    return {
      instanceId: this.instanceId,
      ...t,
      batches: this.#batches,
      elapsedMs: Math.round(performance.now() - t0),
      caughtUp: this.#caughtUp,
      peakRssBytes: this.#peakRss,
      positions: Object.fromEntries(
        [...this.#parts].filter(([, s]) => s.ready).map((
          [p, s],
        ) => [String(p), s.durableOffset]),
      ),
    };
  }

  async #cleanOldScratch(): Promise<void> {
    const parent = `${this.config.localDir}/consumer`;
    try {
      for await (const e of Deno.readDir(parent)) {
        const path = `${parent}/${e.name}`;
        if (path === this.#scratch) continue;
        const st = await Deno.stat(path).catch(() => undefined);
        if (st?.mtime && Date.now() - st.mtime.getTime() > 10 * 60_000) {
          await Deno.remove(path, { recursive: true }).catch(() => {});
        }
      }
    } catch { /* nothing to clean */ }
  }

  // ------------------------------------------------------- group events --

  #onRebalancing(): void {
    this.#generation++;
    this.log.info("group rebalancing: dropping uncommitted batches", {
      generation: this.#generation,
    });
    for (const st of this.#parts.values()) {
      st.ready = false;
      const b = st.buffer;
      st.buffer = undefined;
      b?.discard();
    }
  }

  #onJoin(memberAssignment: Record<string, number[]>): void {
    const parts = [...(memberAssignment[this.topic] ?? [])].sort((a, b) =>
      a - b
    );
    const gen = ++this.#generation;
    this.#assigned = new Set(parts);
    for (const [p, st] of this.#parts) {
      st.ready = false;
      const b = st.buffer;
      st.buffer = undefined;
      b?.discard();
      if (!this.#assigned.has(p)) this.#parts.delete(p);
    }
    this.metrics.retainLag(this.#assigned);
    this.log.info("partitions assigned", {
      partitions: parts,
      generation: gen,
    });
    if (parts.length === 0) return;
    // Synchronously, before kafkajs' first fetch: nothing is read until the
    // position has been recovered from HDFS.
    this.#consumer.pause([{ topic: this.topic, partitions: parts }]);
    this.#serial(() => this.#recover(gen, parts)).catch((err) => {
      if (err instanceof RetryAborted) return;
      this.log.error("recovery failed", { error: err });
      this.#fatal = err instanceof Error ? err : new Error(String(err));
      this.stop();
    });
  }

  async #recover(gen: number, parts: number[]): Promise<void> {
    // A flush of the previous generation may be between its ownership check
    // and its commit point: let it land (or abort) before HDFS is listed.
    await this.#settleFlushes();
    if (gen !== this.#generation) return;
    const t0 = performance.now();
    const rec = await this.#retry(
      "recover from HDFS",
      () => this.#committer.recover(this.topic, parts),
    );
    const [groupOffsets, topicOffsets] = await this.#retry(
      "read Kafka offsets",
      async () => {
        const g = await this.#admin.fetchOffsets({
          groupId: this.config.kafka.consumerGroup,
          topics: [this.topic],
        });
        const t = await this.#admin.fetchTopicOffsets(this.topic);
        return [g, t] as const;
      },
    );
    if (gen !== this.#generation) return;
    const group = new Map(
      (groupOffsets[0]?.partitions ?? []).map((
        p,
      ) => [p.partition, Number(p.offset)]),
    );
    const low = new Map(topicOffsets.map((o) => [o.partition, Number(o.low)]));
    const positions: Record<number, number> = {};
    for (const p of parts) {
      // HDFS is the truth; with nothing there (first start, or the zones were
      // wiped on purpose) the group's offset, else the earliest record.
      let start = rec.resume.get(p) ?? (group.get(p) ?? -1);
      const lo = low.get(p) ?? 0;
      if (start < lo) {
        if (start >= 0) {
          this.log.warn(
            "resume offset below the log start: records were deleted by retention",
            {
              partition: p,
              resume: start,
              logStart: lo,
            },
          );
        }
        start = lo;
      }
      this.#consumer.seek({
        topic: this.topic,
        partition: p,
        offset: String(start),
      });
      this.#parts.set(p, {
        ready: true,
        nextOffset: start,
        durableOffset: start,
        buffer: undefined,
        lastProgressMs: Date.now(),
      });
      positions[p] = start;
    }
    this.#consumer.resume([{ topic: this.topic, partitions: parts }]);
    this.log.info("recovered positions from HDFS", {
      positions,
      stagingRemoved: rec.stagingRemoved,
      batchesRolledForward: rec.batchesRolledForward,
      ms: Math.round(performance.now() - t0),
    });
  }

  // ---------------------------------------------------------- hot path --

  async #eachBatch(payload: EachBatchPayload): Promise<void> {
    const { batch, resolveOffset, heartbeat, isStale } = payload;
    this.#heartbeat = heartbeat;
    const p = batch.partition;
    const st = this.#parts.get(p);
    if (this.#stopping || !st?.ready || !this.#assigned.has(p) || isStale()) {
      return;
    }
    const gen = this.#generation;
    let taken = 0;
    let lastSeen: string | undefined;
    for (const m of batch.messages) {
      if (this.#stopping || gen !== this.#generation || !st.ready) break;
      const off = Number(m.offset);
      if (off < st.nextOffset) {
        lastSeen = m.offset; // delivered again after a seek
        continue;
      }
      if (!st.buffer) st.buffer = new MicroBatch(this.topic, p, this.#scratch);
      this.#ingest(st.buffer, p, m);
      st.nextOffset = off + 1;
      lastSeen = m.offset;
      taken++;
      const b = st.buffer;
      if (
        b.records >= this.limits.maxRecords || b.bytes >= this.limits.maxBytes
      ) {
        await this.#flushNow(p, gen, "size");
      }
    }
    if (lastSeen !== undefined) resolveOffset(lastSeen);
    if (taken) this.metrics.recordIn(taken);
    // Due batches (age, caught-up) are flushed by the 100 ms tick in the
    // background, so reading goes on while DuckDB and HDFS work; a FULL
    // batch (above) is flushed here, which is the back-pressure.
    try {
      await heartbeat();
    } catch (err) {
      if (isRebalancing(err) && gen === this.#generation) {
        // Still inside eachBatch: nobody else can own our partitions before
        // we return, so commit what we hold now.
        this.log.info(
          "rebalance announced: committing open batches before rejoining",
        );
        await this.#flushAll("rebalance");
      }
      throw err;
    }
  }

  #ingest(b: MicroBatch, p: number, m: KafkaMessage): void {
    const off = Number(m.offset);
    const kts = m.timestamp ? Number(m.timestamp) : undefined;
    const value = m.value;
    const size = value?.byteLength ?? 0;
    // A null value (tombstone) is not bytes: the validator rejects it.
    const res = validateEvent(value as Uint8Array);
    if (res.ok) {
      const row = flattenEvent(res.event, {
        topic: this.topic,
        partition: p,
        offset: off,
        timestamp: m.timestamp,
      });
      let ts = row.event_ts;
      if (ts.length !== 24 || ts[23] !== "Z") {
        ts = new Date(Date.parse(ts)).toISOString();
      }
      b.addEvent(off, size, kts, ts, JSON.stringify(row));
      addEventStats(b.stats, row, res.event);
    } else {
      const rec = deadLetterRecord(
        this.topic,
        p,
        m as unknown as Parameters<typeof deadLetterRecord>[2],
        res.reason,
        res.detail,
        this.instanceId,
      );
      const date = (rec.kafka_timestamp ?? rec.dead_lettered_at).slice(0, 10);
      b.addDeadLetter(off, size, kts, date, JSON.stringify(rec));
      addDeadLetterStats(b.stats, res.reason);
    }
  }

  // ------------------------------------------------------------ flushing --

  #tick(): void {
    if (this.#stopping) return;
    const gen = this.#generation;
    const now = Date.now();
    let due = false;
    for (const st of this.#parts.values()) {
      if (
        st.buffer && (st.buffer.full(this.limits, now) || this.#atTarget(st))
      ) due = true;
    }
    if (due) this.#flushDue(gen);
    const mem = Deno.memoryUsage();
    if (mem.rss > this.#peakRss) {
      this.#peakRss = mem.rss;
      this.log.debug("memory", { ...mem });
    }
    if (this.#targets) this.#checkCaughtUp();
  }

  #onFlushError(err: unknown): void {
    if (err instanceof RetryAborted) return;
    this.log.error("flush failed", { error: err });
    this.#fatal = err instanceof Error ? err : new Error(String(err));
    this.stop();
  }

  #atTarget(st: PartitionState): boolean {
    if (!this.#targets || !st.buffer) return false;
    for (const [p, s] of this.#parts) {
      if (s === st) return st.nextOffset >= (this.#targets.get(p) ?? Infinity);
    }
    return false;
  }

  /** Starts (without waiting) the flush of every due partition not already flushing. */
  #flushDue(gen: number): void {
    const now = Date.now();
    for (const [p, st] of this.#parts) {
      if (
        st.buffer && !this.#flushing.has(p) &&
        (st.buffer.full(this.limits, now) || this.#atTarget(st))
      ) {
        this.#startFlush(p, gen, "due").catch((err) => this.#onFlushError(err));
      }
    }
  }

  /** Starts the flush of partition p's open batch; one flush per partition at a time. */
  #startFlush(p: number, gen: number, why: string): Promise<void> {
    const running = this.#flushing.get(p);
    if (running) return running;
    const run = this.#flush(p, gen, why).finally(() =>
      this.#flushing.delete(p)
    );
    this.#flushing.set(p, run);
    return run;
  }

  /** Waits for p's in-flight flush, then flushes what it holds now. */
  async #flushNow(p: number, gen: number, why: string): Promise<void> {
    for (let f = this.#flushing.get(p); f; f = this.#flushing.get(p)) await f;
    await this.#startFlush(p, gen, why);
  }

  /** Flushes every partition's open batch (concurrently) and waits. */
  async #flushAll(why: string): Promise<void> {
    const gen = this.#generation;
    await Promise.all(
      [...this.#parts.keys()].map((p) => this.#flushNow(p, gen, why)),
    );
  }

  /** Waits until no flush is in flight (before recovery reads HDFS). */
  async #settleFlushes(): Promise<void> {
    while (this.#flushing.size) {
      await Promise.allSettled([...this.#flushing.values()]);
    }
  }

  /** Writes and commits the open batch of partition `p` (via #startFlush only). */
  async #flush(p: number, gen: number, why: string): Promise<void> {
    const st = this.#parts.get(p);
    const b = st?.buffer;
    if (!st || !b || b.records === 0) return;
    st.buffer = undefined;
    const stillOwner = () =>
      gen === this.#generation && this.#assigned.has(p) && st.ready &&
      !this.#forced;
    if (!stillOwner()) {
      await b.discard();
      return;
    }
    const t0 = performance.now();
    try {
      const groups = await b.finish();
      const files: BatchFile[] = [];
      let bytes = 0;
      for (const g of groups) {
        const name = formatDataFileName({
          topic: this.topic,
          partition: p,
          firstOffset: g.firstOffset,
          lastOffset: g.lastOffset,
          extension: g.kind === "raw" ? "parquet" : "ndjson",
        });
        let data: Uint8Array;
        if (g.kind === "raw") {
          const out = `${g.path}.parquet`;
          const rows = await retry(() => this.#parquet.convert(g.path, out), {
            maxAttempts: 5,
            initialMs: 500,
            aborted: () => this.#forced,
            onError: (err, attempt) =>
              this.log.warn("Parquet conversion failed", {
                attempt,
                error: err,
              }),
          });
          if (rows !== g.count) {
            throw new Error(
              `DuckDB wrote ${rows} rows to ${name}, expected ${g.count}`,
            );
          }
          data = await Deno.readFile(out);
          await Deno.remove(out).catch(() => {});
        } else {
          data = await Deno.readFile(g.path);
        }
        bytes += data.byteLength;
        files.push({ zone: g.kind, dir: g.dir, name, bytes: data });
      }
      const prepareMs = Math.round(performance.now() - t0);
      const ok = await this.#committer.commit(
        {
          topic: this.topic,
          partition: p,
          firstOffset: b.firstOffset,
          lastOffset: b.lastOffset,
          files,
        },
        { stillOwner, onPhase: (phase) => this.#failpoint(phase) },
        (what, fn) => this.#retry(what, fn),
      );
      if (!ok) {
        this.log.warn("batch not committed: partition no longer ours", {
          partition: p,
          firstOffset: b.firstOffset,
          lastOffset: b.lastOffset,
        });
        if (stillOwner()) {
          // Fenced although we still hold it: re-read from the durable point.
          st.nextOffset = st.durableOffset;
          this.#consumer.seek({
            topic: this.topic,
            partition: p,
            offset: String(st.durableOffset),
          });
        }
        return;
      }
      st.durableOffset = b.lastOffset + 1;
      st.lastProgressMs = Date.now();
      this.#batches++;
      if (this.#state === "backing-off") this.#state = "running";
      this.metrics.recordCommitted(b.stats, files.length, bytes);
      this.log.debug("batch committed", {
        partition: p,
        firstOffset: b.firstOffset,
        lastOffset: b.lastOffset,
        records: b.records,
        files: files.length,
        bytes,
        why,
        prepareMs,
        ms: Math.round(performance.now() - t0),
      });
      // Kafka's committed offset only mirrors HDFS (for lag tools); a failure
      // here is harmless, the next start recovers from the file names.
      try {
        await this.#consumer.commitOffsets([
          { topic: this.topic, partition: p, offset: String(b.lastOffset + 1) },
        ]);
      } catch (err) {
        this.log.warn("Kafka offset commit failed (HDFS has the batch)", {
          partition: p,
          error: err,
        });
      }
      await this.#failpoint("kafka-committed");
    } finally {
      await b.discard();
    }
  }

  // ------------------------------------------------------------ progress --

  #checkCaughtUp(): void {
    if (!this.#targets || this.#caughtUp || this.#stopping) return;
    for (const [p, target] of this.#targets) {
      if (target === 0) continue;
      const st = this.#parts.get(p);
      const pos = st?.ready
        ? st.durableOffset
        : (this.#groupOffsets.get(p) ?? -1);
      if (pos < target) return;
    }
    this.#caughtUp = true;
    this.log.info("caught up with the end offsets seen at start; stopping");
    this.stop();
  }

  async #writeMetrics(final = false): Promise<void> {
    // Positions of partitions owned elsewhere (for --until-caught-up with
    // several processes) and the lag of ours.
    try {
      const [ends, group] = await Promise.all([
        this.#admin.fetchTopicOffsets(this.topic),
        this.#targets
          ? this.#admin.fetchOffsets({
            groupId: this.config.kafka.consumerGroup,
            topics: [this.topic],
          })
          : Promise.resolve([]),
      ]);
      for (const p of group[0]?.partitions ?? []) {
        this.#groupOffsets.set(p.partition, Number(p.offset));
      }
      const now = Date.now();
      for (const o of ends) {
        const st = this.#parts.get(o.partition);
        if (!st?.ready || !this.#assigned.has(o.partition)) continue;
        const end = Number(o.high);
        const lag = Math.max(0, end - st.durableOffset);
        const since = st.buffer?.firstKafkaTs ?? st.lastProgressMs;
        this.metrics.setLag({
          partition: o.partition,
          committedOffset: st.durableOffset,
          endOffset: end,
          lagOffsets: lag,
          lagSeconds: lag === 0 ? 0 : Math.max(0, (now - since) / 1000),
        });
      }
    } catch (err) {
      if (!final) this.log.debug("could not read end offsets", { error: err });
    }
    if (!this.#metricsWriter) {
      this.metrics.drain();
      return;
    }
    const snap = this.metrics.drain();
    try {
      await this.#metricsWriter.write(snap, {
        instanceId: this.instanceId,
        state: this.#state,
        startedAt: this.#startedAt,
        detail: {
          topic: this.topic,
          group: this.config.kafka.consumerGroup,
          partitions: [...this.#assigned],
          positions: Object.fromEntries(
            [...this.#parts].map(([p, s]) => [p, s.durableOffset]),
          ),
          totals: this.metrics.totals,
          batches: this.#batches,
          lastError: this.#lastError ?? null,
        },
      });
    } catch (err) {
      this.metrics.restore(snap);
      this.log.warn("live metrics not written (will retry)", { error: err });
    }
  }
}

/** Convenience: run a consumer to completion. */
export async function runStreamConsumer(
  opts: StreamConsumerOptions,
): Promise<ConsumerSummary> {
  return await new StreamConsumer(opts).run();
}
