/**
 * The API's read-only SQL over `monitoring.*`, `ops.*` (and row estimates of
 * `raw`/`analytics`). Every value is bound as a parameter; every result is
 * bounded (LIMIT, or aggregated into at most a few hundred buckets).
 */

/** What the queries need from a pg Pool (or client). */
export interface Db {
  query<R = Record<string, unknown>>(
    text: string,
    values?: unknown[],
  ): Promise<{ rows: R[] }>;
}

/** Filters shared by the event endpoints (all optional but the window). */
export interface EventFilter {
  /** Look back this many seconds from now. */
  windowSecs: number;
  eventTypes?: string[];
  countries?: string[];
  devices?: string[];
  levels?: string[];
}

/** Builds `where` clauses + values for an EventFilter on a table alias. */
export function eventWhere(
  f: EventFilter,
  tsColumn: string,
  values: unknown[] = [],
): { sql: string; values: unknown[] } {
  const parts: string[] = [];
  values.push(f.windowSecs);
  parts.push(`${tsColumn} > now() - make_interval(secs => $${values.length})`);
  const inList = (column: string, list?: string[]) => {
    if (!list?.length) return;
    values.push(list);
    parts.push(`${column} = any($${values.length}::text[])`);
  };
  inList("event_type", f.eventTypes);
  inList("geo_country", f.countries);
  inList("device_type", f.devices);
  inList("level", f.levels);
  return { sql: parts.join(" and "), values };
}

/**
 * Chart step for a window: about 60-180 points whatever the window, never
 * finer than the 10-second buckets the consumer writes.
 */
export function seriesStep(windowSecs: number): number {
  for (const step of [10, 30, 60, 300, 900, 1800, 3600]) {
    if (windowSecs / step <= 180) return step;
  }
  return 3600;
}

export interface EventStats {
  windowSecs: number;
  stepSecs: number;
  totals: {
    events: number;
    errors: number;
    orders: number;
    failedOrders: number;
    revenue: number;
    errorRate: number | null;
    failedOrderRate: number | null;
    aov: number | null;
    eventsPerSec: number;
  };
  byType: { event_type: string; events: number }[];
  byCountry: {
    geo_country: string;
    events: number;
    errors: number;
    orders: number;
    revenue: number;
  }[];
  byDevice: { device_type: string; events: number }[];
  series: { t: string; event_type: string; events: number; per_sec: number }[];
  errorSeries: { t: string; events: number; errors: number; rate: number }[];
}

const ratio = (a: number, b: number) => (b > 0 ? a / b : null);

/** Totals, breakdowns and per-step series from monitoring.event_counts. */
export async function eventStats(db: Db, f: EventFilter): Promise<EventStats> {
  const w = eventWhere(f, "bucket");
  const groups = await db.query<{
    g_type: number;
    g_country: number;
    g_device: number;
    event_type: string | null;
    geo_country: string | null;
    device_type: string | null;
    events: number;
    errors: number;
    orders: number;
    failed_orders: number;
    revenue: number;
  }>(
    `select grouping(event_type)::int as g_type,
            grouping(geo_country)::int as g_country,
            grouping(device_type)::int as g_device,
            event_type, geo_country, device_type,
            sum(events)::float8 as events,
            coalesce(sum(events) filter (where level = 'ERROR'), 0)::float8 as errors,
            sum(orders)::float8 as orders,
            sum(failed_orders)::float8 as failed_orders,
            sum(revenue)::float8 as revenue
       from monitoring.event_counts
      where ${w.sql}
      group by grouping sets ((event_type), (geo_country), (device_type), ())`,
    w.values,
  );
  const total = groups.rows.find((r) => r.g_type && r.g_country && r.g_device);
  const events = total?.events ?? 0;
  const errors = total?.errors ?? 0;
  const orders = total?.orders ?? 0;
  const failedOrders = total?.failed_orders ?? 0;
  const revenue = total?.revenue ?? 0;
  const byType = groups.rows.filter((r) => !r.g_type)
    .map((r) => ({ event_type: r.event_type!, events: r.events }))
    .sort((a, b) => b.events - a.events);
  const byCountry = groups.rows.filter((r) => !r.g_country)
    .map((r) => ({
      geo_country: r.geo_country!,
      events: r.events,
      errors: r.errors,
      orders: r.orders,
      revenue: r.revenue,
    }))
    .sort((a, b) => b.events - a.events);
  const byDevice = groups.rows.filter((r) => !r.g_device)
    .map((r) => ({ device_type: r.device_type!, events: r.events }))
    .sort((a, b) => b.events - a.events);

  const step = seriesStep(f.windowSecs);
  const s = eventWhere(f, "bucket");
  s.values.push(step);
  const series = await db.query<
    { t: Date; event_type: string; events: number; errors: number }
  >(
    `select date_bin(make_interval(secs => $${s.values.length}), bucket,
                     timestamptz 'epoch') as t,
            event_type,
            sum(events)::float8 as events,
            coalesce(sum(events) filter (where level = 'ERROR'), 0)::float8 as errors
       from monitoring.event_counts
      where ${s.sql}
      group by 1, 2
      order by 1, 2`,
    s.values,
  );
  const perStep = new Map<string, { events: number; errors: number }>();
  for (const r of series.rows) {
    const key = r.t.toISOString();
    const acc = perStep.get(key) ?? { events: 0, errors: 0 };
    acc.events += r.events;
    acc.errors += r.errors;
    perStep.set(key, acc);
  }
  return {
    windowSecs: f.windowSecs,
    stepSecs: step,
    totals: {
      events,
      errors,
      orders,
      failedOrders,
      revenue: Math.round(revenue * 100) / 100,
      errorRate: ratio(errors, events),
      failedOrderRate: ratio(failedOrders, orders + failedOrders),
      aov: orders > 0 ? Math.round((revenue / orders) * 100) / 100 : null,
      eventsPerSec: events / f.windowSecs,
    },
    byType,
    byCountry,
    byDevice,
    series: series.rows.map((r) => ({
      t: r.t.toISOString(),
      event_type: r.event_type,
      events: r.events,
      per_sec: r.events / step,
    })),
    errorSeries: [...perStep].map(([t, v]) => ({
      t,
      events: v.events,
      errors: v.errors,
      rate: v.events > 0 ? v.errors / v.events : 0,
    })),
  };
}

/** Columns of the live feed (event_json only in the single-event endpoint). */
export const RECENT_COLUMNS = [
  "event_id",
  "event_ts",
  "event_type",
  "level",
  "service",
  "user_id",
  "session_id",
  "device_type",
  "geo_country",
  "geo_city",
  "response_time_ms",
  "product_id",
  "order_id",
  "amount",
  "search_query",
  "error_code",
  "kafka_partition",
  "kafka_offset",
  "committed_at",
] as const;

/** The newest events matching the filter, newest first. */
export async function recentEvents(
  db: Db,
  f: EventFilter,
  limit: number,
  query?: string,
): Promise<Record<string, unknown>[]> {
  const w = eventWhere(f, "event_ts");
  let sql = w.sql;
  if (query) {
    // A plain substring match: the pattern's own wildcards are escaped.
    w.values.push(`%${query.replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
    sql += ` and search_query ilike $${w.values.length}`;
  }
  w.values.push(limit);
  const { rows } = await db.query(
    `select ${
      RECENT_COLUMNS.map((c) =>
        c === "amount"
          ? "amount::float8 as amount"
          : c === "kafka_offset"
          ? "kafka_offset::float8 as kafka_offset"
          : c
      ).join(", ")
    }
       from monitoring.recent_events
      where ${sql}
      order by event_ts desc, event_id
      limit $${w.values.length}`,
    w.values,
  );
  return rows;
}

/** One event from the live feed with every field (undefined if not there). */
export async function recentEvent(
  db: Db,
  eventId: string,
): Promise<Record<string, unknown> | undefined> {
  const { rows } = await db.query(
    `select ${RECENT_COLUMNS.join(", ")}, event_json
       from monitoring.recent_events where event_id = $1`,
    [eventId],
  );
  return rows[0];
}

/** Events per country and city among the recent events (the live sample). */
export async function recentCities(
  db: Db,
  f: EventFilter,
): Promise<{ geo_country: string; geo_city: string; events: number }[]> {
  const w = eventWhere(f, "event_ts");
  const { rows } = await db.query<
    { geo_country: string; geo_city: string; events: number }
  >(
    `select geo_country, geo_city, count(*)::float8 as events
       from monitoring.recent_events
      where ${w.sql}
      group by 1, 2
      order by 3 desc, 1, 2
      limit 500`,
    w.values,
  );
  return rows;
}

/** Consumer throughput, files/bytes and latency per step. */
export async function throughput(db: Db, windowSecs: number) {
  const step = seriesStep(windowSecs);
  const { rows } = await db.query<{
    t: Date;
    records_in: number;
    events_out: number;
    dead_letters: number;
    files_written: number;
    bytes_written: number;
    p50: number | null;
    p95: number | null;
    p99: number | null;
  }>(
    `select date_bin(make_interval(secs => $2), bucket, timestamptz 'epoch') as t,
            sum(records_in)::float8 as records_in,
            sum(events_out)::float8 as events_out,
            sum(dead_letters)::float8 as dead_letters,
            sum(files_written)::float8 as files_written,
            sum(bytes_written)::float8 as bytes_written,
            max(latency_p50_ms) as p50,
            max(latency_p95_ms) as p95,
            max(latency_p99_ms) as p99
       from monitoring.consumer_stats
      where bucket > now() - make_interval(secs => $1)
      group by 1 order by 1`,
    [windowSecs, step],
  );
  const sum = (k: keyof (typeof rows)[number]) =>
    rows.reduce((a, r) => a + (Number(r[k]) || 0), 0);
  const latest = await db.query<{
    bucket: Date;
    p50: number | null;
    p95: number | null;
    p99: number | null;
  }>(
    `select bucket, max(latency_p50_ms) as p50, max(latency_p95_ms) as p95,
            max(latency_p99_ms) as p99
       from monitoring.consumer_stats
      where bucket > now() - make_interval(secs => $1)
        and latency_p50_ms is not null
      group by bucket order by bucket desc limit 1`,
    [windowSecs],
  );
  return {
    windowSecs,
    stepSecs: step,
    totals: {
      recordsIn: sum("records_in"),
      eventsOut: sum("events_out"),
      deadLetters: sum("dead_letters"),
      filesWritten: sum("files_written"),
      bytesWritten: sum("bytes_written"),
      inPerSec: sum("records_in") / windowSecs,
      outPerSec: sum("events_out") / windowSecs,
    },
    latestLatency: latest.rows[0] ?? null,
    series: rows.map((r) => ({
      ...r,
      t: r.t.toISOString(),
      in_per_sec: r.records_in / step,
      out_per_sec: r.events_out / step,
    })),
  };
}

/** Lag per partition (offsets and seconds). */
export async function consumerLag(db: Db) {
  const { rows } = await db.query(
    `select topic, kafka_partition, committed_offset::float8 as committed_offset,
            end_offset::float8 as end_offset, lag_offsets::float8 as lag_offsets,
            lag_seconds, consumer_id, updated_at,
            extract(epoch from now() - updated_at)::float8 as age_secs
       from monitoring.consumer_lag
      order by topic, kafka_partition
      limit 1000`,
  );
  return rows;
}

/** Dead letters by reason over the window, plus a per-step series. */
export async function deadLetters(db: Db, windowSecs: number) {
  const step = seriesStep(windowSecs);
  const byReason = await db.query(
    `select reason, sum(records)::float8 as records
       from monitoring.dead_letter_counts
      where bucket > now() - make_interval(secs => $1)
      group by reason order by 2 desc, 1 limit 100`,
    [windowSecs],
  );
  const series = await db.query<{ t: Date; reason: string; records: number }>(
    `select date_bin(make_interval(secs => $2), bucket, timestamptz 'epoch') as t,
            reason, sum(records)::float8 as records
       from monitoring.dead_letter_counts
      where bucket > now() - make_interval(secs => $1)
      group by 1, 2 order by 1, 2 limit 2000`,
    [windowSecs, step],
  );
  return {
    windowSecs,
    stepSecs: step,
    byReason: byReason.rows,
    series: series.rows.map((r) => ({ ...r, t: r.t.toISOString() })),
  };
}

/** Heartbeats of running components; stale after `staleSecs`. */
export async function components(db: Db, staleSecs = 30) {
  const { rows } = await db.query(
    `select component, instance_id, state, detail, started_at, updated_at,
            extract(epoch from now() - updated_at)::float8 as age_secs,
            (now() - updated_at > make_interval(secs => $1)) as stale
       from monitoring.components
      order by component, instance_id
      limit 200`,
    [staleSecs],
  );
  return rows;
}

/** The last `limit` batch runs with their task tries (the Airflow-style grid). */
export async function batchRuns(db: Db, limit: number) {
  const runs = await db.query<{ run_id: string }>(
    `select run_id, dag_id, trigger, state, started_at, ended_at, duration_ms::float8 as duration_ms,
            rows_loaded::float8 as rows_loaded, files_loaded, warnings, error
       from ops.dag_runs
      order by started_at desc, run_id
      limit $1`,
    [limit],
  );
  const ids = runs.rows.map((r) => r.run_id);
  const tasks = ids.length
    ? await db.query(
      `select run_id, task_group, task_id, try_number, state, started_at,
              ended_at, duration_ms::float8 as duration_ms, rows::float8 as rows, error
         from ops.task_runs
        where run_id = any($1::text[])
        order by started_at, task_id, try_number`,
      [ids],
    )
    : { rows: [] };
  return { runs: runs.rows, tasks: tasks.rows };
}

/**
 * What the batch set aside: quarantined rows and files (newest first, the
 * row as escaped JSON text, clipped) with counts by reason and status, and
 * the duplicates it did not load, by kind.
 */
export async function quarantine(
  db: Db,
  opts: { status: string; reasons?: string[]; limit: number },
) {
  const items = await db.query(
    `select id::float8 as id, scope, reason, sqlstate, detail, source_path,
            kafka_partition, first_offset::float8 as first_offset,
            last_offset::float8 as last_offset, event_id,
            left(row_json, 2000) as row_json, hdfs_path, run_id, quarantined_at,
            status, attempts, last_attempt_error, resolution, reloaded_by
       from raw.quarantine
      where ($1 = 'all' or status = $1) and ($2::text[] is null or reason = any($2))
      order by quarantined_at desc, id desc
      limit $3`,
    [opts.status, opts.reasons ?? null, opts.limit],
  );
  const byReason = await db.query(
    `select reason, scope, status, count(*)::float8 as items
       from raw.quarantine group by 1, 2, 3 order by 4 desc limit 100`,
  );
  const duplicates = await db.query(
    `select kind, count(*)::float8 as rows from raw.duplicates group by 1 order by 1`,
  );
  return {
    items: items.rows,
    byReason: byReason.rows,
    duplicates: duplicates.rows,
  };
}

/** dbt test results of one run (default: the newest run that has any). */
export async function dbtTests(db: Db, runId?: string) {
  const run = runId ?? (await db.query<{ run_id: string }>(
    `select t.run_id from ops.dbt_test_results t
       join ops.dag_runs r using (run_id)
      order by r.started_at desc limit 1`,
  )).rows[0]?.run_id;
  if (!run) return { runId: null, tests: [] };
  const { rows } = await db.query(
    `select test_name, status, failures, message
       from ops.dbt_test_results where run_id = $1
      order by (status = 'pass'), test_name limit 1000`,
    [run],
  );
  return { runId: run, tests: rows };
}

/** The index page: today's KPIs (UTC day) and the freshness of each layer. */
export async function overview(db: Db) {
  const kpis = await db.query<{
    events: number;
    errors: number;
    orders: number;
    failed_orders: number;
    revenue: number;
    countries: number;
  }>(
    `select coalesce(sum(events), 0)::float8 as events,
            coalesce(sum(events) filter (where level = 'ERROR'), 0)::float8 as errors,
            coalesce(sum(orders), 0)::float8 as orders,
            coalesce(sum(failed_orders), 0)::float8 as failed_orders,
            coalesce(sum(revenue), 0)::float8 as revenue,
            count(distinct geo_country)::int as countries
       from monitoring.event_counts
      where bucket >= date_trunc('day', now(), 'UTC')`,
  );
  const fresh = await db.query<Record<string, Date | null>>(
    `select (select max(committed_at) from monitoring.recent_events) as last_event_consumed,
            (select max(event_ts) from monitoring.recent_events) as last_event_time,
            (select max(started_at) from ops.dag_runs) as last_batch_started,
            (select max(ended_at) from ops.dag_runs where state in ('success', 'success_with_warnings')) as last_batch_success,
            (select max(ended_at) from ops.task_runs
              where state = 'success' and task_id ilike '%export%') as last_export,
            (select max(loaded_at) from raw.load_ledger) as last_raw_load`,
  );
  const k = kpis.rows[0];
  return {
    day: new Date().toISOString().slice(0, 10),
    kpis: {
      ...k,
      errorRate: ratio(k.errors, k.events),
      failedOrderRate: ratio(k.failed_orders, k.orders + k.failed_orders),
      aov: k.orders > 0 ? Math.round((k.revenue / k.orders) * 100) / 100 : null,
    },
    freshness: fresh.rows[0],
  };
}

/** Live numbers for each stage of the "How it works" page. */
export async function stages(db: Db) {
  const { rows } = await db.query<Record<string, number | null>>(
    `select
       (select coalesce(sum(end_offset), 0)::float8 from monitoring.consumer_lag) as kafka_end_offsets,
       (select coalesce(sum(committed_offset), 0)::float8 from monitoring.consumer_lag) as kafka_committed,
       (select coalesce(sum(lag_offsets), 0)::float8 from monitoring.consumer_lag) as kafka_lag,
       (select coalesce(sum(records_in), 0)::float8 from monitoring.consumer_stats) as consumed_7d,
       (select coalesce(sum(events_out), 0)::float8 from monitoring.consumer_stats) as hdfs_raw_events_7d,
       (select coalesce(sum(files_written), 0)::float8 from monitoring.consumer_stats) as hdfs_raw_files_7d,
       (select coalesce(sum(bytes_written), 0)::float8 from monitoring.consumer_stats) as hdfs_raw_bytes_7d,
       (select coalesce(sum(records), 0)::float8 from monitoring.dead_letter_counts) as dead_letters_7d,
       (select count(*)::float8 from raw.load_ledger) as raw_files_loaded,
       (select coalesce(sum(row_count), 0)::float8 from raw.load_ledger) as raw_events_loaded`,
  );
  // Exact row counts of the marts as of the last export (the batch counts
  // them while exporting); planner estimates (pg_class) read 0 for a table
  // that was never analysed, which would misstate small marts.
  const marts = await db.query<{ table_name: string; rows: number }>(
    `select t.key as table_name, t.value::float8 as rows
       from (select tables from ops.exports order by exported_at desc limit 1) e,
            jsonb_each_text(e.tables) t
      order by 1 limit 200`,
  );
  return { ...rows[0], marts: marts.rows };
}
