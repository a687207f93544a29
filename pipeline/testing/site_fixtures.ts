/**
 * Realistic rows for `monitoring.*` and `ops.*`, written the way the stream
 * consumer and the batch write them, for the site's and the API's tests (and
 * for a demo without the producer). Deterministic for a given seed and time.
 *
 * The live feed rows and the 10-second counts are derived from the same
 * events, so the API's numbers can be checked against SQL exactly.
 */
import type { Db } from "../api/queries.ts";
import type { FlatRow } from "../events/flatten.ts";
import { mulberry32 } from "../events/rng.ts";
import {
  COUNTRIES,
  COUNTRY_CODES,
  DEVICE_TYPES,
  ERROR_CODES,
  type ErrorCode,
  EVENT_TYPE_SERVICE,
  EVENT_TYPES,
  type EventType,
  levelFor,
  PAYMENT_METHODS,
  PRODUCT_COUNT,
  REJECT_REASON_LIST,
  SCHEMA_VERSION,
  USER_COUNT,
} from "../events/schema.ts";

// Reference data comes from the event contract, so the fixture cannot drift
// from what the producer sends; only the mix (weights, the four error codes,
// the search words) is the fixture's own.
const CITIES: Record<string, string[]> = Object.fromEntries(
  COUNTRY_CODES.map((c) => [c, COUNTRIES[c].cities.map((city) => city.name)]),
);
/** Share of each event type, in the contract's order. */
const TYPE_WEIGHTS = {
  product_view: 0.34,
  search: 0.2,
  add_to_cart: 0.14,
  purchase: 0.1,
  order_complete: 0.08,
  order_failed: 0.04,
  error: 0.1,
} as const satisfies Record<EventType, number>;
const TYPES: [EventType, number][] = EVENT_TYPES.map((t) => [
  t,
  TYPE_WEIGHTS[t],
]);
const DEVICES = [...DEVICE_TYPES];
const QUERIES = ["laptop", "shoes", "t-shirt", "book", "headphones", "sofa"];
const ERRORS: ErrorCode[] = ["PAY-402", "INV-504", "AUTH-401", "CAT-404"];

/**
 * One flattened live-feed row (monitoring.recent_events): the contract's
 * flat columns the feed keeps, with the event time as a Date and the event
 * itself as JSON.
 */
export interface RecentEventRow extends
  Pick<
    FlatRow,
    | "event_id"
    | "event_type"
    | "level"
    | "service"
    | "user_id"
    | "session_id"
    | "device_type"
    | "geo_country"
    | "geo_city"
    | "response_time_ms"
    | "product_id"
    | "order_id"
    | "amount"
    | "search_query"
    | "error_code"
    | "kafka_partition"
    | "kafka_offset"
  > {
  event_ts: Date;
  event_json: Record<string, unknown>;
}

/**
 * `count` events spread evenly over the `spanSecs` seconds before `end`.
 * `overrides` patch individual events by index (e.g. a hostile search query).
 */
export function makeEvents(
  count: number,
  end: Date,
  spanSecs: number,
  seed = 7,
  overrides: Record<number, Partial<RecentEventRow>> = {},
): RecentEventRow[] {
  const r = mulberry32(seed);
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)];
  const out: RecentEventRow[] = [];
  const countries = Object.keys(CITIES);
  for (let i = 0; i < count; i++) {
    let x = r();
    let type: EventType = TYPES[0][0];
    for (const [t, w] of TYPES) {
      if ((x -= w) < 0) {
        type = t;
        break;
      }
    }
    const country = pick(countries);
    const ts = new Date(
      end.getTime() - spanSecs * 1000 +
        Math.floor((i + 0.5) * spanSecs * 1000 / count),
    );
    const errorCode = pick(ERRORS);
    const err = ERROR_CODES[errorCode];
    const amount = ["purchase", "order_complete", "order_failed"].includes(type)
      ? Math.round((20 + r() * 900) * 100) / 100
      : null;
    const productId = type === "search" || type === "error"
      ? null
      : `prod_${String(1 + Math.floor(r() * PRODUCT_COUNT)).padStart(5, "0")}`;
    const row: RecentEventRow = {
      event_id: `evt-${seed}-${String(i).padStart(6, "0")}`,
      event_ts: ts,
      event_type: type,
      level: "INFO", // set below from the contract, once the response time is known
      service: type === "error" ? err.service : EVENT_TYPE_SERVICE[type],
      user_id: `user_${1 + Math.floor(r() * USER_COUNT)}`,
      session_id: `sess_${seed}_${Math.floor(i / 5)}`,
      device_type: pick(DEVICES),
      geo_country: country,
      geo_city: pick(CITIES[country]),
      response_time_ms: 20 + Math.floor(r() * 400),
      product_id: productId,
      order_id: amount !== null ? `ord_${seed}_${i}` : null,
      amount,
      search_query: type === "search" ? pick(QUERIES) : null,
      error_code: type === "error" ? errorCode : null,
      event_json: {},
      kafka_partition: i % 6,
      kafka_offset: Math.floor(i / 6),
    };
    row.level = levelFor(type, row.response_time_ms);
    Object.assign(row, overrides[i] ?? {});
    row.event_json = {
      event_id: row.event_id,
      schema_version: SCHEMA_VERSION,
      event_type: row.event_type,
      event_ts: row.event_ts.toISOString(),
      level: row.level,
      service: row.service,
      user_id: row.user_id,
      session_id: row.session_id,
      device_type: row.device_type,
      geo: { country: row.geo_country, city: row.geo_city },
      response_time_ms: row.response_time_ms,
      details: row.event_type === "search"
        ? { query: row.search_query, results_count: Math.floor(r() * 50) }
        : row.event_type === "error"
        ? {
          error_code: row.error_code,
          message: err.message,
          http_status: err.http_status,
        }
        : amount !== null
        ? {
          order_id: row.order_id,
          amount: row.amount,
          payment_method: PAYMENT_METHODS[0],
        }
        : { product_id: row.product_id },
    };
    out.push(row);
  }
  return out;
}

/** Inserts events into recent_events and adds them to event_counts. */
export async function insertEvents(
  db: Db,
  events: RecentEventRow[],
): Promise<void> {
  for (let i = 0; i < events.length; i += 200) {
    const chunk = events.slice(i, i + 200);
    const values: unknown[] = [];
    const rows = chunk.map((e) => {
      const cols = [
        e.event_id,
        e.event_ts,
        e.event_type,
        e.level,
        e.service,
        e.user_id,
        e.session_id,
        e.device_type,
        e.geo_country,
        e.geo_city,
        e.response_time_ms,
        e.product_id,
        e.order_id,
        e.amount,
        e.search_query,
        e.error_code,
        JSON.stringify(e.event_json),
        e.kafka_partition,
        e.kafka_offset,
      ];
      const start = values.length;
      values.push(...cols);
      return `(${cols.map((_, j) => `$${start + j + 1}`).join(",")})`;
    });
    await db.query(
      `insert into monitoring.recent_events
         (event_id, event_ts, event_type, level, service, user_id, session_id,
          device_type, geo_country, geo_city, response_time_ms, product_id,
          order_id, amount, search_query, error_code, event_json,
          kafka_partition, kafka_offset)
       values ${rows.join(",")}
       on conflict (event_id) do nothing`,
      values,
    );
  }
  // The consumer's 10-second buckets, from the very same events.
  const buckets = new Map<string, {
    bucket: Date;
    key: string[];
    events: number;
    orders: number;
    failed: number;
    revenue: number;
  }>();
  for (const e of events) {
    const bucket = new Date(Math.floor(e.event_ts.getTime() / 10000) * 10000);
    const key = [e.event_type, e.geo_country, e.device_type, e.level];
    const k = `${bucket.toISOString()}|${key.join("|")}`;
    const b = buckets.get(k) ??
      { bucket, key, events: 0, orders: 0, failed: 0, revenue: 0 };
    b.events++;
    if (e.event_type === "order_complete") {
      b.orders++;
      b.revenue = Math.round((b.revenue + (e.amount ?? 0)) * 100) / 100;
    }
    if (e.event_type === "order_failed") b.failed++;
    buckets.set(k, b);
  }
  const list = [...buckets.values()];
  for (let i = 0; i < list.length; i += 200) {
    const chunk = list.slice(i, i + 200);
    const values: unknown[] = [];
    const rows = chunk.map((b) => {
      const cols = [
        b.bucket,
        ...b.key,
        b.events,
        b.orders,
        b.failed,
        b.revenue,
      ];
      const start = values.length;
      values.push(...cols);
      return `(${cols.map((_, j) => `$${start + j + 1}`).join(",")})`;
    });
    await db.query(
      `insert into monitoring.event_counts
         (bucket, event_type, geo_country, device_type, level, events, orders,
          failed_orders, revenue)
       values ${rows.join(",")}
       on conflict (bucket, event_type, geo_country, device_type, level) do update
         set events = event_counts.events + excluded.events,
             orders = event_counts.orders + excluded.orders,
             failed_orders = event_counts.failed_orders + excluded.failed_orders,
             revenue = event_counts.revenue + excluded.revenue`,
      values,
    );
  }
}

/**
 * Consumer stats, lag, dead letters and heartbeats for the `spanSecs`
 * before `end`, plus three batch runs (one failed then retried) with dbt
 * test results.
 */
export async function insertPipelineState(
  db: Db,
  end: Date,
  spanSecs = 900,
  seed = 11,
): Promise<void> {
  const r = mulberry32(seed);
  const endBucket = Math.floor(end.getTime() / 10000) * 10000;
  for (let t = endBucket - spanSecs * 1000; t <= endBucket; t += 10000) {
    const n = 40 + Math.floor(r() * 30);
    const dl = r() < 0.2 ? 1 + Math.floor(r() * 3) : 0;
    await db.query(
      `insert into monitoring.consumer_stats
         (bucket, consumer_id, records_in, events_out, dead_letters,
          files_written, bytes_written, latency_p50_ms, latency_p95_ms, latency_p99_ms)
       values ($1, 'consumer-1', $2, $3, $4, $5, $6, $7, $8, $9)
       on conflict do nothing`,
      [
        new Date(t),
        n + dl,
        n,
        dl,
        6,
        n * 410,
        900 + r() * 400,
        2200 + r() * 900,
        3600 + r() * 1500,
      ],
    );
    if (dl) {
      await db.query(
        `insert into monitoring.dead_letter_counts (bucket, reason, records)
         values ($1, $2, $3) on conflict (bucket, reason)
         do update set records = dead_letter_counts.records + excluded.records`,
        [
          new Date(t),
          // Real reasons of the validator, so the site shows what it will.
          REJECT_REASON_LIST[Math.floor(r() * REJECT_REASON_LIST.length)],
          dl,
        ],
      );
    }
  }
  for (let p = 0; p < 6; p++) {
    const end_offset = 5000 + Math.floor(r() * 400);
    const lag = Math.floor(r() * 40);
    await db.query(
      `insert into monitoring.consumer_lag
         (topic, kafka_partition, committed_offset, end_offset, lag_offsets,
          lag_seconds, consumer_id, updated_at)
       values ('LogEvents', $1, $2, $3, $4, $5, 'consumer-1', $6)
       on conflict (topic, kafka_partition) do update set
         committed_offset = excluded.committed_offset, end_offset = excluded.end_offset,
         lag_offsets = excluded.lag_offsets, lag_seconds = excluded.lag_seconds,
         updated_at = excluded.updated_at`,
      [p, end_offset - lag, end_offset, lag, lag / 6, end],
    );
  }
  for (
    const [component, state] of [["consumer", "running"], [
      "producer",
      "running",
    ], ["api", "running"]]
  ) {
    await db.query(
      `insert into monitoring.components (component, instance_id, state, detail, started_at, updated_at)
       values ($1, $2, $3, $4, $5, $6)
       on conflict (component, instance_id) do update set state = excluded.state,
         updated_at = excluded.updated_at`,
      [
        component,
        `${component}-1`,
        state,
        JSON.stringify({ pid: 1000 + component.length }),
        new Date(end.getTime() - 3600_000),
        end,
      ],
    );
  }
  const tasks = [
    ["check_services", "check_services_health"],
    ["load", "load_raw_files"],
    ["load", "validate_raw"],
    ["dbt", "dbt_snapshot"],
    ["dbt", "dbt_run"],
    ["dbt", "dbt_test"],
    ["export", "export_marts"],
  ];
  for (let k = 0; k < 3; k++) {
    const runId = `scheduled__${seed}_${k}`;
    const start = new Date(end.getTime() - (3 - k) * 600_000);
    const failed = k === 1;
    let t = start.getTime();
    const taskRows: unknown[][] = [];
    for (const [group, task] of tasks) {
      const tries = failed && task === "dbt_run" ? 2 : 1;
      for (let tryNo = 1; tryNo <= tries; tryNo++) {
        const dur = 300 + Math.floor(r() * 4000);
        const state = failed && task === "dbt_run"
          ? (tryNo === 1 ? "up_for_retry" : "failed")
          : failed && task !== "dbt_run" &&
              tasks.findIndex((x) => x[1] === task) > 4
          ? "skipped"
          : "success";
        taskRows.push([
          runId,
          group,
          task,
          tryNo,
          state,
          new Date(t),
          new Date(t + dur),
          dur,
        ]);
        t += dur;
      }
    }
    await db.query(
      `insert into ops.dag_runs (run_id, dag_id, trigger, state, started_at, ended_at,
         duration_ms, rows_loaded, files_loaded, error)
       values ($1, 'logpipe_batch', $2, $3, $4, $5, $6, $7, $8, $9) on conflict do nothing`,
      [
        runId,
        k === 2 ? "manual" : "schedule",
        failed ? "failed" : "success",
        start,
        new Date(t),
        t - start.getTime(),
        failed ? 0 : 3000 + k * 17,
        failed ? 0 : 12,
        failed
          ? "dbt run: relation analytics.fact_orders does not exist"
          : null,
      ],
    );
    for (const row of taskRows) {
      await db.query(
        `insert into ops.task_runs (run_id, task_group, task_id, try_number, state,
           started_at, ended_at, duration_ms)
         values ($1,$2,$3,$4,$5,$6,$7,$8) on conflict do nothing`,
        row,
      );
    }
    if (!failed) {
      for (
        const [name, status] of [
          ["unique_fact_events_event_id", "pass"],
          ["not_null_fact_orders_amount", "pass"],
          ["relationships_fact_orders_user_sk", "pass"],
          ["accepted_values_stg_events_event_type", k === 0 ? "warn" : "pass"],
        ]
      ) {
        await db.query(
          `insert into ops.dbt_test_results (run_id, test_name, status, failures)
           values ($1, $2, $3, $4) on conflict do nothing`,
          [runId, name, status, status === "pass" ? 0 : 2],
        );
      }
    }
  }
}
