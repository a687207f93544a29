/**
 * The stream consumer: Kafka topic → HDFS raw zone (Parquet) and dead-letter
 * zone (NDJSON), exactly once, with live metrics in Postgres.
 *
 * Flow per Kafka partition: records are validated and flattened (ingest.ts)
 * into the partition's open MicroBatch; when it reaches its size or age
 * bound it is written and committed to HDFS by the protocol of
 * ../zones/commit.ts, and only then is the Kafka offset committed
 * (flush.ts). Positions come from HDFS on every assignment
 * (partitions.ts), so a crash at any moment loses nothing and duplicates
 * nothing. This file is the run loop that wires them to kafkajs.
 *
 * Rebalances (kafkajs 2.2.4 semantics in partitions.ts): the coordinator
 * completes a rebalance only when every member rejoined, and a member
 * rejoins only after its running eachBatch returned, so work done INSIDE
 * eachBatch happens before anyone else can own the partitions. Hence
 * eachBatch ends with `heartbeat()`; when that reports a rebalance, every
 * open batch is flushed and committed there, then the error is rethrown
 * ("flush before giving a partition up"). Records already delivered from
 * before a seek are recognised (offset below the expected next one, or
 * `isStale()`) and skipped.
 *
 * Transactions: records are read with read_committed isolation, so records
 * of aborted (and still open) transactions are never delivered, nor written.
 * Those records and every transaction's marker (a control record) take
 * offsets all the same, so the last record delivered is not at a
 * partition's end: each partition's `fetchedOffset` follows how far Kafka's
 * fetch went (#fetchedThrough), which is what `--until-caught-up` compares
 * with the end offsets, what the lag is measured from, and what Kafka's
 * group offset is moved to once everything before it is in HDFS.
 */
import type { Consumer, EachBatchPayload } from "kafkajs";
import type { Config } from "../config.ts";
import { createKafka } from "../clients/kafka.ts";
import { createWebHdfs } from "../clients/webhdfs.ts";
import { createPool, type Pool } from "../clients/postgres.ts";
import { type Logger, logger } from "../log.ts";
import { HdfsCommitter } from "../zones/commit.ts";
import { type BatchLimits, DEFAULT_LIMITS, MicroBatch } from "./micro_batch.ts";
import { ParquetWriter } from "../zones/parquet_writer.ts";
import { MetricsAggregator } from "./metrics.ts";
import { MetricsWriter } from "./metrics_writer.ts";
import { type Failpoint, Failpoints } from "./failpoints.ts";
import {
  CONSUMER_BACKOFF,
  type ConsumerContext,
  type PartitionControl,
  RetryAborted,
} from "./context.ts";
import { PartitionOwnership, type PartitionState } from "./partitions.ts";
import { BatchFlusher } from "./flush.ts";
import { ingestRecord } from "./ingest.ts";
import { retry } from "../async.ts";

export { FAIL_PHASES, type FailPhase, type Failpoint } from "./failpoints.ts";

/**
 * Fetch limits, in compressed bytes as the broker sends them. kafkajs
 * decompresses and decodes a whole fetch before the first eachBatch, and a
 * record batch of compressible records grows ~1,000:1 when it does: on the
 * poison topic (20,000 records, 72 of them 2 MB of one repeated character,
 * gzip) a 1 MiB fetch held up to ~60 MB of records, and the consumer's peak
 * RSS was 281–286 MB. Half of that (512 KiB, 128 KiB a partition) peaks at
 * 239–246 MB, and 1,000,000 typical events ran as fast (24.3–27.5k against
 * 25.9–28.1k events/s in alternating runs). The broker still sends a record
 * batch larger than these whole, so a 4 MiB record is never stuck.
 */
const FETCH_MAX_BYTES = 512 * 1024;
const FETCH_MAX_BYTES_PER_PARTITION = 128 * 1024;

export interface StreamConsumerOptions {
  config: Config;
  limits?: BatchLimits;
  /** Commit everything up to the end offsets seen at start, then stop. */
  untilCaughtUp?: boolean;
  /** How often live metrics are written (default DEFAULT_METRICS_INTERVAL_MS). */
  metricsIntervalMs?: number;
  /** Kafka group session timeout (default 30 s). */
  sessionTimeoutMs?: number;
  /** Write live metrics to Postgres (default true). */
  metrics?: boolean;
  failpoint?: Failpoint;
  /**
   * When HDFS holds a partition beyond the end of Kafka's log (topic
   * re-created, broker data lost), start it again from its earliest offset
   * instead of stopping with an error.
   */
  resetToEarliest?: boolean;
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

/**
 * Live metrics are written twice a second: an event is on the live pages
 * about 0.25 s (at most ~0.5 s plus the write) after it was consumed; the
 * rest of the event → live API budget (p95 ≤ 2 s at 2,000 events/s) goes to
 * the producer's batching, the fetch and the API's poll.
 */
export const DEFAULT_METRICS_INTERVAL_MS = 500;

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
  #ownership!: PartitionOwnership;
  #flusher!: BatchFlusher;
  #pool: Pool | undefined;
  #metricsWriter: MetricsWriter | undefined;
  #scratch: string;
  #ctx: ConsumerContext;

  #peakRss = 0;
  #inBatch: Promise<void> = Promise.resolve();
  #heartbeat: (() => Promise<void>) | undefined;
  #targets: Map<number, number> | undefined;
  #groupOffsets = new Map<number, number>();
  #stopping = false;
  /** Aborted by a second stop(): give up on open batches. */
  #force = new AbortController();
  #stopRequested!: () => void;
  #stopPromise: Promise<void>;
  #fatal: Error | undefined;
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
    this.#ctx = {
      topic: this.topic,
      log: this.log,
      forceSignal: this.#force.signal,
      retry: (what, fn) => this.#retry(what, fn),
      fail: (err) => {
        this.#fatal = err instanceof Error ? err : new Error(String(err));
        this.stop();
      },
    };
  }

  /** Asks the consumer to finish its open batches, commit and return. A second call gives up on them. */
  stop(): void {
    if (this.#stopping && !this.#force.signal.aborted) {
      this.#force.abort(new RetryAborted("retry abandoned"));
    }
    this.#stopping = true;
    this.#stopRequested();
  }

  #retry<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return retry(fn, {
      ...CONSUMER_BACKOFF,
      maxAttempts: Infinity,
      signal: this.#force.signal,
      onRetry: async (err, attempt, delayMs) => {
        this.#lastError = `${what}: ${
          err instanceof Error ? err.message : err
        }`;
        this.#state = "backing-off";
        this.log.warn("retrying", { what, attempt, delayMs, error: err });
        // Stay in the group while we wait (eachBatch is blocked meanwhile).
        try {
          await this.#heartbeat?.();
        } catch (e) {
          if (isRebalancing(e)) this.#ownership.onRebalancing();
        }
      },
    });
  }

  /** The kafkajs consumer operations, by partition of our topic. */
  #control(): PartitionControl {
    const topic = this.topic;
    return {
      pause: (partitions) => this.#consumer.pause([{ topic, partitions }]),
      resume: (partitions) => this.#consumer.resume([{ topic, partitions }]),
      seek: (partition, offset) =>
        this.#consumer.seek({ topic, partition, offset: String(offset) }),
      commitOffset: (partition, offset) =>
        this.#consumer.commitOffsets([
          { topic, partition, offset: String(offset) },
        ]),
    };
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
      // kafkajs's admin lists offsets with read_committed: `high` is the
      // last stable offset, i.e. the end of what was committed (or aborted)
      // at start; a transaction still open then is not waited for.
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
      maxBytesPerPartition: FETCH_MAX_BYTES_PER_PARTITION,
      maxBytes: FETCH_MAX_BYTES,
      maxWaitTimeInMs: 200,
      retry: { retries: 10 },
      // read_committed (kafkajs's default, stated here because the zones
      // depend on it): records of aborted transactions never reach HDFS.
      readUncommitted: false,
    });
    const control = this.#control();
    this.#ownership = new PartitionOwnership(
      this.#ctx,
      control,
      this.#admin,
      this.#committer,
      this.config.kafka.consumerGroup,
      () => this.#flusher.settle(),
      this.#metricsWriter && {
        claim: (parts) => this.#metricsWriter!.claim(parts),
        reset: (p, epoch, last) =>
          this.#metricsWriter!.resetCounted(p, epoch, last),
        start: (p, epoch) => this.metrics.startCounting(p, epoch),
        stop: (p) => this.metrics.stopCounting(p),
      },
      (range) => {
        this.log.warn("offsets skipped", { ...range });
        this.metrics.recordSkipped(range);
      },
      this.#opts.resetToEarliest ?? false,
    );
    this.#flusher = new BatchFlusher(
      this.#ctx,
      this.#ownership,
      this.#committer,
      this.#parquet,
      control,
      this.metrics,
      new Failpoints(this.#opts.failpoint, this.log),
      () => {
        if (this.#state === "backing-off") this.#state = "running";
      },
    );
    const { GROUP_JOIN, REBALANCING, CRASH, END_BATCH_PROCESS } =
      this.#consumer.events;
    // kafkajs 2.2.4 does not call eachBatch for a fetched batch whose records
    // were all filtered out (transaction markers, aborted transactions'
    // records): it moves its own position past them and reports the batch
    // only through this event (batchSize 0; firstOffset null when nothing was
    // fetched at all).
    this.#consumer.on(END_BATCH_PROCESS, (e) => {
      const { topic, partition, batchSize, firstOffset, lastOffset } =
        e.payload;
      if (topic !== this.topic || batchSize !== 0 || firstOffset == null) {
        return;
      }
      const st = this.#ownership.ready(partition);
      if (st) {
        this.#fetchedThrough(st, Number(firstOffset), Number(lastOffset));
      }
    });
    this.#consumer.on(
      GROUP_JOIN,
      (e) => this.#ownership.onJoin(e.payload.memberAssignment),
    );
    this.#consumer.on(REBALANCING, () => this.#ownership.onRebalancing());
    this.#consumer.on(CRASH, (e) => {
      const err = e.payload.error;
      this.log.error("kafka consumer crashed", {
        error: err,
        restart: e.payload.restart,
      });
      if (!e.payload.restart) this.#ctx.fail(err);
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
    const metricsEvery = this.#opts.metricsIntervalMs ??
      DEFAULT_METRICS_INTERVAL_MS;
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
        await this.#flusher.flushAll("stop").catch((err) => {
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
      for (const st of this.#ownership.states.values()) {
        await st.buffer?.discard();
      }
      await Deno.remove(this.#scratch, { recursive: true }).catch(() => {});
    }
    if (this.#fatal) throw this.#fatal;
    const t = this.metrics.totals;
    return {
      instanceId: this.instanceId,
      ...t,
      batches: this.#flusher.batches,
      elapsedMs: Math.round(performance.now() - t0),
      caughtUp: this.#caughtUp,
      peakRssBytes: this.#peakRss,
      positions: this.#ownership.positions(),
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

  // ---------------------------------------------------------- hot path --

  async #eachBatch(payload: EachBatchPayload): Promise<void> {
    const { batch, resolveOffset, heartbeat, isStale } = payload;
    this.#heartbeat = heartbeat;
    const own = this.#ownership;
    const p = batch.partition;
    const st = own.ready(p);
    if (this.#stopping || !st || isStale()) return;
    const gen = own.generation;
    // The batch's first offset counts the records not delivered (markers,
    // aborted transactions): offsets are contiguous from there, so a hole is
    // only between where the fetch was and where the batch starts.
    const first = batch.firstOffset();
    if (first !== null && Number(first) > st.fetchedOffset) {
      own.gap(p, st.fetchedOffset, Number(first));
      st.fetchedOffset = Number(first);
    }
    let taken = 0;
    let below = 0;
    let lastSeen: string | undefined;
    let whole = true;
    for (const m of batch.messages) {
      if (this.#stopping || gen !== own.generation || !st.ready) {
        whole = false;
        break;
      }
      const off = Number(m.offset);
      lastSeen = m.offset;
      if (off < st.consumedOffset) {
        below++; // delivered again after a seek
        continue;
      }
      // Below nextOffset a record is in HDFS already; below countFrom it is
      // counted already (live metrics): each is done once.
      const take = off >= st.nextOffset;
      const count = off >= st.countFrom;
      if (take && !st.buffer) {
        st.buffer = new MicroBatch(this.topic, p, this.#scratch);
      }
      if (take || count) {
        ingestRecord(
          take ? st.buffer : undefined,
          count ? this.metrics : undefined,
          this.topic,
          p,
          m,
          this.instanceId,
          this.config.validation.maxFutureSkewMs,
        );
      }
      st.consumedOffset = off + 1;
      if (off >= st.fetchedOffset) st.fetchedOffset = off + 1;
      if (m.timestamp) st.lastKafkaTs = Number(m.timestamp);
      if (count) st.countFrom = off + 1;
      if (!take) continue;
      st.nextOffset = off + 1;
      taken++;
      if (st.buffer!.full(this.limits)) await this.#flusher.rotate(p, gen);
    }
    if (lastSeen !== undefined) resolveOffset(lastSeen);
    // Read to its end: the markers and aborted records after the last
    // message are behind us too (kafkajs resolves them with lastSeen).
    if (whole && first !== null) {
      this.#fetchedThrough(st, Number(first), Number(batch.lastOffset()));
    }
    if (below && below === batch.messages.length && !isStale()) {
      own.suspectRewind(p);
    }
    if (taken) this.metrics.recordIn(taken);
    // Due batches (age, caught-up) are flushed by the 100 ms tick in the
    // background; a FULL batch (above) is rotated here, after the
    // partition's previous flush: back-pressure.
    try {
      await heartbeat();
    } catch (err) {
      if (isRebalancing(err) && gen === own.generation) {
        // Still inside eachBatch: nobody else can own our partitions before
        // we return, so commit what we hold now.
        this.log.info(
          "rebalance announced: committing open batches before rejoining",
        );
        await this.#flusher.flushAll("rebalance");
      }
      throw err;
    }
  }

  // ------------------------------------------------------------ progress --

  /**
   * Kafka's fetch went through offsets `first`..`last` of the partition,
   * every record in them delivered and handled or never to be delivered
   * (markers, aborted transactions). Moves `fetchedOffset` past them when
   * the range starts at or before it: the log's contents at an offset never
   * change, so a range read before a seek proves as much as one read after
   * it, but a range that starts beyond `fetchedOffset` leaves a hole whose
   * records may not have been read (eachBatch reports real holes, retention,
   * when the next delivered batch starts past `fetchedOffset`).
   */
  #fetchedThrough(st: PartitionState, first: number, last: number): void {
    if (first <= st.fetchedOffset && last + 1 > st.fetchedOffset) {
      st.fetchedOffset = last + 1;
    }
  }

  /** Every record the partition's fetch went past below `target` is in HDFS. */
  #reached = (st: PartitionState, target: number): boolean =>
    st.durableOffset >= target ||
    (st.fetchedOffset >= target && st.nextOffset <= st.durableOffset);

  #due = (p: number, st: PartitionState): boolean =>
    !!st.buffer &&
    (st.buffer.due(this.limits) ||
      (!!this.#targets &&
        st.fetchedOffset >= (this.#targets.get(p) ?? Infinity)));

  #tick(): void {
    if (this.#stopping) return;
    this.#flusher.flushDue(this.#ownership.generation, this.#due);
    const mem = Deno.memoryUsage();
    if (mem.rss > this.#peakRss) {
      this.#peakRss = mem.rss;
      this.log.debug("memory", { ...mem });
    }
    this.#commitFetchedTails();
    if (this.#targets) this.#checkCaughtUp();
  }

  /** Partition → the offset last committed to Kafka past the HDFS position. */
  #tailCommits = new Map<number, number>();

  /**
   * Moves the group's Kafka offset past the transaction markers and aborted
   * records that follow the last batch in HDFS, once nothing taken is
   * waiting for HDFS. The group offset is a mirror (HDFS decides where
   * consumption resumes), but other `--until-caught-up` processes of the
   * group and external lag tools read it, and would otherwise wait forever
   * for the offsets of markers that no batch ever holds.
   */
  #commitFetchedTails(): void {
    const own = this.#ownership;
    const gen = own.generation;
    for (const [p, st] of own.states) {
      const offset = st.fetchedOffset;
      if (
        !own.owns(p, gen, st) || st.buffer ||
        st.nextOffset > st.durableOffset || offset <= st.durableOffset ||
        (this.#tailCommits.get(p) ?? -1) >= offset
      ) continue;
      this.#tailCommits.set(p, offset);
      this.#control().commitOffset(p, offset).catch((err) => {
        if (this.#tailCommits.get(p) === offset) this.#tailCommits.delete(p);
        this.log.debug("Kafka offset commit past markers failed", {
          partition: p,
          offset,
          error: err,
        });
      });
    }
  }

  #checkCaughtUp(): void {
    if (!this.#targets || this.#caughtUp || this.#stopping) return;
    for (const [p, target] of this.#targets) {
      if (target === 0) continue;
      const st = this.#ownership.ready(p);
      if (st) {
        if (!this.#reached(st, target)) return;
      } else if ((this.#groupOffsets.get(p) ?? -1) < target) return;
    }
    this.#caughtUp = true;
    this.log.info("caught up with the end offsets seen at start; stopping");
    this.stop();
  }

  async #writeMetrics(final = false): Promise<void> {
    // Lag is read from Kafka beside the write, not before it, so that a
    // slow broker answer never delays the counts (the lag rows then trail by
    // one write); the last write waits for it.
    const lag = this.#readLag(final);
    if (final) await lag;
    try {
      await this.#writeSnapshot();
    } finally {
      await lag;
    }
  }

  /** Positions of partitions owned elsewhere (--until-caught-up with several processes) and the lag of ours. */
  async #readLag(final: boolean): Promise<void> {
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
        const st = this.#ownership.ready(o.partition);
        if (!st) continue;
        const end = Number(o.high);
        // Lag = records not yet consumed (the live metrics count on
        // consumption); its age is that of the last record read (or the
        // assignment), a lower bound of the oldest unread record's.
        const lag = Math.max(0, end - st.fetchedOffset);
        const since = st.lastKafkaTs ?? st.lastProgressMs;
        this.metrics.setLag({
          partition: o.partition,
          committedOffset: st.durableOffset,
          consumedOffset: st.fetchedOffset,
          endOffset: end,
          lagOffsets: lag,
          lagSeconds: lag === 0 ? 0 : Math.max(0, (now - since) / 1000),
        });
      }
    } catch (err) {
      if (!final) this.log.debug("could not read end offsets", { error: err });
    }
  }

  async #writeSnapshot(): Promise<void> {
    if (!this.#metricsWriter) {
      this.metrics.drain();
      return;
    }
    await this.#ownership.retryClaims().catch((err) =>
      this.log.debug("live metrics: claim retry failed", { error: err })
    );
    const snap = this.metrics.drain();
    try {
      const { refused } = await this.#metricsWriter.write(snap, {
        instanceId: this.instanceId,
        state: this.#state,
        startedAt: this.#startedAt,
        detail: {
          topic: this.topic,
          group: this.config.kafka.consumerGroup,
          partitions: [...this.#ownership.assigned],
          positions: Object.fromEntries(
            [...this.#ownership.states].map(([p, s]) => [p, s.durableOffset]),
          ),
          totals: this.metrics.totals,
          batches: this.#flusher.batches,
          lastError: this.#lastError ?? null,
        },
      });
      for (const p of refused) {
        // Counts of an earlier claim (the partition was taken back since)
        // are just dropped; a refusal under the current claim means it is lost.
        const epoch = snap.partitions.find((pc) => pc.partition === p)?.epoch;
        if (epoch === this.metrics.countingEpoch(p)) {
          this.#ownership.countsRefused(p);
        }
      }
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
