/**
 * Writes MetricsAggregator snapshots into Postgres `monitoring.*` (schema in
 * pipeline/migrations/020_monitoring.sql) in one transaction per flush:
 * additive upserts for counters, replace for percentiles and lag, the live
 * feed trimmed to the newest RECENT_EVENTS_LIMIT rows, and a heartbeat row in
 * `monitoring.components`. Old buckets are rolled up (10 s → 1 min after an
 * hour) and expired (after 7 days; per-consumer stats after 1 day) by
 * whichever consumer gets the advisory lock first.
 */
import type { Pool, PoolClient } from "../clients/postgres.ts";
import { withTransaction } from "../clients/postgres.ts";
import { type MetricsSnapshot, RECENT_EVENTS_LIMIT } from "./metrics.ts";

/** Heartbeat of this consumer process. */
export interface Heartbeat {
  instanceId: string;
  state: string;
  startedAt: Date;
  detail: Record<string, unknown>;
}

/** Text for Postgres: NUL is the one character text/jsonb cannot hold. */
function pgText(s: string | null): string | null {
  return s === null
    ? null
    : s.includes("\u0000")
    ? s.replaceAll("\u0000", "\ufffd")
    : s;
}

function pgJson(value: unknown): string {
  return JSON.stringify(value).replaceAll("\\u0000", "\\ufffd");
}

const ROLLUP_LOCK = "logpipe.monitoring.rollup";

/** Upserts metric snapshots; see the module comment. */
export class MetricsWriter {
  #lastRollup = 0;

  constructor(
    readonly pool: Pool,
    readonly topic: string,
    readonly consumerId: string,
    readonly opts: { rollupEveryMs?: number } = {},
  ) {}

  /** Writes one snapshot and the heartbeat; throws (caller restores) on failure. */
  async write(s: MetricsSnapshot, hb: Heartbeat): Promise<void> {
    await withTransaction(this.pool, async (c) => {
      if (s.eventCounts.length) await this.#eventCounts(c, s);
      if (s.consumerStats.length) await this.#consumerStats(c, s);
      if (s.deadLetters.length) await this.#deadLetters(c, s);
      if (s.recent.length) await this.#recent(c, s);
      if (s.lag.length) await this.#lag(c, s);
      await c.query(
        `insert into monitoring.components (component, instance_id, state, detail, started_at, updated_at)
         values ('consumer', $1, $2, $3::jsonb, $4, now())
         on conflict (component, instance_id) do update
           set state = excluded.state, detail = excluded.detail, updated_at = now()`,
        [hb.instanceId, hb.state, pgJson(hb.detail), hb.startedAt],
      );
    });
    const every = this.opts.rollupEveryMs ?? 60_000;
    if (Date.now() - this.#lastRollup >= every) {
      this.#lastRollup = Date.now();
      await this.rollup();
    }
  }

  async #eventCounts(c: PoolClient, s: MetricsSnapshot): Promise<void> {
    const r = s.eventCounts;
    await c.query(
      `insert into monitoring.event_counts
         (bucket, bucket_secs, event_type, geo_country, device_type, level, events, orders, failed_orders, revenue)
       select to_timestamp(b / 1000.0), 10, t, co, d, l, e, o, f, rc::numeric / 100
         from unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[],
                     $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[])
           as x(b, t, co, d, l, e, o, f, rc)
       on conflict (bucket, event_type, geo_country, device_type, level) do update set
         events = monitoring.event_counts.events + excluded.events,
         orders = monitoring.event_counts.orders + excluded.orders,
         failed_orders = monitoring.event_counts.failed_orders + excluded.failed_orders,
         revenue = monitoring.event_counts.revenue + excluded.revenue`,
      [
        r.map((x) => x.bucket),
        r.map((x) => pgText(x.eventType)),
        r.map((x) => pgText(x.country)),
        r.map((x) => pgText(x.device)),
        r.map((x) => pgText(x.level)),
        r.map((x) => x.events),
        r.map((x) => x.orders),
        r.map((x) => x.failedOrders),
        r.map((x) => x.revenueCents),
      ],
    );
  }

  async #consumerStats(c: PoolClient, s: MetricsSnapshot): Promise<void> {
    const r = s.consumerStats;
    await c.query(
      `insert into monitoring.consumer_stats
         (bucket, consumer_id, records_in, events_out, dead_letters, files_written, bytes_written,
          latency_p50_ms, latency_p95_ms, latency_p99_ms)
       select to_timestamp(b / 1000.0), $1, ri, eo, dl, fw, bw, p50, p95, p99
         from unnest($2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[],
                     $8::float8[], $9::float8[], $10::float8[])
           as x(b, ri, eo, dl, fw, bw, p50, p95, p99)
       on conflict (bucket, consumer_id) do update set
         records_in = monitoring.consumer_stats.records_in + excluded.records_in,
         events_out = monitoring.consumer_stats.events_out + excluded.events_out,
         dead_letters = monitoring.consumer_stats.dead_letters + excluded.dead_letters,
         files_written = monitoring.consumer_stats.files_written + excluded.files_written,
         bytes_written = monitoring.consumer_stats.bytes_written + excluded.bytes_written,
         latency_p50_ms = coalesce(excluded.latency_p50_ms, monitoring.consumer_stats.latency_p50_ms),
         latency_p95_ms = coalesce(excluded.latency_p95_ms, monitoring.consumer_stats.latency_p95_ms),
         latency_p99_ms = coalesce(excluded.latency_p99_ms, monitoring.consumer_stats.latency_p99_ms)`,
      [
        this.consumerId,
        r.map((x) => x.bucket),
        r.map((x) => x.recordsIn),
        r.map((x) => x.eventsOut),
        r.map((x) => x.deadLetters),
        r.map((x) => x.filesWritten),
        r.map((x) => x.bytesWritten),
        r.map((x) => x.p50),
        r.map((x) => x.p95),
        r.map((x) => x.p99),
      ],
    );
  }

  async #deadLetters(c: PoolClient, s: MetricsSnapshot): Promise<void> {
    const r = s.deadLetters;
    await c.query(
      `insert into monitoring.dead_letter_counts (bucket, reason, records)
       select to_timestamp(b / 1000.0), re, n
         from unnest($1::bigint[], $2::text[], $3::bigint[]) as x(b, re, n)
       on conflict (bucket, reason) do update
         set records = monitoring.dead_letter_counts.records + excluded.records`,
      [
        r.map((x) => x.bucket),
        r.map((x) => pgText(x.reason)),
        r.map((x) => x.records),
      ],
    );
  }

  async #recent(c: PoolClient, s: MetricsSnapshot): Promise<void> {
    const rows = s.recent.slice(-RECENT_EVENTS_LIMIT);
    const col = <T>(f: (x: (typeof rows)[number]) => T) => rows.map(f);
    await c.query(
      `insert into monitoring.recent_events
         (event_id, event_ts, event_type, level, service, user_id, session_id, device_type,
          geo_country, geo_city, response_time_ms, product_id, order_id, amount, search_query,
          error_code, event_json, kafka_partition, kafka_offset, committed_at)
       select * , clock_timestamp() from unnest(
         $1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
         $8::text[], $9::text[], $10::text[], $11::int[], $12::text[], $13::text[], $14::numeric[],
         $15::text[], $16::text[], $17::jsonb[], $18::int[], $19::bigint[])
       on conflict (event_id) do nothing`,
      [
        col((x) => pgText(x.row.event_id)),
        col((x) => x.row.event_ts),
        col((x) => pgText(x.row.event_type)),
        col((x) => pgText(x.row.level)),
        col((x) => pgText(x.row.service)),
        col((x) => pgText(x.row.user_id)),
        col((x) => pgText(x.row.session_id)),
        col((x) => pgText(x.row.device_type)),
        col((x) => pgText(x.row.geo_country)),
        col((x) => pgText(x.row.geo_city)),
        col((x) => x.row.response_time_ms),
        col((x) => pgText(x.row.product_id)),
        col((x) => pgText(x.row.order_id)),
        col((x) => x.row.amount),
        col((x) => pgText(x.row.search_query)),
        col((x) => pgText(x.row.error_code)),
        col((x) => pgJson(x.event)),
        col((x) => x.row.kafka_partition),
        col((x) => x.row.kafka_offset),
      ],
    );
    await c.query(
      `delete from monitoring.recent_events where event_id in (
         select event_id from monitoring.recent_events
          order by committed_at desc, event_ts desc, event_id desc offset $1)`,
      [RECENT_EVENTS_LIMIT],
    );
  }

  async #lag(c: PoolClient, s: MetricsSnapshot): Promise<void> {
    const r = s.lag;
    await c.query(
      `insert into monitoring.consumer_lag
         (topic, kafka_partition, committed_offset, end_offset, lag_offsets, lag_seconds, consumer_id, updated_at)
       select $1, p, co, eo, lo, ls, $2, now()
         from unnest($3::int[], $4::bigint[], $5::bigint[], $6::bigint[], $7::float8[]) as x(p, co, eo, lo, ls)
       on conflict (topic, kafka_partition) do update set
         committed_offset = excluded.committed_offset, end_offset = excluded.end_offset,
         lag_offsets = excluded.lag_offsets, lag_seconds = excluded.lag_seconds,
         consumer_id = excluded.consumer_id, updated_at = now()`,
      [
        this.topic,
        this.consumerId,
        r.map((x) => x.partition),
        r.map((x) => x.committedOffset),
        r.map((x) => x.endOffset),
        r.map((x) => x.lagOffsets),
        r.map((x) => x.lagSeconds),
      ],
    );
  }

  /**
   * Rolls 10-second buckets older than an hour up into 1-minute buckets and
   * expires old rows, under a transaction-scoped advisory lock so concurrent
   * consumers never roll the same rows twice. Returns false if another
   * consumer holds the lock.
   */
  async rollup(now = new Date()): Promise<boolean> {
    return await withTransaction(this.pool, async (c) => {
      const lock = await c.query(
        "select pg_try_advisory_xact_lock(hashtext($1)) as ok",
        [ROLLUP_LOCK],
      );
      if (!lock.rows[0].ok) return false;
      // Minute-aligned cutoff, so no minute is split between 10 s and 1 min rows.
      const cutoff = new Date(
        Math.floor((now.getTime() - 3_600_000) / 60_000) * 60_000,
      );
      await c.query(
        `create temp table _rollup on commit drop as
           select date_trunc('minute', bucket) as bucket, event_type, geo_country, device_type, level,
                  sum(events) as events, sum(orders) as orders, sum(failed_orders) as failed_orders,
                  sum(revenue) as revenue
             from monitoring.event_counts
            where bucket_secs = 10 and bucket < $1
            group by 1, 2, 3, 4, 5`,
        [cutoff],
      );
      await c.query(
        "delete from monitoring.event_counts where bucket_secs = 10 and bucket < $1",
        [cutoff],
      );
      await c.query(
        `insert into monitoring.event_counts
           (bucket, bucket_secs, event_type, geo_country, device_type, level, events, orders, failed_orders, revenue)
         select bucket, 60, event_type, geo_country, device_type, level, events, orders, failed_orders, revenue
           from _rollup
         on conflict (bucket, event_type, geo_country, device_type, level) do update set
           events = monitoring.event_counts.events + excluded.events,
           orders = monitoring.event_counts.orders + excluded.orders,
           failed_orders = monitoring.event_counts.failed_orders + excluded.failed_orders,
           revenue = monitoring.event_counts.revenue + excluded.revenue`,
      );
      await c.query(
        "delete from monitoring.event_counts where bucket < $1::timestamptz - interval '7 days'",
        [now],
      );
      await c.query(
        "delete from monitoring.dead_letter_counts where bucket < $1::timestamptz - interval '7 days'",
        [now],
      );
      await c.query(
        "delete from monitoring.consumer_stats where bucket < $1::timestamptz - interval '1 day'",
        [now],
      );
      await c.query(
        `delete from monitoring.components
          where component = 'consumer' and updated_at < $1::timestamptz - interval '1 day'`,
        [now],
      );
      return true;
    });
  }
}
