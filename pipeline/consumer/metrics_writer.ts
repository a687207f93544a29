/**
 * Writes MetricsAggregator snapshots into Postgres `monitoring.*` (schema in
 * pipeline/migrations/020_monitoring.sql and 052_consumer_live_counts.sql)
 * in one transaction per flush: additive upserts for counters, replace for
 * percentiles and lag, the live feed trimmed to the newest
 * RECENT_EVENTS_LIMIT rows, and a heartbeat row in `monitoring.components`.
 * Old buckets are rolled up (10 s → 1 min after an hour) and expired (after
 * 7 days; per-consumer stats after 1 day) by whichever consumer gets the
 * advisory lock first.
 *
 * Exactly once per Kafka offset: `monitoring.consumer_counted` holds, per
 * (topic, partition), the last offset counted and the claim (`owner_epoch`)
 * of the consumer counting it. A consumer claims its partitions when it is
 * assigned them (the epoch goes up by one, so an earlier owner's claim is
 * void) and learns where counting resumes. Each flush moves the last counted
 * offset of every partition it has counts for, only where its claim still
 * holds and the counts lie wholly beyond the stored offset, and adds exactly
 * those partitions' counts, in the same transaction.
 */
import type { Pool, PoolClient } from "../clients/postgres.ts";
import { withTransaction } from "../clients/postgres.ts";
import { eventOfRow, type FlatRow } from "../events/flatten.ts";
import {
  type ConsumerStatsRow,
  type EventCountRow,
  type MetricsSnapshot,
  RECENT_EVENTS_LIMIT,
} from "./metrics.ts";

/** A partition's counting claim: counts are written only while it holds. */
export interface CountClaim {
  partition: number;
  epoch: number;
  /** Last offset already counted (-1: none); counting resumes after it. */
  lastCounted: number;
}

/** What a write applied. */
export interface WriteResult {
  /** Partitions whose counts were refused (claim lost, or already counted). */
  refused: number[];
}

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

  /**
   * Claims counting for `partitions` (assignment): bumps each one's epoch,
   * creating the row with `initialLast` (the offset before the resume
   * point, so records already in HDFS before live counting existed are not
   * counted again) when there is none. Returns the claims.
   */
  async claim(
    partitions: Array<{ partition: number; initialLast: number }>,
  ): Promise<CountClaim[]> {
    if (!partitions.length) return [];
    const { rows } = await this.pool.query(
      `insert into monitoring.consumer_counted
         (topic, kafka_partition, owner_epoch, last_counted_offset, consumer_id, updated_at)
       select $1, p, 1, l, $2, now() from unnest($3::int[], $4::bigint[]) as x(p, l)
       on conflict (topic, kafka_partition) do update
         set owner_epoch = monitoring.consumer_counted.owner_epoch + 1,
             consumer_id = excluded.consumer_id, updated_at = now()
       returning kafka_partition, owner_epoch::float8 as epoch,
                 last_counted_offset::float8 as last`,
      [
        this.topic,
        this.consumerId,
        partitions.map((x) => x.partition),
        partitions.map((x) => x.initialLast),
      ],
    );
    return rows.map((r) => ({
      partition: r.kafka_partition as number,
      epoch: r.epoch as number,
      lastCounted: r.last as number,
    }));
  }

  /**
   * Resets the last counted offset of partition p to `last` under `epoch`
   * (after an explicit position reset: the offsets start over). False when
   * the claim no longer holds.
   */
  async resetCounted(p: number, epoch: number, last: number): Promise<boolean> {
    const { rowCount } = await this.pool.query(
      `update monitoring.consumer_counted set last_counted_offset = $4, updated_at = now()
        where topic = $1 and kafka_partition = $2 and owner_epoch = $3`,
      [this.topic, p, epoch, last],
    );
    return rowCount === 1;
  }

  /**
   * Writes one snapshot and the heartbeat; throws (caller restores) on
   * failure. Counts of partitions whose claim no longer holds (or that are
   * already counted) are refused: not written, and the caller drops them.
   */
  async write(s: MetricsSnapshot, hb: Heartbeat): Promise<WriteResult> {
    const refused: number[] = [];
    await withTransaction(this.pool, async (c) => {
      const accepted = await this.#advance(c, s);
      refused.length = 0;
      for (const pc of s.partitions) {
        if (!accepted.has(pc.partition)) refused.push(pc.partition);
      }
      const parts = s.partitions.filter((pc) => accepted.has(pc.partition));
      // One row per key: partitions' counts of the same cell add up here
      // (an upsert may not touch a row twice).
      const cells = new Map<string, EventCountRow>();
      for (const r of parts.flatMap((pc) => pc.eventCounts)) {
        const k = [r.bucket, r.eventType, r.country, r.device, r.level].join(
          "\u0001",
        );
        const c = cells.get(k);
        if (!c) cells.set(k, { ...r });
        else {
          c.events += r.events;
          c.orders += r.orders;
          c.failedOrders += r.failedOrders;
          c.revenueCents += r.revenueCents;
        }
      }
      const eventCounts = [...cells.values()];
      const reasons = new Map<
        string,
        { bucket: number; reason: string; records: number }
      >();
      for (const r of parts.flatMap((pc) => pc.deadLetters)) {
        const k = `${r.bucket}\u0001${r.reason}`;
        const c = reasons.get(k);
        if (!c) reasons.set(k, { ...r });
        else c.records += r.records;
      }
      const deadLetters = [...reasons.values()];
      const stats = new Map<number, ConsumerStatsRow>();
      for (const r of s.consumerStats) stats.set(r.bucket, { ...r });
      for (const pc of parts) {
        for (const r of pc.records) {
          const row = stats.get(r.bucket) ?? {
            bucket: r.bucket,
            recordsIn: 0,
            eventsOut: 0,
            deadLetters: 0,
            filesWritten: 0,
            bytesWritten: 0,
            p50: null,
            p95: null,
            p99: null,
          };
          row.recordsIn += r.recordsIn;
          row.eventsOut += r.eventsOut;
          row.deadLetters += r.deadLetters;
          stats.set(r.bucket, row);
        }
      }
      if (eventCounts.length) await this.#eventCounts(c, eventCounts);
      if (stats.size) await this.#consumerStats(c, [...stats.values()]);
      if (deadLetters.length) await this.#deadLetters(c, deadLetters);
      if (s.recent.length) await this.#recent(c, s);
      if (s.lag.length) await this.#lag(c, s);
      if (s.skipped.length) await this.#skipped(c, s);
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
    return { refused };
  }

  /**
   * Moves the last counted offset of each partition of the snapshot whose
   * claim holds and whose counts lie wholly beyond it; returns those.
   */
  async #advance(c: PoolClient, s: MetricsSnapshot): Promise<Set<number>> {
    const parts = s.partitions;
    if (!parts.length) return new Set();
    const { rows } = await c.query(
      `update monitoring.consumer_counted t
          set last_counted_offset = x.l, consumer_id = $2, updated_at = now()
         from unnest($3::int[], $4::bigint[], $5::bigint[], $6::bigint[]) as x(p, e, f, l)
        where t.topic = $1 and t.kafka_partition = x.p and t.owner_epoch = x.e
          and t.last_counted_offset < x.f
       returning t.kafka_partition`,
      [
        this.topic,
        this.consumerId,
        parts.map((pc) => pc.partition),
        parts.map((pc) => pc.epoch),
        parts.map((pc) => pc.firstOffset),
        parts.map((pc) => pc.lastOffset),
      ],
    );
    return new Set(rows.map((r) => r.kafka_partition as number));
  }

  async #eventCounts(c: PoolClient, r: EventCountRow[]): Promise<void> {
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

  async #consumerStats(c: PoolClient, r: ConsumerStatsRow[]): Promise<void> {
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

  async #deadLetters(
    c: PoolClient,
    r: MetricsSnapshot["partitions"][number]["deadLetters"],
  ): Promise<void> {
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
    const rows = s.recent.slice(-RECENT_EVENTS_LIMIT).map((x) => {
      const row = JSON.parse(x.line) as FlatRow;
      return { row, event: eventOfRow(row) };
    });
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

  async #skipped(c: PoolClient, s: MetricsSnapshot): Promise<void> {
    const r = s.skipped;
    await c.query(
      `insert into monitoring.skipped_offsets
         (topic, kafka_partition, from_offset, to_offset, reason, detail, consumer_id, detected_at)
       select $1, p, f, t, re, d, $2, to_timestamp(at / 1000.0)
         from unnest($3::int[], $4::bigint[], $5::bigint[], $6::text[], $7::text[], $8::float8[])
           as x(p, f, t, re, d, at)`,
      [
        this.topic,
        this.consumerId,
        r.map((x) => x.partition),
        r.map((x) => x.fromOffset),
        r.map((x) => x.toOffset),
        r.map((x) => x.reason),
        r.map((x) => pgText(x.detail)),
        r.map((x) => x.atMs),
      ],
    );
  }

  async #lag(c: PoolClient, s: MetricsSnapshot): Promise<void> {
    const r = s.lag;
    await c.query(
      `insert into monitoring.consumer_lag
         (topic, kafka_partition, committed_offset, consumed_offset, end_offset, lag_offsets, lag_seconds,
          consumer_id, updated_at)
       select $1, p, co, cu, eo, lo, ls, $2, now()
         from unnest($3::int[], $4::bigint[], $5::bigint[], $6::bigint[], $7::float8[], $8::bigint[])
           as x(p, co, eo, lo, ls, cu)
       on conflict (topic, kafka_partition) do update set
         committed_offset = excluded.committed_offset, consumed_offset = excluded.consumed_offset,
         end_offset = excluded.end_offset,
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
        r.map((x) => x.consumedOffset),
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
        "delete from monitoring.skipped_offsets where detected_at < $1::timestamptz - interval '30 days'",
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
