/**
 * Seeded raw-table fixtures for the dbt tests and benchmark: catalogs and
 * plausible sessions (views -> search -> cart -> purchase -> complete/failed,
 * errors) written straight into `raw.users`, `raw.products` and `raw.events`
 * in the columns of pipeline/migrations/010_raw.sql.
 *
 * It exists so dbt can be tested on its own, with data whose true totals are
 * known independently of dbt (`FixtureTotals`); the end-to-end tests feed dbt
 * from the real generator, producer, consumer and batch instead.
 */
import type pg from "pg";
import { NO_DETAILS } from "../events/flatten.ts";
import { mulberry32 } from "../events/rng.ts";
import {
  CATEGORIES as SCHEMA_CATEGORIES,
  COUNTRIES,
  ERROR_CODES,
  EVENT_TYPE_SERVICE,
  FAILURE_REASON_LIST,
  PAYMENT_METHODS,
  SHIPPING_METHODS,
} from "../events/schema.ts";

// Enumerations come from the event contract, so fixture rows are valid events.
const CATEGORIES: Record<string, readonly string[]> = SCHEMA_CATEGORIES;
const GEO: Array<[string, string[]]> = Object.entries(COUNTRIES).map((
  [code, c],
) => [code, c.cities.map((city) => city.name)]);
const DEVICES = ["desktop", "mobile", "tablet"];
const PAYMENTS: readonly string[] = PAYMENT_METHODS;
const SHIPPING: readonly string[] = SHIPPING_METHODS;
const QUERIES = [
  "laptop",
  "shoes",
  "t-shirt",
  "book",
  "headphones",
  "sofa",
  "dress",
  "camera",
];
const ERRORS: Array<[string, string, number, string]> = Object.entries(
  ERROR_CODES,
).map(([code, e]) => [code, e.message, e.http_status, e.service]);

/** Options of a fixture. */
export interface FixtureOptions {
  seed: number;
  sessions: number;
  users: number;
  products: number;
  /** Time of the first session (UTC). */
  start: Date;
  /** Seconds between session starts. */
  sessionGapS?: number;
  /** Index of the first session (to append a later slice of the same stream). */
  firstSession?: number;
}

/** Totals computed while generating, independently of SQL and dbt. */
export interface FixtureTotals {
  events: number;
  eventsByType: Record<string, number>;
  ordersByStatus: Record<string, number>;
  /** Σ amount of completed orders, in cents. */
  revenueCents: number;
}

type Row = Record<string, unknown>;

/** The user catalog rows. */
export function fixtureUsers(n: number, seed: number): Row[] {
  const r = mulberry32(seed ^ 0x5eed);
  const first = [
    "ahmed",
    "mona",
    "omar",
    "sara",
    "youssef",
    "nour",
    "karim",
    "laila",
  ];
  const last = ["hassan", "ali", "ibrahim", "mahmoud", "farouk"];
  return Array.from({ length: n }, (_, i) => {
    const f = first[Math.floor(r() * first.length)];
    const l = last[Math.floor(r() * last.length)];
    const [country, cities] = GEO[i % GEO.length];
    return {
      user_id: `user_${i + 1}`,
      username: `${f}_${l}_${100 + (i % 900)}`,
      email: `${f}.${l}.${i + 1}@example.com`,
      full_name: `${f[0].toUpperCase()}${f.slice(1)} ${l[0].toUpperCase()}${
        l.slice(1)
      }`,
      first_name: f,
      last_name: l,
      sex: i % 2 ? "female" : "male",
      age: 18 + Math.floor(r() * 48),
      country,
      city: cities[i % cities.length],
      signup_date: "2024-01-01",
    };
  });
}

/** The product catalog rows, prices in whole cents; `updated_at` = `asOf`. */
export function fixtureProducts(n: number, seed: number, asOf: Date): Row[] {
  const r = mulberry32(seed ^ 0xca7);
  const cats = Object.keys(CATEGORIES);
  return Array.from({ length: n }, (_, i) => {
    const category = cats[i % cats.length];
    const subs = CATEGORIES[category];
    return {
      product_id: `prod_${String(i + 1).padStart(5, "0")}`,
      name: `Brand ${subs[i % 5]} ${1000 + i}`,
      category,
      subcategory: subs[Math.floor(i / cats.length) % 5],
      brand: `Brand${i % 7}`,
      price: (Math.round((5 + r() * 500) * 100) / 100).toFixed(2),
      stock: Math.floor(r() * 500),
      rating: (3 + Math.round(r() * 20) / 10).toFixed(1),
      date_added: "2024-01-01",
      weight: "N/A",
      description: "fixture product",
      updated_at: asOf.toISOString(),
    };
  });
}

function uuidFrom(r: () => number): string {
  const hex = Array.from(
    { length: 32 },
    () => Math.floor(r() * 16).toString(16),
  ).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-a${
    hex.slice(17, 20)
  }-${hex.slice(20, 32)}`;
}

const BASE: Row = {
  schema_version: 1,
  ...NO_DETAILS,
  kafka_topic: "LogEvents",
  kafka_timestamp: null,
  source_file: "fixture",
};

/**
 * Generates the events of sessions [firstSession, firstSession + sessions)
 * and passes them to `sink` in chunks. `priceOf(productId, ts)` gives the
 * unit price in force (so a test can change prices mid-stream).
 */
export async function generateEvents(
  opts: FixtureOptions,
  priceOf: (productId: string, ts: Date) => string,
  sink: (rows: Row[]) => Promise<void>,
  chunkSize = 5000,
): Promise<FixtureTotals> {
  const totals: FixtureTotals = {
    events: 0,
    eventsByType: {},
    ordersByStatus: { completed: 0, failed: 0, pending: 0 },
    revenueCents: 0,
  };
  const gap = (opts.sessionGapS ?? 7) * 1000;
  const first = opts.firstSession ?? 0;
  let buf: Row[] = [];
  let offset = first * 20;
  for (let s = first; s < first + opts.sessions; s++) {
    const r = mulberry32((opts.seed * 1_000_003) ^ s);
    const user = `user_${1 + Math.floor(r() * opts.users)}`;
    const [country, cities] = GEO[Math.floor(r() * GEO.length)];
    const ctx = {
      user_id: user,
      session_id: `sess_${opts.seed}_${s}`,
      device_type: DEVICES[Math.floor(r() * DEVICES.length)],
      geo_country: country,
      geo_city: cities[Math.floor(r() * cities.length)],
    };
    let t = opts.start.getTime() + s * gap;
    const partition = s % 6;
    /** The next event time of the session (1-21 s after the previous). */
    const next = (): Date => {
      t += 1000 + Math.floor(r() * 20000);
      return new Date(t);
    };
    const emit = (type: string, extra: Row, ts: Date = next()) => {
      const level = type === "error" || type === "order_failed"
        ? "ERROR"
        : "INFO";
      const row: Row = {
        ...BASE,
        ...ctx,
        event_id: uuidFrom(r),
        event_type: type,
        service: type === "error"
          ? undefined
          : EVENT_TYPE_SERVICE[type as keyof typeof EVENT_TYPE_SERVICE],
        event_ts: ts.toISOString(),
        level,
        response_time_ms: 20 + Math.floor(r() * 400),
        kafka_partition: partition,
        kafka_offset: offset++,
        ...extra,
      };
      row.details_json = { fixture: true };
      buf.push(row);
      totals.events++;
      totals.eventsByType[type] = (totals.eventsByType[type] ?? 0) + 1;
      return ts;
    };
    const cart: Array<{ product_id: string; quantity: number }> = [];
    const views = 1 + Math.floor(r() * 4);
    if (r() < 0.5) {
      const zero = r() < 0.12;
      const at = next();
      emit("search", {
        search_query: QUERIES[Math.floor(r() * QUERIES.length)],
        results_count: zero ? 0 : 1 + Math.floor(r() * 50),
        searched_at: at.toISOString(),
      }, at);
    }
    for (let v = 0; v < views; v++) {
      const pid = `prod_${
        String(1 + Math.floor(r() * opts.products)).padStart(5, "0")
      }`;
      const viewed = next();
      emit("product_view", {
        product_id: pid,
        unit_price: priceOf(pid, viewed),
      }, viewed);
      if (r() < 0.4) {
        const q = 1 + Math.floor(r() * 3);
        cart.push({ product_id: pid, quantity: q });
        const carted = next();
        emit("add_to_cart", {
          product_id: pid,
          quantity: q,
          unit_price: priceOf(pid, carted),
        }, carted);
      }
    }
    if (r() < 0.05) {
      const [code, msg, http, service] =
        ERRORS[Math.floor(r() * ERRORS.length)];
      const at = next();
      emit("error", {
        error_code: code,
        service,
        error_message: msg,
        http_status: http,
        error_at: at.toISOString(),
      }, at);
    }
    if (cart.length > 0 && r() < 0.6) {
      const orderId = `ord_${opts.seed}_${s}`;
      const placedAt = next();
      let cents = 0;
      const items = cart.map((c) => {
        const unit = priceOf(c.product_id, placedAt);
        cents += c.quantity * Math.round(Number(unit) * 100);
        return {
          product_id: c.product_id,
          quantity: c.quantity,
          unit_price: Number(unit),
        };
      });
      const amount = (cents / 100).toFixed(2);
      emit("purchase", {
        order_id: orderId,
        amount,
        payment_method: PAYMENTS[Math.floor(r() * PAYMENTS.length)],
        shipping_address: `1 Main St, ${ctx.geo_city}, ${country}`,
        items_json: items,
      }, placedAt);
      const roll = r();
      if (roll < 0.75) {
        const done = emit("order_complete", {
          order_id: orderId,
          amount,
          shipping_method: SHIPPING[Math.floor(r() * SHIPPING.length)],
          delivery_estimate: new Date(t + 3 * 86_400_000).toISOString().slice(
            0,
            10,
          ),
          items_json: items,
        });
        buf.at(-1)!.completed_at = done.toISOString();
        totals.ordersByStatus.completed++;
        totals.revenueCents += cents;
      } else if (roll < 0.9) {
        const failed = emit("order_failed", {
          order_id: orderId,
          amount,
          failure_reason:
            FAILURE_REASON_LIST[Math.floor(r() * FAILURE_REASON_LIST.length)],
        });
        buf.at(-1)!.failed_at = failed.toISOString();
        totals.ordersByStatus.failed++;
      } else {
        totals.ordersByStatus.pending++;
      }
    }
    if (buf.length >= chunkSize) {
      await sink(buf);
      buf = [];
    }
  }
  if (buf.length) await sink(buf);
  return totals;
}

/** Inserts rows into `table` through json_populate_recordset (one round trip per chunk). */
export async function insertRows(
  client: pg.ClientBase,
  table: string,
  rows: Row[],
): Promise<void> {
  if (rows.length === 0) return;
  const cols = Object.keys(rows[0]);
  const list = cols.map((c) => `"${c}"`).join(", ");
  await client.query(
    `insert into ${table} (${list}) select ${list} from json_populate_recordset(null::${table}, $1::json)`,
    [JSON.stringify(rows)],
  );
}

/**
 * Loads catalogs and `opts.sessions` sessions into the raw tables with the
 * catalog prices (no price change). Returns the independent totals.
 */
export async function seedRaw(
  client: pg.ClientBase,
  opts: FixtureOptions,
): Promise<FixtureTotals> {
  const users = fixtureUsers(opts.users, opts.seed);
  const products = fixtureProducts(
    opts.products,
    opts.seed,
    new Date(opts.start.getTime() - 86_400_000),
  );
  if ((opts.firstSession ?? 0) === 0) {
    for (let i = 0; i < users.length; i += 5000) {
      await insertRows(client, "raw.users", users.slice(i, i + 5000));
    }
    for (let i = 0; i < products.length; i += 5000) {
      await insertRows(client, "raw.products", products.slice(i, i + 5000));
    }
  }
  const prices = new Map(
    products.map((p) => [p.product_id as string, p.price as string]),
  );
  return await generateEvents(
    opts,
    (pid) => prices.get(pid)!,
    (rows) => insertRows(client, "raw.events", rows),
  );
}
