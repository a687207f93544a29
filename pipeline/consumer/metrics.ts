/**
 * Live metrics of the stream consumer, aggregated in memory and written to
 * Postgres `monitoring.*` every second or so by metrics_writer.ts — never
 * per event, never on the hot path.
 *
 * Records are counted when they are CONSUMED, not when their file is
 * committed: files rotate every few minutes (micro_batch.ts), the live
 * pages stay fresh within seconds. Counting is exactly once per Kafka
 * offset: the counts of each partition are kept apart with the highest
 * offset they cover, and metrics_writer.ts applies a partition's counts only
 * in the transaction that moves that partition's last counted offset past
 * them (and only while this consumer's claim on the partition holds). After
 * a crash the new owner reads the last counted offset and counts only what
 * lies beyond it, so a replay adds nothing twice; counts not yet written
 * when a process dies are counted again by the next owner, which re-reads
 * those records.
 *
 * Buckets are processing time (when a record was consumed) floored to
 * 10 s: a live page shows what the pipeline is doing now, whatever
 * timestamps the events carry. Latency is event_ts → written to the live
 * metrics (what a live page can see), per event.
 */
import type { FlatRow } from "../events/flatten.ts";

/** Width of a live bucket. */
export const BUCKET_MS = 10_000;
/** Rows the live feed keeps. */
export const RECENT_EVENTS_LIMIT = 1_000;
/**
 * Bytes (Kafka value bytes) of the events the live-feed sample may hold
 * between two writes: ~1,000 typical events, only a few dozen of the
 * largest valid ones, so the sample's memory does not depend on event size.
 */
export const RECENT_EVENTS_BYTES = 1024 * 1024;
/** Latency samples kept per bucket (reservoir). */
const LATENCY_SAMPLE = 20_000;

/** Counts of one (event_type, country, device, level) cell. */
export interface CountCell {
  events: number;
  orders: number;
  failedOrders: number;
  /** Revenue of completed orders in cents (exact). */
  revenueCents: number;
}

/**
 * One event of the live feed: its flat row as JSON text (the line the
 * micro-batch already holds), parsed again only for the events a write
 * takes. One string per event instead of the parsed event and row (a dozen
 * objects) is what makes holding the newest ~2,000 events cheap: whatever
 * the sample holds survives young-generation collections and is copied to
 * the old generation, and at tens of thousands of events/s holding the
 * parsed objects cost ~6 µs an event in garbage collection.
 */
export interface RecentItem {
  line: string;
  /** Size of the record's value (the sample is bounded by it). */
  bytes: number;
}

const KEY_SEP = "\u0001";

function cell(map: Map<string, CountCell>, key: string): CountCell {
  let c = map.get(key);
  if (!c) {
    c = { events: 0, orders: 0, failedOrders: 0, revenueCents: 0 };
    map.set(key, c);
  }
  return c;
}

/** Nearest-rank percentile of a sorted array. */
export function percentile(
  sorted: ArrayLike<number>,
  p: number,
): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

/** Floors an instant to its bucket start. */
export function bucketOf(ms: number): number {
  return Math.floor(ms / BUCKET_MS) * BUCKET_MS;
}

/** One row of monitoring.event_counts (a delta to add). */
export interface EventCountRow extends CountCell {
  bucket: number;
  eventType: string;
  country: string;
  device: string;
  level: string;
}

/** Record counts of one bucket (deltas). */
export interface RecordCountRow {
  bucket: number;
  recordsIn: number;
  eventsOut: number;
  deadLetters: number;
}

/** One row of monitoring.consumer_stats (counters are deltas; percentiles replace). */
export interface ConsumerStatsRow extends RecordCountRow {
  filesWritten: number;
  bytesWritten: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

/** Lag of one partition owned by this consumer. */
export interface LagRow {
  partition: number;
  /** Next offset not yet durable in HDFS. */
  committedOffset: number;
  /**
   * Next offset not yet consumed: records before it are counted in the live
   * metrics, or are transaction markers and aborted records never delivered.
   */
  consumedOffset: number;
  endOffset: number;
  /** Records not yet consumed. */
  lagOffsets: number;
  lagSeconds: number;
}

/** The counts of one partition's records in one snapshot: applied whole or not at all. */
export interface PartitionCounts {
  partition: number;
  /** The counting claim they were counted under (metrics_writer.ts). */
  epoch: number;
  /** Smallest and largest offset counted. */
  firstOffset: number;
  lastOffset: number;
  eventCounts: EventCountRow[];
  deadLetters: Array<{ bucket: number; reason: string; records: number }>;
  records: RecordCountRow[];
}

/** An offset range skipped by the consumer (partitions.ts SkippedRange). */
export interface SkippedRow {
  partition: number;
  fromOffset: number;
  toOffset: number;
  reason: string;
  detail: string;
  atMs: number;
}

/** Everything written in one metrics flush. */
export interface MetricsSnapshot {
  /** Exactly-once counts, per partition. */
  partitions: PartitionCounts[];
  /** Files, bytes and latency percentiles per bucket (not per offset). */
  consumerStats: ConsumerStatsRow[];
  recent: RecentItem[];
  lag: LagRow[];
  skipped: SkippedRow[];
}

interface BucketCounts {
  recordsIn: number;
  eventsOut: number;
  deadLetters: number;
  counts: Map<string, CountCell>;
  deadReasons: Map<string, number>;
}

interface PartitionPending {
  epoch: number;
  firstOffset: number;
  lastOffset: number;
  buckets: Map<number, BucketCounts>;
}

interface FileStats {
  filesWritten: number;
  bytesWritten: number;
}

interface LatencyReservoir {
  seen: number;
  sample: number[];
  dirty: boolean;
}

function newBucketCounts(): BucketCounts {
  return {
    recordsIn: 0,
    eventsOut: 0,
    deadLetters: 0,
    counts: new Map(),
    deadReasons: new Map(),
  };
}

/**
 * In-memory accumulator between two flushes. `drain()` hands out the deltas
 * and resets them; `restore()` puts a snapshot back when writing failed, so a
 * Postgres outage delays metrics but loses none (up to a bound).
 */
export class MetricsAggregator {
  #partitions = new Map<number, PartitionPending>();
  /** Counting claim per partition (startCounting). */
  #epochs = new Map<number, number>();
  #files = new Map<number, FileStats>();
  /** event_ts (epoch ms) per bucket since the last drain (reservoir). */
  #pendingTs = new Map<number, LatencyReservoir>();
  #latency = new Map<number, LatencyReservoir>();
  #recent: RecentItem[] = [];
  #recentBytes = 0;
  #lag = new Map<number, LagRow>();
  #skipped: SkippedRow[] = [];
  /** Totals since start (for the heartbeat, the summary and tests). */
  readonly totals = {
    recordsIn: 0,
    eventsOut: 0,
    deadLetters: 0,
    filesWritten: 0,
    bytesWritten: 0,
  };

  /**
   * Partition p is counted under claim `epoch` from now on: counts of an
   * earlier claim not yet written are dropped (the records they cover are
   * counted again after the claim's last counted offset).
   */
  startCounting(p: number, epoch: number): void {
    this.#partitions.delete(p);
    this.#epochs.set(p, epoch);
  }

  /** The claim partition p is counted under (undefined: not counted). */
  countingEpoch(p: number): number | undefined {
    return this.#epochs.get(p);
  }

  /** Partition p is no longer counted here; its unwritten counts are dropped. */
  stopCounting(p: number): void {
    this.#partitions.delete(p);
    this.#epochs.delete(p);
  }

  #bucket(p: number, offset: number, nowMs: number): BucketCounts {
    let part = this.#partitions.get(p);
    if (!part) {
      const epoch = this.#epochs.get(p);
      if (epoch === undefined) {
        throw new RangeError(`partition ${p} is not being counted`);
      }
      part = {
        epoch,
        firstOffset: offset,
        lastOffset: offset,
        buckets: new Map(),
      };
      this.#partitions.set(p, part);
    }
    if (offset <= part.lastOffset && part.buckets.size) {
      throw new RangeError(
        `offset ${offset} of partition ${p} counted after ${part.lastOffset}`,
      );
    }
    part.lastOffset = offset;
    const b = bucketOf(nowMs);
    let c = part.buckets.get(b);
    if (!c) {
      c = newBucketCounts();
      part.buckets.set(b, c);
    }
    return c;
  }

  /** Counts one consumed valid event (partition p, Kafka offset). */
  countEvent(
    p: number,
    offset: number,
    row: FlatRow,
    /** `row` as JSON (JSON.stringify), kept for the live feed. */
    line: string,
    valueBytes: number,
    nowMs = Date.now(),
  ): void {
    const c = this.#bucket(p, offset, nowMs);
    c.recordsIn++;
    c.eventsOut++;
    const k = cell(
      c.counts,
      row.event_type + KEY_SEP + row.geo_country + KEY_SEP + row.device_type +
        KEY_SEP + row.level,
    );
    k.events++;
    if (row.event_type === "order_complete") {
      k.orders++;
      if (row.amount !== null) k.revenueCents += Math.round(row.amount * 100);
    } else if (row.event_type === "order_failed") {
      k.failedOrders++;
    }
    this.#sampleTs(bucketOf(nowMs), Date.parse(row.event_ts));
    this.#recent.push({ line, bytes: valueBytes });
    this.#recentBytes += valueBytes;
    this.#trimRecent();
  }

  /** Counts one consumed record that went to the dead-letter zone. */
  countDeadLetter(
    p: number,
    offset: number,
    reason: string,
    nowMs = Date.now(),
  ): void {
    const c = this.#bucket(p, offset, nowMs);
    c.recordsIn++;
    c.deadLetters++;
    c.deadReasons.set(reason, (c.deadReasons.get(reason) ?? 0) + 1);
  }

  #sampleTs(bucket: number, ts: number): void {
    let r = this.#pendingTs.get(bucket);
    if (!r) {
      r = { seen: 0, sample: [], dirty: true };
      this.#pendingTs.set(bucket, r);
    }
    reservoirAdd(r, ts);
  }

  /**
   * Keeps the feed sample within RECENT_EVENTS_LIMIT items and
   * RECENT_EVENTS_BYTES, trimming lazily (at twice the bounds) so the hot
   * path does not shift the array for every event.
   */
  #trimRecent(exact = false): void {
    const slack = exact ? 1 : 2;
    if (
      this.#recent.length <= slack * RECENT_EVENTS_LIMIT &&
      this.#recentBytes <= slack * RECENT_EVENTS_BYTES
    ) return;
    let drop = 0;
    while (
      this.#recent.length - drop > 1 &&
      (this.#recent.length - drop > RECENT_EVENTS_LIMIT ||
        this.#recentBytes > RECENT_EVENTS_BYTES)
    ) {
      this.#recentBytes -= this.#recent[drop++].bytes;
    }
    this.#recent.splice(0, drop);
  }

  /** Records taken from Kafka by this process (the run summary). */
  recordIn(n: number): void {
    this.totals.recordsIn += n;
  }

  /** A committed batch: its files and bytes, and what reached HDFS. */
  recordCommitted(
    events: number,
    deadLetters: number,
    files: number,
    bytes: number,
    commitMs = Date.now(),
  ): void {
    const b = bucketOf(commitMs);
    const f = this.#files.get(b) ?? { filesWritten: 0, bytesWritten: 0 };
    f.filesWritten += files;
    f.bytesWritten += bytes;
    this.#files.set(b, f);
    this.totals.eventsOut += events;
    this.totals.deadLetters += deadLetters;
    this.totals.filesWritten += files;
    this.totals.bytesWritten += bytes;
  }

  /** An offset range the consumer skipped (written with the next snapshot). */
  recordSkipped(
    r: Omit<SkippedRow, "atMs">,
    nowMs = Date.now(),
  ): void {
    // Bounded: a storm of gaps keeps the latest 1,000 until written.
    if (this.#skipped.length >= 1_000) this.#skipped.shift();
    this.#skipped.push({ ...r, atMs: nowMs });
  }

  /** Latest lag of an owned partition (replaces the previous value). */
  setLag(row: LagRow): void {
    this.#lag.set(row.partition, row);
  }

  /** Forgets the lag of partitions no longer owned. */
  retainLag(owned: Set<number>): void {
    for (const p of this.#lag.keys()) if (!owned.has(p)) this.#lag.delete(p);
  }

  /** Takes the deltas accumulated since the last drain. */
  drain(nowMs = Date.now()): MetricsSnapshot {
    const partitions: PartitionCounts[] = [];
    for (const [p, part] of this.#partitions) {
      partitions.push(partitionCounts(p, part));
    }
    // Latency = now (the write) − event time, for the events counted since
    // the last drain, added to their bucket's reservoir.
    for (const [b, pending] of this.#pendingTs) {
      let r = this.#latency.get(b);
      if (!r) {
        r = { seen: 0, sample: [], dirty: false };
        this.#latency.set(b, r);
      }
      for (const ts of pending.sample) reservoirAdd(r, Math.max(0, nowMs - ts));
      // The reservoir held a sample of `seen` events: count the rest too.
      r.seen += pending.seen - pending.sample.length;
      r.dirty = true;
    }
    const buckets = new Set<number>(this.#files.keys());
    for (const [b, r] of this.#latency) if (r.dirty) buckets.add(b);
    const consumerStats: ConsumerStatsRow[] = [];
    for (const b of buckets) {
      const f = this.#files.get(b) ?? { filesWritten: 0, bytesWritten: 0 };
      const r = this.#latency.get(b);
      let p50 = null, p95 = null, p99 = null;
      if (r && r.sample.length && r.dirty) {
        const sorted = Float64Array.from(r.sample).sort();
        p50 = percentile(sorted, 50);
        p95 = percentile(sorted, 95);
        p99 = percentile(sorted, 99);
        r.dirty = false;
      }
      consumerStats.push({
        bucket: b,
        recordsIn: 0,
        eventsOut: 0,
        deadLetters: 0,
        ...f,
        p50,
        p95,
        p99,
      });
    }
    this.#trimRecent(true);
    const snap: MetricsSnapshot = {
      partitions,
      consumerStats,
      recent: this.#recent,
      lag: [...this.#lag.values()],
      skipped: this.#skipped,
    };
    this.#skipped = [];
    this.#partitions = new Map();
    this.#files = new Map();
    this.#pendingTs = new Map();
    this.#recent = [];
    this.#recentBytes = 0;
    // Latency samples of a bucket stay until it is well in the past, so
    // percentiles are recomputed over the whole bucket, not per flush.
    for (const b of this.#latency.keys()) {
      if (b < nowMs - 6 * BUCKET_MS) this.#latency.delete(b);
    }
    return snap;
  }

  /**
   * Puts a snapshot whose write failed back (its deltas add to newer ones);
   * counts made under a claim that has changed since are dropped.
   */
  restore(s: MetricsSnapshot): void {
    for (const pc of s.partitions) {
      if (this.#epochs.get(pc.partition) !== pc.epoch) continue;
      let part = this.#partitions.get(pc.partition);
      if (!part) {
        part = {
          epoch: pc.epoch,
          firstOffset: pc.firstOffset,
          lastOffset: pc.lastOffset,
          buckets: new Map(),
        };
        this.#partitions.set(pc.partition, part);
      }
      part.firstOffset = Math.min(part.firstOffset, pc.firstOffset);
      part.lastOffset = Math.max(part.lastOffset, pc.lastOffset);
      const at = (b: number) => {
        let c = part.buckets.get(b);
        if (!c) {
          c = newBucketCounts();
          part.buckets.set(b, c);
        }
        return c;
      };
      for (const r of pc.records) {
        const c = at(r.bucket);
        c.recordsIn += r.recordsIn;
        c.eventsOut += r.eventsOut;
        c.deadLetters += r.deadLetters;
      }
      for (const r of pc.eventCounts) {
        const c = cell(
          at(r.bucket).counts,
          [r.eventType, r.country, r.device, r.level].join(KEY_SEP),
        );
        c.events += r.events;
        c.orders += r.orders;
        c.failedOrders += r.failedOrders;
        c.revenueCents += r.revenueCents;
      }
      for (const r of pc.deadLetters) {
        const c = at(r.bucket);
        c.deadReasons.set(
          r.reason,
          (c.deadReasons.get(r.reason) ?? 0) + r.records,
        );
      }
      // Bound memory during a long outage: merge the oldest buckets.
      if (part.buckets.size > 8_640) {
        const keys = [...part.buckets.keys()].sort((a, b) => a - b);
        for (const k of keys.slice(0, keys.length - 8_640)) {
          const c = part.buckets.get(k)!;
          part.buckets.delete(k);
          const into = part.buckets.get(keys[keys.length - 8_640])!;
          into.recordsIn += c.recordsIn;
          into.eventsOut += c.eventsOut;
          into.deadLetters += c.deadLetters;
          for (const [ck, v] of c.counts) {
            const t = cell(into.counts, ck);
            t.events += v.events;
            t.orders += v.orders;
            t.failedOrders += v.failedOrders;
            t.revenueCents += v.revenueCents;
          }
          for (const [r, n] of c.deadReasons) {
            into.deadReasons.set(r, (into.deadReasons.get(r) ?? 0) + n);
          }
        }
      }
    }
    for (const r of s.consumerStats) {
      const f = this.#files.get(r.bucket) ??
        { filesWritten: 0, bytesWritten: 0 };
      f.filesWritten += r.filesWritten;
      f.bytesWritten += r.bytesWritten;
      this.#files.set(r.bucket, f);
      const lat = this.#latency.get(r.bucket);
      if (lat) lat.dirty = true;
    }
    this.#skipped = [...s.skipped, ...this.#skipped].slice(-1_000);
    this.#recent = [...s.recent, ...this.#recent];
    this.#recentBytes = this.#recent.reduce((a, r) => a + r.bytes, 0);
    this.#trimRecent(true);
  }
}

function reservoirAdd(r: LatencyReservoir, v: number): void {
  r.seen++;
  if (r.sample.length < LATENCY_SAMPLE) r.sample.push(v);
  else {
    // Reservoir sampling keeps a uniform sample of the whole bucket.
    const j = Math.floor(Math.random() * r.seen);
    if (j < LATENCY_SAMPLE) r.sample[j] = v;
  }
}

function partitionCounts(p: number, part: PartitionPending): PartitionCounts {
  const eventCounts: EventCountRow[] = [];
  const deadLetters: PartitionCounts["deadLetters"] = [];
  const records: RecordCountRow[] = [];
  for (const [bucket, c] of part.buckets) {
    records.push({
      bucket,
      recordsIn: c.recordsIn,
      eventsOut: c.eventsOut,
      deadLetters: c.deadLetters,
    });
    for (const [k, v] of c.counts) {
      const [eventType, country, device, level] = k.split(KEY_SEP);
      eventCounts.push({ bucket, eventType, country, device, level, ...v });
    }
    for (const [reason, n] of c.deadReasons) {
      deadLetters.push({ bucket, reason, records: n });
    }
  }
  return {
    partition: p,
    epoch: part.epoch,
    firstOffset: part.firstOffset,
    lastOffset: part.lastOffset,
    eventCounts,
    deadLetters,
    records,
  };
}
