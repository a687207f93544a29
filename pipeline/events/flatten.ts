/**
 * The flat row of one valid event: the columns of the raw-zone Parquet files
 * (written by the consumer with DuckDB), of `raw.events` in Postgres (loaded by
 * the batch) and of dbt's staging source. `FLAT_COLUMNS` is the contract; a
 * test checks it against pipeline/migrations/010_raw.sql column by column.
 *
 * Mapping rules (why the columns hold what they hold):
 * - product_view / add_to_cart: product_id, quantity (add_to_cart only) and
 *   unit_price come from details.
 * - purchase / order_complete / order_failed: order_id, amount (for
 *   order_failed: attempted_amount, so failed revenue is not lost as in the
 *   original), payment_method and items_json (the full items array). When the
 *   order has exactly ONE line, product_id / quantity / unit_price are also
 *   filled from it so single-product orders join to products without
 *   unnesting; multi-line orders leave them null (use items_json).
 * - search: query, results_count, the three filters flattened, searched_at.
 * - error: error_code, error_message, error_at, http_status, plus product_id /
 *   order_id when the error names them.
 * - details_json always holds the raw details object, so nothing is dropped
 *   (the original lost `filters` and `searched_at`).
 *
 * Value representation in a `FlatRow`: timestamps are ISO-8601 UTC strings
 * with milliseconds, dates `YYYY-MM-DD`, money JSON numbers with at most two
 * decimals (exact, see schema.ts), JSON columns compact JSON text, the Kafka
 * offset a number (offsets stay far below 2^53).
 */
import type { Event, OrderItem } from "./schema.ts";

/** One column of the flat event row. */
export interface FlatColumn {
  name: string;
  /** DuckDB type used for the Parquet files. */
  duckdbType: string;
  /** Postgres type of `raw.events` (lower case, as in the migration). */
  pgType: string;
  nullable: boolean;
}

function col(
  name: string,
  duckdbType: string,
  pgType: string,
  nullable: boolean,
): FlatColumn {
  return { name, duckdbType, pgType, nullable };
}

/**
 * The columns, in order: exactly `raw.events` minus `source_file` and
 * `loaded_at` (which the batch adds). JSON columns are VARCHAR in DuckDB
 * (JSON text) and jsonb in Postgres.
 */
export const FLAT_COLUMNS: readonly FlatColumn[] = [
  col("event_id", "VARCHAR", "text", false),
  col("schema_version", "SMALLINT", "smallint", false),
  col("event_type", "VARCHAR", "text", false),
  col("event_ts", "TIMESTAMPTZ", "timestamptz", false),
  col("level", "VARCHAR", "text", false),
  col("service", "VARCHAR", "text", false),
  col("user_id", "VARCHAR", "text", false),
  col("session_id", "VARCHAR", "text", false),
  col("device_type", "VARCHAR", "text", false),
  col("geo_country", "VARCHAR", "text", false),
  col("geo_city", "VARCHAR", "text", false),
  col("response_time_ms", "INTEGER", "integer", false),
  col("product_id", "VARCHAR", "text", true),
  col("quantity", "INTEGER", "integer", true),
  col("unit_price", "DECIMAL(12,2)", "numeric(12, 2)", true),
  col("order_id", "VARCHAR", "text", true),
  col("amount", "DECIMAL(12,2)", "numeric(12, 2)", true),
  col("payment_method", "VARCHAR", "text", true),
  col("shipping_method", "VARCHAR", "text", true),
  col("shipping_address", "VARCHAR", "text", true),
  col("delivery_estimate", "DATE", "date", true),
  col("completed_at", "TIMESTAMPTZ", "timestamptz", true),
  col("failed_at", "TIMESTAMPTZ", "timestamptz", true),
  col("failure_reason", "VARCHAR", "text", true),
  col("items_json", "VARCHAR", "jsonb", true),
  col("search_query", "VARCHAR", "text", true),
  col("results_count", "INTEGER", "integer", true),
  col("filter_category", "VARCHAR", "text", true),
  col("filter_price_range", "VARCHAR", "text", true),
  col("filter_brand", "VARCHAR", "text", true),
  col("searched_at", "TIMESTAMPTZ", "timestamptz", true),
  col("error_code", "VARCHAR", "text", true),
  col("error_message", "VARCHAR", "text", true),
  col("error_at", "TIMESTAMPTZ", "timestamptz", true),
  col("http_status", "INTEGER", "integer", true),
  col("details_json", "VARCHAR", "jsonb", false),
  col("kafka_topic", "VARCHAR", "text", false),
  col("kafka_partition", "INTEGER", "integer", false),
  col("kafka_offset", "BIGINT", "bigint", false),
  col("kafka_timestamp", "TIMESTAMPTZ", "timestamptz", true),
];

/** The column names in order. */
export const FLAT_COLUMN_NAMES: readonly string[] = FLAT_COLUMNS.map((c) =>
  c.name
);

/** A flat event row (see the module comment for value representations). */
export interface FlatRow {
  event_id: string;
  schema_version: number;
  event_type: string;
  event_ts: string;
  level: string;
  service: string;
  user_id: string;
  session_id: string;
  device_type: string;
  geo_country: string;
  geo_city: string;
  response_time_ms: number;
  product_id: string | null;
  quantity: number | null;
  unit_price: number | null;
  order_id: string | null;
  amount: number | null;
  payment_method: string | null;
  shipping_method: string | null;
  shipping_address: string | null;
  delivery_estimate: string | null;
  completed_at: string | null;
  failed_at: string | null;
  failure_reason: string | null;
  items_json: string | null;
  search_query: string | null;
  results_count: number | null;
  filter_category: string | null;
  filter_price_range: string | null;
  filter_brand: string | null;
  searched_at: string | null;
  error_code: string | null;
  error_message: string | null;
  error_at: string | null;
  http_status: number | null;
  details_json: string;
  kafka_topic: string;
  kafka_partition: number;
  kafka_offset: number;
  kafka_timestamp: string | null;
}

/** Where a message came from in Kafka (kafkajs gives offsets and timestamps as strings). */
export interface KafkaCoords {
  topic: string;
  partition: number;
  offset: string | number | bigint;
  /** Kafka record timestamp: epoch ms (string or number) or a Date. */
  timestamp?: string | number | Date | null;
}

// Records of one producer batch share their timestamp more often than not,
// and formatting a Date costs ~2 µs: the last result is kept.
let lastKafkaTs: KafkaCoords["timestamp"] = null;
let lastKafkaIso: string | null = null;

function kafkaTimestamp(ts: KafkaCoords["timestamp"]): string | null {
  if (ts === undefined || ts === null || ts === "") return null;
  if (ts === lastKafkaTs) return lastKafkaIso;
  const ms = ts instanceof Date ? ts.getTime() : Number(ts);
  const iso = !Number.isFinite(ms) || ms < 0 || ms > 8.64e15
    ? null
    : new Date(ms).toISOString();
  // A Date is mutable: only primitives are remembered.
  if (!(ts instanceof Date)) {
    lastKafkaTs = ts;
    lastKafkaIso = iso;
  }
  return iso;
}

function singleLine(items: OrderItem[]): OrderItem | undefined {
  return items.length === 1 ? items[0] : undefined;
}

/**
 * The type-specific columns, all null: every flattened row starts from these
 * and its event type fills its own (fixtures build rows the same way).
 */
export const NO_DETAILS = {
  product_id: null,
  quantity: null,
  unit_price: null,
  order_id: null,
  amount: null,
  payment_method: null,
  shipping_method: null,
  shipping_address: null,
  delivery_estimate: null,
  completed_at: null,
  failed_at: null,
  failure_reason: null,
  items_json: null,
  search_query: null,
  results_count: null,
  filter_category: null,
  filter_price_range: null,
  filter_brand: null,
  searched_at: null,
  error_code: null,
  error_message: null,
  error_at: null,
  http_status: null,
} as const satisfies Partial<FlatRow>;

/**
 * Flattens a VALID event (from `validateEvent`) with its Kafka coordinates
 * into a row of `FLAT_COLUMNS`.
 */
export function flattenEvent(event: Event, coords: KafkaCoords): FlatRow {
  const row: FlatRow = {
    event_id: event.event_id,
    schema_version: event.schema_version,
    event_type: event.event_type,
    event_ts: event.event_ts,
    level: event.level,
    service: event.service,
    user_id: event.user_id,
    session_id: event.session_id,
    device_type: event.device_type,
    geo_country: event.geo.country,
    geo_city: event.geo.city,
    response_time_ms: event.response_time_ms,
    // Spelled out rather than spread from NO_DETAILS: an object literal
    // with its 40 keys written out gets one hidden class, and building and
    // stringifying it is ~2× faster than the spread on the hot path
    // (flatten_test.ts checks the two lists agree).
    product_id: null,
    quantity: null,
    unit_price: null,
    order_id: null,
    amount: null,
    payment_method: null,
    shipping_method: null,
    shipping_address: null,
    delivery_estimate: null,
    completed_at: null,
    failed_at: null,
    failure_reason: null,
    items_json: null,
    search_query: null,
    results_count: null,
    filter_category: null,
    filter_price_range: null,
    filter_brand: null,
    searched_at: null,
    error_code: null,
    error_message: null,
    error_at: null,
    http_status: null,
    details_json: JSON.stringify(event.details),
    kafka_topic: coords.topic,
    kafka_partition: coords.partition,
    kafka_offset: Number(coords.offset),
    kafka_timestamp: kafkaTimestamp(coords.timestamp),
  };
  switch (event.event_type) {
    case "product_view": {
      const d = event.details;
      row.product_id = d.product_id;
      row.unit_price = d.unit_price;
      break;
    }
    case "add_to_cart": {
      const d = event.details;
      row.product_id = d.product_id;
      row.quantity = d.quantity;
      row.unit_price = d.unit_price;
      break;
    }
    case "search": {
      const d = event.details;
      row.search_query = d.query;
      row.results_count = d.results_count;
      row.filter_category = d.filters.category ?? null;
      row.filter_price_range = d.filters.price_range ?? null;
      row.filter_brand = d.filters.brand ?? null;
      row.searched_at = d.searched_at;
      break;
    }
    case "purchase":
    case "order_complete":
    case "order_failed": {
      const d = event.details;
      row.order_id = d.order_id;
      row.payment_method = d.payment_method;
      row.items_json = JSON.stringify(d.items);
      const line = singleLine(d.items);
      if (line) {
        row.product_id = line.product_id;
        row.quantity = line.quantity;
        row.unit_price = line.unit_price;
      }
      if (event.event_type === "purchase") {
        row.amount = event.details.amount;
        row.shipping_address = event.details.shipping_address;
      } else if (event.event_type === "order_complete") {
        row.amount = event.details.amount;
        row.shipping_method = event.details.shipping_method;
        row.delivery_estimate = event.details.delivery_estimate;
        row.completed_at = event.details.completed_at;
      } else {
        row.amount = event.details.attempted_amount;
        row.failure_reason = event.details.failure_reason;
        row.failed_at = event.details.failed_at;
      }
      break;
    }
    case "error": {
      const d = event.details;
      row.error_code = d.error_code;
      row.error_message = d.message;
      row.error_at = d.error_at;
      row.http_status = d.http_status;
      row.product_id = d.product_id ?? null;
      row.order_id = d.order_id ?? null;
      break;
    }
  }
  return row;
}

/** The row's values in `FLAT_COLUMNS` order (for appenders and COPY). */
export function flatRowValues(row: FlatRow): (string | number | null)[] {
  const r = row as unknown as Record<string, string | number | null>;
  return FLAT_COLUMN_NAMES.map((n) => r[n]);
}

/**
 * The validated event back from its flat row: every envelope key is a
 * column and details_json holds the details verbatim (the live feed keeps
 * rows as JSON text and rebuilds the events it writes).
 */
export function eventOfRow(row: FlatRow): Event {
  return {
    event_id: row.event_id,
    schema_version: row.schema_version,
    event_type: row.event_type,
    event_ts: row.event_ts,
    level: row.level,
    service: row.service,
    user_id: row.user_id,
    session_id: row.session_id,
    device_type: row.device_type,
    geo: { country: row.geo_country, city: row.geo_city },
    response_time_ms: row.response_time_ms,
    details: JSON.parse(row.details_json),
  } as Event;
}
