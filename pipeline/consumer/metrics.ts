/**
 * Live metrics of the stream consumer, aggregated in memory and written to
 * Postgres `monitoring.*` every few seconds by metrics_writer.ts — never per
 * event, never on the hot path.
 *
 * Everything is counted when a micro-batch is COMMITTED (not when it is
 * read), so the counts describe what reached HDFS: a batch thrown away on a
 * rebalance and consumed again is not counted twice. Buckets are processing
 * time (the commit instant) floored to 10 s: a live page shows what the
 * pipeline is doing now, whatever timestamps the events carry. Latency is
 * event_ts → committed, per event.
 *
 * A crash can lose the last few seconds of not-yet-written metrics (they
 * undercount, never double count); the data itself is exact either way.
 */
import type { Event } from "../events/schema.ts";
import type { FlatRow } from "../events/flatten.ts";

/** Width of a live bucket. */
export const BUCKET_MS = 10_000;
/** Rows the live feed keeps. */
export const RECENT_EVENTS_LIMIT = 1_000;
/**
 * Newest events one micro-batch keeps for the feed. Batches of all
 * partitions commit every second or so, so the feed still fills to
 * RECENT_EVENTS_LIMIT, while open batches hold little memory.
 */
export const RECENT_PER_BATCH = 250;
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

/** One event of the live feed. */
export interface RecentItem {
  row: FlatRow;
  event: Event;
}

/** What one micro-batch contributes, gathered while it is built. */
export interface BatchStats {
  events: number;
  deadLetters: number;
  counts: Map<string, CountCell>;
  deadLetterReasons: Map<string, number>;
  /** event_ts of every valid event, epoch ms. */
  eventTsMs: number[];
  /** The newest events of the batch (about RECENT_PER_BATCH). */
  recent: RecentItem[];
}

const KEY_SEP = "\u0001";

/** An empty BatchStats. */
export function newBatchStats(): BatchStats {
  return {
    events: 0,
    deadLetters: 0,
    counts: new Map(),
    deadLetterReasons: new Map(),
    eventTsMs: [],
    recent: [],
  };
}

function cell(map: Map<string, CountCell>, key: string): CountCell {
  let c = map.get(key);
  if (!c) {
    c = { events: 0, orders: 0, failedOrders: 0, revenueCents: 0 };
    map.set(key, c);
  }
  return c;
}

/** Adds one valid event to a batch's stats. */
export function addEventStats(s: BatchStats, row: FlatRow, event: Event): void {
  s.events++;
  const c = cell(
    s.counts,
    row.event_type + KEY_SEP + row.geo_country + KEY_SEP + row.device_type +
      KEY_SEP + row.level,
  );
  c.events++;
  if (row.event_type === "order_complete") {
    c.orders++;
    if (row.amount !== null) c.revenueCents += Math.round(row.amount * 100);
  } else if (row.event_type === "order_failed") {
    c.failedOrders++;
  }
  s.eventTsMs.push(Date.parse(row.event_ts));
  s.recent.push({ row, event });
  if (s.recent.length > 2 * RECENT_PER_BATCH) {
    s.recent.splice(0, s.recent.length - RECENT_PER_BATCH);
  }
}

/** Adds one dead letter to a batch's stats. */
export function addDeadLetterStats(s: BatchStats, reason: string): void {
  s.deadLetters++;
  s.deadLetterReasons.set(reason, (s.deadLetterReasons.get(reason) ?? 0) + 1);
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

/** One row of monitoring.consumer_stats (counters are deltas; percentiles replace). */
export interface ConsumerStatsRow {
  bucket: number;
  recordsIn: number;
  eventsOut: number;
  deadLetters: number;
  filesWritten: number;
  bytesWritten: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

/** Lag of one partition owned by this consumer. */
export interface LagRow {
  partition: number;
  committedOffset: number;
  endOffset: number;
  lagOffsets: number;
  lagSeconds: number;
}

/** Everything written in one metrics flush. */
export interface MetricsSnapshot {
  eventCounts: EventCountRow[];
  consumerStats: ConsumerStatsRow[];
  deadLetters: Array<{ bucket: number; reason: string; records: number }>;
  recent: RecentItem[];
  lag: LagRow[];
}

interface StatsCell {
  recordsIn: number;
  eventsOut: number;
  deadLetters: number;
  filesWritten: number;
  bytesWritten: number;
}

interface LatencyReservoir {
  seen: number;
  sample: number[];
  dirty: boolean;
}

/**
 * In-memory accumulator between two flushes. `drain()` hands out the deltas
 * and resets them; `restore()` puts a snapshot back when writing failed, so a
 * Postgres outage delays metrics but loses none (up to a bound).
 */
export class MetricsAggregator {
  #counts = new Map<string, CountCell>();
  #stats = new Map<number, StatsCell>();
  #dead = new Map<string, number>();
  #latency = new Map<number, LatencyReservoir>();
  #recent: RecentItem[] = [];
  #lag = new Map<number, LagRow>();
  /** Totals since start (for the heartbeat and tests). */
  readonly totals = {
    recordsIn: 0,
    eventsOut: 0,
    deadLetters: 0,
    filesWritten: 0,
    bytesWritten: 0,
  };

  #statsCell(bucket: number): StatsCell {
    let c = this.#stats.get(bucket);
    if (!c) {
      c = {
        recordsIn: 0,
        eventsOut: 0,
        deadLetters: 0,
        filesWritten: 0,
        bytesWritten: 0,
      };
      this.#stats.set(bucket, c);
    }
    return c;
  }

  /** Records read from Kafka (throughput in). */
  recordIn(n: number, nowMs = Date.now()): void {
    this.#statsCell(bucketOf(nowMs)).recordsIn += n;
    this.totals.recordsIn += n;
  }

  /** A committed batch (throughput out, counts, latency, dead letters, files). */
  recordCommitted(
    s: BatchStats,
    files: number,
    bytes: number,
    commitMs = Date.now(),
  ): void {
    const bucket = bucketOf(commitMs);
    for (const [key, c] of s.counts) {
      const t = cell(this.#counts, bucket + KEY_SEP + key);
      t.events += c.events;
      t.orders += c.orders;
      t.failedOrders += c.failedOrders;
      t.revenueCents += c.revenueCents;
    }
    for (const [reason, n] of s.deadLetterReasons) {
      const k = bucket + KEY_SEP + reason;
      this.#dead.set(k, (this.#dead.get(k) ?? 0) + n);
    }
    const st = this.#statsCell(bucket);
    st.eventsOut += s.events;
    st.deadLetters += s.deadLetters;
    st.filesWritten += files;
    st.bytesWritten += bytes;
    this.totals.eventsOut += s.events;
    this.totals.deadLetters += s.deadLetters;
    this.totals.filesWritten += files;
    this.totals.bytesWritten += bytes;

    let r = this.#latency.get(bucket);
    if (!r) {
      r = { seen: 0, sample: [], dirty: false };
      this.#latency.set(bucket, r);
    }
    for (const ts of s.eventTsMs) {
      const lat = Math.max(0, commitMs - ts);
      r.seen++;
      if (r.sample.length < LATENCY_SAMPLE) r.sample.push(lat);
      else {
        // Reservoir sampling keeps a uniform sample of the whole bucket.
        const j = Math.floor(Math.random() * r.seen);
        if (j < LATENCY_SAMPLE) r.sample[j] = lat;
      }
    }
    if (s.eventTsMs.length) r.dirty = true;

    this.#recent.push(...s.recent.slice(-RECENT_EVENTS_LIMIT));
    if (this.#recent.length > RECENT_EVENTS_LIMIT) {
      this.#recent.splice(0, this.#recent.length - RECENT_EVENTS_LIMIT);
    }
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
    const eventCounts: EventCountRow[] = [];
    for (const [k, c] of this.#counts) {
      const [bucket, eventType, country, device, level] = k.split(KEY_SEP);
      eventCounts.push({
        bucket: Number(bucket),
        eventType,
        country,
        device,
        level,
        ...c,
      });
    }
    const buckets = new Set<number>([...this.#stats.keys()]);
    for (const [b, r] of this.#latency) if (r.dirty) buckets.add(b);
    const consumerStats: ConsumerStatsRow[] = [];
    for (const b of buckets) {
      const c = this.#stats.get(b) ??
        {
          recordsIn: 0,
          eventsOut: 0,
          deadLetters: 0,
          filesWritten: 0,
          bytesWritten: 0,
        };
      const r = this.#latency.get(b);
      let p50 = null, p95 = null, p99 = null;
      if (r && r.sample.length) {
        const sorted = Float64Array.from(r.sample).sort();
        p50 = percentile(sorted, 50);
        p95 = percentile(sorted, 95);
        p99 = percentile(sorted, 99);
        r.dirty = false;
      }
      consumerStats.push({ bucket: b, ...c, p50, p95, p99 });
    }
    const deadLetters = [...this.#dead].map(([k, records]) => {
      const [bucket, reason] = k.split(KEY_SEP);
      return { bucket: Number(bucket), reason, records };
    });
    const snap: MetricsSnapshot = {
      eventCounts,
      consumerStats,
      deadLetters,
      recent: this.#recent,
      lag: [...this.#lag.values()],
    };
    this.#counts = new Map();
    this.#stats = new Map();
    this.#dead = new Map();
    this.#recent = [];
    // Latency samples of a bucket stay until it is well in the past, so
    // percentiles are recomputed over the whole bucket, not per flush.
    for (const b of this.#latency.keys()) {
      if (b < nowMs - 6 * BUCKET_MS) this.#latency.delete(b);
    }
    return snap;
  }

  /** Puts a snapshot whose write failed back (its deltas add to newer ones). */
  restore(s: MetricsSnapshot): void {
    for (const r of s.eventCounts) {
      const c = cell(
        this.#counts,
        [r.bucket, r.eventType, r.country, r.device, r.level].join(KEY_SEP),
      );
      c.events += r.events;
      c.orders += r.orders;
      c.failedOrders += r.failedOrders;
      c.revenueCents += r.revenueCents;
    }
    for (const r of s.consumerStats) {
      const c = this.#statsCell(r.bucket);
      c.recordsIn += r.recordsIn;
      c.eventsOut += r.eventsOut;
      c.deadLetters += r.deadLetters;
      c.filesWritten += r.filesWritten;
      c.bytesWritten += r.bytesWritten;
      const lat = this.#latency.get(r.bucket);
      if (lat) lat.dirty = true;
    }
    for (const r of s.deadLetters) {
      const k = r.bucket + KEY_SEP + r.reason;
      this.#dead.set(k, (this.#dead.get(k) ?? 0) + r.records);
    }
    this.#recent = [...s.recent, ...this.#recent].slice(-RECENT_EVENTS_LIMIT);
    // Bound memory during a long outage: drop the oldest count cells.
    if (this.#counts.size > 200_000) {
      const keys = [...this.#counts.keys()].sort();
      for (const k of keys.slice(0, keys.length - 200_000)) {
        this.#counts.delete(k);
      }
    }
  }
}
