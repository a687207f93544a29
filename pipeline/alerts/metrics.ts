/**
 * The metric readings of alert rules: one bounded, parameterised SQL query
 * per metric over `monitoring.*` (filled by the stream consumer) and
 * `ops.dag_runs` (the batch), plus consumer lag read from Kafka itself.
 *
 * "now" is a parameter (tests pin it). Windows look back from now over the
 * consumer's 10-second buckets (processing time). Each reading returns the
 * value, the sample count min_events is compared with, and a few details
 * for the message (e.g. "412 errors of 1,030 events").
 */
import type { Admin } from "kafkajs";
import {
  type AlertRule,
  type RuleFilter,
  UnknownMetricError,
} from "./rules.ts";
import type { Observation } from "./state_machine.ts";

/** What the queries need from a pg Pool or client. */
export interface Db {
  query<R = Record<string, unknown>>(
    text: string,
    values?: unknown[],
  ): Promise<{ rows: R[] }>;
}

/** A metric reading with details for messages and the site. */
export interface Reading extends Observation {
  detail: Record<string, number | string | null>;
}

/** Reads consumer lag (seconds, worst partition); null = unknown. */
export type LagReader = (now: Date) => Promise<LagReading | null>;

export interface LagReading {
  seconds: number;
  offsets: number;
  partitions: number;
  source: "kafka" | "monitoring";
}

function filterSql(
  f: RuleFilter,
  values: unknown[],
): string {
  const parts: string[] = [];
  const add = (column: string, list?: string[]) => {
    if (!list?.length) return;
    values.push(list);
    parts.push(`and ${column} = any($${values.length}::text[])`);
  };
  add("event_type", f.event_type);
  add("geo_country", f.country);
  add("device_type", f.device);
  return parts.join(" ");
}

/** Width of the consumer's live buckets (pipeline/consumer/metrics.ts). */
const BUCKET_SECS = 10;

/**
 * The window as whole, complete buckets: [end - window, end) with end = the
 * start of the current bucket. The current bucket is still filling (the
 * consumer adds to it every few seconds), so counting it would make a
 * 10-second window read a fraction of the real rate right after each bucket
 * boundary; whole buckets read the same rate whenever they are asked.
 */
export function bucketWindow(
  now: Date,
  windowSecs: number,
): { from: Date; to: Date } {
  const bucketMs = BUCKET_SECS * 1000;
  const to = Math.floor(now.getTime() / bucketMs) * bucketMs;
  const span = Math.max(1, Math.ceil(windowSecs / BUCKET_SECS)) * bucketMs;
  return { from: new Date(to - span), to: new Date(to) };
}

/**
 * Seconds of the window that the consumer could have filled: the window,
 * but no further back than the first bucket it ever wrote (a pipeline that
 * started two minutes ago is judged on two minutes, not on five).
 * Null when no bucket was ever written (nothing to judge yet).
 */
async function coveredSecs(
  db: Db,
  table: "monitoring.event_counts" | "monitoring.dead_letter_counts",
  win: { from: Date; to: Date },
): Promise<number | null> {
  const { rows } = await db.query<{ first: Date | null }>(
    `select min(bucket) as first from ${table}`,
  );
  const first = rows[0]?.first;
  if (!first || first >= win.to) return null;
  const since = Math.max(win.from.getTime(), first.getTime());
  return (win.to.getTime() - since) / 1000;
}

/**
 * Reads the current value of `rule`'s metric. Throws UnknownMetricError for
 * a metric that is not one of METRICS (`constructor` included).
 */
export async function readMetric(
  db: Db,
  rule: Pick<AlertRule, "metric" | "filter" | "window_secs">,
  now: Date,
  lag?: LagReader,
): Promise<Reading> {
  const w = rule.window_secs;
  const win = bucketWindow(now, w);
  switch (rule.metric) {
    case "error_rate":
    case "failed_order_rate":
    case "events_per_minute": {
      const values: unknown[] = [win.from, win.to];
      const where = filterSql(rule.filter, values);
      const { rows } = await db.query<{
        events: number;
        errors: number;
        orders: number;
        failed: number;
      }>(
        `select coalesce(sum(events), 0)::float8 as events,
                coalesce(sum(events) filter (where level = 'ERROR'), 0)::float8 as errors,
                coalesce(sum(orders), 0)::float8 as orders,
                coalesce(sum(failed_orders), 0)::float8 as failed
           from monitoring.event_counts
          where bucket >= $1 and bucket < $2 ${where}`,
        values,
      );
      const r = rows[0];
      if (rule.metric === "error_rate") {
        return {
          value: r.events > 0 ? (100 * r.errors) / r.events : null,
          samples: r.events,
          detail: { errors: r.errors, events: r.events },
        };
      }
      if (rule.metric === "failed_order_rate") {
        const attempts = r.orders + r.failed;
        return {
          value: attempts > 0 ? (100 * r.failed) / attempts : null,
          samples: attempts,
          detail: { failed_orders: r.failed, completed_orders: r.orders },
        };
      }
      const secs = await coveredSecs(db, "monitoring.event_counts", win);
      return {
        value: secs === null ? null : r.events / (secs / 60),
        samples: r.events,
        detail: { events: r.events, seconds: secs },
      };
    }
    case "dead_letters_per_minute": {
      const { rows } = await db.query<{ records: number }>(
        `select coalesce(sum(records), 0)::float8 as records
           from monitoring.dead_letter_counts
          where bucket >= $1 and bucket < $2`,
        [win.from, win.to],
      );
      // No dead letter ever is a rate of 0, not "no data"; the consumer's
      // running time is read from the event counts.
      const secs = await coveredSecs(db, "monitoring.event_counts", win) ??
        (win.to.getTime() - win.from.getTime()) / 1000;
      return {
        value: rows[0].records / (secs / 60),
        samples: rows[0].records,
        detail: { dead_letters: rows[0].records, seconds: secs },
      };
    }
    case "latency_p95_ms": {
      const { rows } = await db.query<{ p95: number | null; events: number }>(
        `select sum(latency_p95_ms * events_out) / nullif(sum(events_out), 0) as p95,
                coalesce(sum(events_out), 0)::float8 as events
           from monitoring.consumer_stats
          where bucket >= $1 and bucket < $2
            and latency_p95_ms is not null`,
        [win.from, win.to],
      );
      return {
        value: rows[0].p95,
        samples: rows[0].events,
        detail: { events: rows[0].events },
      };
    }
    case "consumer_lag_seconds": {
      const reading = lag ? await lag(now) : await lagFromMonitoring(db, now);
      return {
        value: reading?.seconds ?? null,
        samples: null,
        detail: reading
          ? {
            lag_offsets: reading.offsets,
            partitions: reading.partitions,
            source: reading.source,
          }
          : {},
      };
    }
    case "revenue_vs_hour_avg": {
      const values: unknown[] = [
        win.to,
        (win.to.getTime() - win.from.getTime()) / 1000,
      ];
      const where = filterSql(rule.filter, values);
      const { rows } = await db.query<
        { day: number; revenue: number; events: number }
      >(
        `select d as day,
                coalesce(sum(c.revenue), 0)::float8 as revenue,
                coalesce(sum(c.events), 0)::float8 as events
           from generate_series(0, 7) as d
           left join monitoring.event_counts c
             on c.bucket >= $1::timestamptz - make_interval(days => d, secs => $2)
            and c.bucket < $1::timestamptz - make_interval(days => d) ${where}
          group by d order by d`,
        values,
      );
      const current = rows.find((r) => r.day === 0)?.revenue ?? 0;
      // Only days the pipeline was running count towards the average.
      const baseline = rows.filter((r) => r.day > 0 && r.events > 0);
      const avg = baseline.length
        ? baseline.reduce((a, r) => a + r.revenue, 0) / baseline.length
        : 0;
      return {
        value: avg > 0 ? (100 * current) / avg : null,
        samples: baseline.length,
        detail: {
          revenue: round2(current),
          baseline_avg: round2(avg),
          baseline_days: baseline.length,
        },
      };
    }
    case "skipped_offsets": {
      const { rows } = await db.query<{ records: number; ranges: number }>(
        `select coalesce(sum(to_offset - from_offset), 0)::float8 as records,
                count(*)::float8 as ranges
           from monitoring.skipped_offsets
          where detected_at >= $1 and detected_at < $2`,
        [new Date(now.getTime() - w * 1000), now],
      );
      return {
        value: rows[0].records,
        samples: null,
        detail: { skipped_records: rows[0].records, ranges: rows[0].ranges },
      };
    }
    case "minutes_since_last_batch": {
      const { rows } = await db.query<
        { last_success: Date | null; first_run: Date | null }
      >(
        `select max(ended_at) filter (where state in ('success', 'success_with_warnings')) as last_success,
                min(started_at) as first_run
           from ops.dag_runs`,
      );
      const ref = rows[0].last_success ?? rows[0].first_run;
      return {
        value: ref
          ? Math.max(0, (now.getTime() - ref.getTime()) / 60_000)
          : null,
        samples: null,
        detail: {
          last_success: rows[0].last_success?.toISOString() ?? null,
        },
      };
    }
    default: {
      // Validated rules never get here; a row written by hand or before the
      // CHECK on alert_rules.metric must fail loudly (the evaluator records
      // the error on that rule alone), never read as "no data".
      const unknown: never = rule.metric;
      throw new UnknownMetricError(String(unknown));
    }
  }
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}

/**
 * Lag from monitoring.consumer_lag (what the consumer last reported). A
 * partition whose row has not been refreshed for `staleSecs` belongs to a
 * consumer that stopped reporting: if it was behind, it is behind by its
 * reported lag plus the time since. Used when Kafka cannot be asked.
 */
export async function lagFromMonitoring(
  db: Db,
  now: Date,
): Promise<LagReading | null> {
  const { rows } = await db.query<
    { lag_offsets: number; lag_seconds: number; updated_at: Date }
  >(
    `select lag_offsets::float8 as lag_offsets, lag_seconds, updated_at
       from monitoring.consumer_lag`,
  );
  if (!rows.length) return null;
  let seconds = 0;
  let offsets = 0;
  for (const r of rows) {
    offsets += r.lag_offsets;
    const age = Math.max(0, (now.getTime() - r.updated_at.getTime()) / 1000);
    const s = r.lag_offsets > 0 ? r.lag_seconds + age : r.lag_seconds;
    seconds = Math.max(seconds, s);
  }
  return { seconds, offsets, partitions: rows.length, source: "monitoring" };
}

/**
 * Consumer lag straight from Kafka, so it is right even when the consumer is
 * down and reports nothing: per partition, the group's committed offset C
 * (the consumer commits only what is durable in HDFS) against the end
 * offset. The lag in seconds is the age of the oldest record not yet
 * committed, i.e. the timestamp of record C over all lagging partitions,
 * found by a galloping binary search on ListOffsets-by-timestamp (a few
 * dozen cheap requests, however many partitions lag).
 */
export async function lagFromKafka(
  admin: Admin,
  topic: string,
  groupId: string,
  now: Date,
): Promise<LagReading> {
  const [ends, committed] = await Promise.all([
    admin.fetchTopicOffsets(topic),
    admin.fetchOffsets({ groupId, topics: [topic] }),
  ]);
  const groupOffsets = new Map<number, number>();
  for (const p of committed[0]?.partitions ?? []) {
    groupOffsets.set(p.partition, Number(p.offset));
  }
  const lagging = new Map<number, number>(); // partition → first uncommitted offset
  let offsets = 0;
  for (const e of ends) {
    const high = Number(e.high);
    const low = Number(e.low);
    let c = groupOffsets.get(e.partition) ?? -1;
    if (c < low) c = low; // never committed (or below retention): from the start
    if (high > c) {
      lagging.set(e.partition, c);
      offsets += high - c;
    }
  }
  if (!lagging.size) {
    return { seconds: 0, offsets: 0, partitions: ends.length, source: "kafka" };
  }
  // P(t): every lagging partition's first record at/after t is at or before
  // its committed offset, i.e. min over partitions of ts(C_p) >= t.
  const holds = async (t: number) => {
    const at = await admin.fetchTopicOffsetsByTimestamp(topic, t);
    return at.every((o) => {
      const c = lagging.get(o.partition);
      return c === undefined || Number(o.offset) <= c;
    });
  };
  let hi = now.getTime() + 1;
  if (await holds(hi)) {
    // Record timestamps in the future (clock skew): no measurable age.
    return { seconds: 0, offsets, partitions: ends.length, source: "kafka" };
  }
  // Gallop back from now (lags are usually short), then bisect to 250 ms.
  const oldest = now.getTime() - 8 * 86_400_000; // older than any retained record
  let lo = oldest;
  for (let back = 1000; now.getTime() - back > oldest; back *= 2) {
    const t = now.getTime() - back;
    if (await holds(t)) {
      lo = t;
      break;
    }
    hi = t;
  }
  while (hi - lo > 250) {
    const mid = Math.floor((lo + hi) / 2);
    if (await holds(mid)) lo = mid;
    else hi = mid;
  }
  return {
    seconds: Math.max(0, (now.getTime() - lo) / 1000),
    offsets,
    partitions: ends.length,
    source: "kafka",
  };
}
