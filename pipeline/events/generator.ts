/**
 * The seeded e-commerce event generator.
 *
 * Model (what makes the stream coherent, unlike the original's independent
 * random events):
 * - Sessions: one user, one device and one place (mostly the user's home
 *   city) each. A pool of concurrent sessions (≈ rate × 10) is interleaved on
 *   one event-time clock, so a session's events are seconds apart and in order.
 * - Funnel: search → product_view → add_to_cart → purchase → order_complete |
 *   order_failed, with abandonment at every step. A view follows from the
 *   search results (results_count is the real number of catalog matches), an
 *   add_to_cart is of the product just viewed, a purchase holds the cart, and
 *   the order's events share its order_id, items and amount. Money is computed
 *   in integer cents from `priceAtIndex` at the moment of the event.
 * - Failures: an order fails for a reason (payment declined, stock, fraud …)
 *   logged as an `error` event with the matching code, then `order_failed`.
 *   Errors have meaningful codes per service; their rate varies by the hour
 *   and in incidents (a service degrading for minutes: more errors, slower
 *   responses), so the alerts downstream have something to catch.
 * - Time: event time advances from `startTime` at `rate` events/s (optionally
 *   shaped by a daily rhythm); it never reads the wall clock, so the same seed
 *   and start time give a byte-identical stream.
 * - Bad records: with probability `badRate` a slot carries an injected bad
 *   record instead, kinds taken round-robin so each appears at a known rate.
 *   They come from a separate random stream and do not advance the clock, so
 *   the good events of a run are the same whatever the bad rate.
 */
import {
  type AddToCartDetails,
  CATEGORIES,
  type Category,
  CATEGORY_NAMES,
  COUNTRIES,
  COUNTRY_CODES,
  type CountryCode,
  DEVICE_TYPES,
  type DeviceType,
  ERROR_CODES,
  type ErrorCode,
  type Event,
  type EventOf,
  type EventType,
  FAILURE_REASONS,
  type FailureReason,
  levelFor,
  LIMITS,
  type OrderItem,
  type PaymentMethod,
  type RejectReason,
  SCHEMA_VERSION,
  type SearchFilters,
  type Service,
  type ShippingMethod,
} from "./schema.ts";
import { cumulativeWeights, hash32, hashString128, Rng } from "./rng.ts";
import { randomId, UuidV7Factory } from "./ids.ts";
import {
  generateCatalogs,
  priceAtIndex,
  type Product,
  productIdOf,
  stockAtIndex,
  type User,
} from "./catalogs.ts";

// ------------------------------------------------------------ bad kinds ----

/**
 * The kinds of injected records and the validator reason each must get
 * (`null` = a VALID event whose text is hostile: it must pass validation and
 * later be shown as text, never as HTML or SQL).
 */
export const BAD_KINDS = {
  invalid_utf8: "invalid_utf8",
  invalid_json: "invalid_json",
  not_an_object: "not_an_object",
  missing_field: "missing_field",
  wrong_type: "wrong_type",
  unknown_event_type: "unknown_event_type",
  invalid_value: "invalid_value",
  out_of_range: "out_of_range",
  inconsistent: "inconsistent",
  unsupported_schema_version: "unsupported_schema_version",
  too_large: "too_large",
  future_timestamp: "out_of_range",
  html_in_string: null,
  sql_in_string: null,
} as const satisfies Record<string, RejectReason | null>;
export type BadKind = keyof typeof BAD_KINDS;
export const BAD_KIND_LIST = Object.keys(BAD_KINDS) as BadKind[];

/** Hostile but valid text injected into search queries. */
export const HOSTILE_HTML = [
  "<img src=x onerror=alert(1)>",
  '<script>alert("xss")</script>',
  '"><svg onload=alert(document.cookie)>',
] as const;
export const HOSTILE_SQL = [
  "'; DROP TABLE raw.events; --",
  "1' OR '1'='1",
  "Robert'); DROP TABLE students;--",
] as const;

/** Size of the injected oversized payload (2 MiB). */
export const TOO_LARGE_BYTES = 2 * 1024 * 1024;

// ------------------------------------------------------------- records ----

/** One record of the stream: a Kafka message to be. */
export interface GeneratedRecord {
  /** Kafka key: the session id. */
  key: string;
  /** Message value: JSON text, or raw bytes (invalid UTF-8 records). */
  value: string | Uint8Array;
  /** The event, when the record is a valid event (hostile text included). */
  event?: Event;
  /** Set on injected records. */
  bad?: BadKind;
  /** Event time, epoch ms. */
  ts: number;
}

const encoder = new TextEncoder();

/** The record's value as bytes (what goes to Kafka or one NDJSON line). */
export function recordBytes(record: GeneratedRecord): Uint8Array {
  return typeof record.value === "string"
    ? encoder.encode(record.value)
    : record.value;
}

/** Counters of a generator run. */
export interface GeneratorStats {
  records: number;
  /** Valid events by type (hostile-text events included). */
  events: Record<EventType, number>;
  /** Injected records by kind. */
  bad: Record<BadKind, number>;
  sessions: number;
  orders: number;
  failedOrders: number;
}

export interface GeneratorOptions {
  /** Any string or number; the same seed and start time give the same stream. */
  seed: string | number;
  /** Event time of the first event. */
  startTime: Date | number;
  /** Events per second of event time (default 100). */
  rate?: number;
  /** Probability that a record is an injected bad record, 0..1 (default 0). */
  badRate?: number;
  /** Shape the event rate by hour of day (UTC): low at 08:00, high at 20:00. */
  dailyRhythm?: boolean;
}

// -------------------------------------------------------- catalog index ----

const SEARCH_TERMS: Record<string, readonly string[]> = {
  "Electronics/Audio": ["headphones", "bluetooth speaker"],
  "Electronics/Cameras": ["camera", "dslr"],
  "Electronics/Laptops": ["laptop", "notebook"],
  "Electronics/Smartphones": ["smartphone", "android phone"],
  "Electronics/TVs": ["tv", "4k tv"],
  "Fashion/Accessories": ["sunglasses", "handbag"],
  "Fashion/Footwear": ["shoes", "sneakers"],
  "Fashion/Kids' Fashion": ["kids jacket", "baby clothes"],
  "Fashion/Men's Wear": ["t-shirt", "men jeans"],
  "Fashion/Women's Wear": ["dress", "blouse"],
  "Home & Kitchen/Appliances": ["blender", "vacuum cleaner"],
  "Home & Kitchen/Bedding": ["duvet", "pillow"],
  "Home & Kitchen/Cookware": ["frying pan", "cookware set"],
  "Home & Kitchen/Decor": ["wall art", "lamp"],
  "Home & Kitchen/Furniture": ["sofa", "office chair"],
  "Books/Biographies": ["biography", "memoir"],
  "Books/Children's": ["picture book", "bedtime stories"],
  "Books/Educational": ["textbook", "study guide"],
  "Books/Fiction": ["book", "thriller novel"],
  "Books/Non-Fiction": ["history book", "self help"],
  "Beauty/Fragrances": ["perfume", "cologne"],
  "Beauty/Grooming": ["beard trimmer", "shaving kit"],
  "Beauty/Haircare": ["shampoo", "hair dryer"],
  "Beauty/Makeup": ["lipstick", "mascara"],
  "Beauty/Skincare": ["moisturizer", "sunscreen"],
  "Grocery/Beverages": ["coffee", "green tea"],
  "Grocery/Cleaning": ["detergent", "dish soap"],
  "Grocery/Food": ["pasta", "olive oil"],
  "Grocery/Personal Care": ["toothpaste", "body wash"],
  "Grocery/Snacks": ["chocolate", "chips"],
  "Toys/Action Figures": ["action figure", "superhero toy"],
  "Toys/Dolls": ["doll", "dollhouse"],
  "Toys/Educational": ["stem kit", "learning toy"],
  "Toys/Outdoor": ["water gun", "kite"],
  "Toys/Puzzles": ["puzzle", "jigsaw 1000"],
  "Sports/Cycling": ["bike helmet", "road bike"],
  "Sports/Fitness": ["dumbbells", "yoga mat"],
  "Sports/Outdoor": ["tent", "hiking backpack"],
  "Sports/Swimwear": ["swimsuit", "swim goggles"],
  "Sports/Team Sports": ["football", "basketball"],
};

/** Search price filters, in whole currency units (by list price). */
const PRICE_BUCKETS = [
  [0, 25],
  [25, 50],
  [50, 100],
  [100, 200],
  [200, 500],
  [500, 1000],
  [1000, 3000],
] as const;

interface Subcategory {
  key: string;
  category: Category;
  brands: string[];
  terms: readonly string[];
}

interface CatalogIndex {
  users: User[];
  products: Product[];
  subcategories: Subcategory[];
  /** Product indexes (1-based) by `${sub}|${brand or *}|${bucket or *}`. */
  matches: Map<string, number[]>;
  /** Bucket index of each product's list price (1-based product index). */
  bucketOf: Int8Array;
  /** Subcategory number of each product. */
  subOf: Int16Array;
}

let catalogIndex: CatalogIndex | undefined;

function bucketOfPrice(price: number): number {
  for (let b = 0; b < PRICE_BUCKETS.length; b++) {
    if (price < PRICE_BUCKETS[b][1]) return b;
  }
  return PRICE_BUCKETS.length - 1;
}

/** Catalogs and search indexes, built once per process (deterministic). */
function getCatalogIndex(): CatalogIndex {
  if (catalogIndex) return catalogIndex;
  const { users, products } = generateCatalogs();
  const subcategories: Subcategory[] = [];
  const subNumber = new Map<string, number>();
  for (const category of CATEGORY_NAMES) {
    for (const sub of CATEGORIES[category]) {
      const key = `${category}/${sub}`;
      subNumber.set(key, subcategories.length);
      subcategories.push({
        key,
        category,
        brands: [],
        terms: SEARCH_TERMS[key],
      });
    }
  }
  const matches = new Map<string, number[]>();
  const add = (k: string, i: number) => {
    const list = matches.get(k);
    if (list) list.push(i);
    else matches.set(k, [i]);
  };
  const bucketOf = new Int8Array(products.length + 1);
  const subOf = new Int16Array(products.length + 1);
  products.forEach((p, n) => {
    const i = n + 1;
    const s = subNumber.get(`${p.category}/${p.subcategory}`)!;
    const b = bucketOfPrice(p.price);
    bucketOf[i] = b;
    subOf[i] = s;
    if (!subcategories[s].brands.includes(p.brand)) {
      subcategories[s].brands.push(p.brand);
    }
    add(`${s}|*|*`, i);
    add(`${s}|${p.brand}|*`, i);
    add(`${s}|*|${b}`, i);
    add(`${s}|${p.brand}|${b}`, i);
  });
  for (const s of subcategories) s.brands.sort();
  catalogIndex = { users, products, subcategories, matches, bucketOf, subOf };
  return catalogIndex;
}

// ------------------------------------------------------------ constants ----

const DEVICE_CUM = cumulativeWeights([42, 48, 10]);
const PAYMENTS: PaymentMethod[] = [
  "credit_card",
  "debit_card",
  "paypal",
  "bank_transfer",
  "cash_on_delivery",
];
/** Payment mix by country (cash on delivery is common in EG, IN, SA). */
const PAYMENT_CUM: Record<CountryCode, number[]> = {
  US: cumulativeWeights([50, 20, 25, 5, 0]),
  GB: cumulativeWeights([40, 35, 20, 5, 0]),
  DE: cumulativeWeights([25, 15, 35, 25, 0]),
  FR: cumulativeWeights([45, 30, 15, 10, 0]),
  ES: cumulativeWeights([40, 30, 20, 10, 0]),
  IN: cumulativeWeights([20, 25, 10, 10, 35]),
  EG: cumulativeWeights([20, 15, 5, 10, 50]),
  SA: cumulativeWeights([30, 20, 5, 10, 35]),
};
const SHIPPING: ShippingMethod[] = ["standard", "express", "pickup"];
const SHIPPING_CUM = cumulativeWeights([65, 25, 10]);
const STREETS = [
  "Main St",
  "High St",
  "Park Ave",
  "Station Rd",
  "Church St",
  "Market St",
  "King St",
  "Mill Ln",
  "Garden Rd",
  "River Rd",
];

/** Median response time per service (ms) in normal operation. */
const SERVICE_MEDIAN_MS: Record<Service, number> = {
  "api-gateway": 15,
  "auth-service": 80,
  "catalog-service": 60,
  "search-service": 120,
  "cart-service": 50,
  "checkout-service": 250,
  "payment-service": 700,
  "inventory-service": 40,
  "order-service": 150,
};

/** Error codes a step can hit (besides the order failures), by step. */
const STEP_ERRORS: Record<"view" | "search" | "cart" | "any", ErrorCode[]> = {
  view: ["CAT-404", "CAT-404", "CAT-503"],
  search: ["SRCH-503", "SRCH-504"],
  cart: ["CART-409", "CART-500", "INV-504"],
  any: ["GW-429", "AUTH-403"],
};

/** Services an incident can hit, with the error codes it raises. */
const INCIDENTS: { service: Service; codes: ErrorCode[] }[] = [
  { service: "payment-service", codes: ["PAY-502", "PAY-504"] },
  { service: "search-service", codes: ["SRCH-503", "SRCH-504"] },
  { service: "inventory-service", codes: ["INV-504"] },
  { service: "catalog-service", codes: ["CAT-503"] },
  { service: "cart-service", codes: ["CART-500"] },
  { service: "auth-service", codes: ["AUTH-401"] },
];

/** 0..39: subcategory numbers, for weighted picks. */
const SUB_NUMBERS: readonly number[] = Array.from({ length: 40 }, (_, i) => i);

const INCIDENT_WINDOW_MS = 15 * 60_000;
const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

// ------------------------------------------------------------- sessions ----

type Step =
  | "start"
  | "after_search"
  | "after_empty_search"
  | "after_view"
  | "after_cart"
  | "after_purchase"
  | "after_order";

interface Session {
  id: string;
  userId: string;
  user: User;
  device: DeviceType;
  country: CountryCode;
  city: string;
  step: Step;
  /** Probability scale of converting (some visitors came to buy). */
  intent: number;
  lastTs: number;
  events: number;
  /** Matches key of the last search's results. */
  resultsKey?: string;
  lastViewed: number;
  cart: { index: number; quantity: number }[];
  order?: {
    id: string;
    items: OrderItem[];
    cents: number;
    payment: PaymentMethod;
    failure?: FailureReason;
    errorLogged: boolean;
  };
  retried: boolean;
  /** The last step failed with an error. */
  frustrated: boolean;
}

/** The active incident at a time, if any. */
interface Incident {
  service: Service;
  codes: ErrorCode[];
  /** Error probability of the affected service's steps. */
  errorRate: number;
}

// ------------------------------------------------------------ generator ----

// `new Date(ms).toISOString()` was a tenth of the generator's time. Events
// come many per second, so the "YYYY-MM-DDTHH:MM:SS." part is cached per
// second (two slots: a request's start and end may straddle a second).
const isoCache = [
  { sec: NaN, prefix: "" },
  { sec: NaN, prefix: "" },
];
let isoNext = 0;

/** `new Date(ms).toISOString()` for years 1970..9999, faster. */
export function isoMs(ms: number): string {
  const sec = Math.floor(ms / 1000);
  let prefix: string;
  if (isoCache[0].sec === sec) prefix = isoCache[0].prefix;
  else if (isoCache[1].sec === sec) prefix = isoCache[1].prefix;
  else {
    prefix = new Date(sec * 1000).toISOString().slice(0, 20);
    isoCache[isoNext] = { sec, prefix };
    isoNext ^= 1;
  }
  const m = ms - sec * 1000;
  return prefix + (m < 10 ? "00" : m < 100 ? "0" : "") + m + "Z";
}

/** A deterministic stream of event records; see the module comment. */
export class EventGenerator implements Iterable<GeneratedRecord> {
  readonly stats: GeneratorStats;
  readonly rate: number;
  readonly badRate: number;
  readonly dailyRhythm: boolean;

  #rng: Rng;
  #badRng: Rng;
  #ids: UuidV7Factory;
  #badIds: UuidV7Factory;
  #seedHash: number;
  #clock: number;
  #active: Session[] = [];
  #targetSessions: number;
  #index: CatalogIndex;
  #userOrder: number[];
  #subCum: number[];
  #productRank: Map<string, number[]>;
  #badTurn = 0;

  constructor(opts: GeneratorOptions) {
    const rate = opts.rate ?? 100;
    if (!(rate > 0 && Number.isFinite(rate))) {
      throw new RangeError(`rate must be > 0, got ${rate}`);
    }
    const badRate = opts.badRate ?? 0;
    if (!(badRate >= 0 && badRate <= 1)) {
      throw new RangeError(`badRate must be within 0..1, got ${badRate}`);
    }
    const start = typeof opts.startTime === "number"
      ? opts.startTime
      : opts.startTime.getTime();
    if (!Number.isFinite(start)) throw new RangeError("startTime is invalid");
    this.rate = rate;
    this.badRate = badRate;
    this.dailyRhythm = opts.dailyRhythm ?? false;
    const seed = String(opts.seed);
    this.#rng = new Rng(`${seed}/events`);
    this.#badRng = new Rng(`${seed}/bad`);
    this.#ids = new UuidV7Factory(new Rng(`${seed}/ids`));
    this.#badIds = new UuidV7Factory(new Rng(`${seed}/bad-ids`));
    this.#seedHash = hashString128(seed)[0];
    this.#clock = start;
    // About 10 s of think time between a visitor's clicks at low rates;
    // capped so a fast stream's warm-up (every session's first event) stays
    // short.
    this.#targetSessions = Math.max(10, Math.min(5_000, Math.round(rate * 10)));
    this.#index = getCatalogIndex();

    // Per-seed popularity: a few heavy users, popular subcategories and
    // best-selling products, as in real shops.
    const setup = new Rng(`${seed}/setup`);
    this.#userOrder = setup.shuffle(
      Array.from({ length: this.#index.users.length }, (_, i) => i),
    );
    this.#subCum = cumulativeWeights(
      this.#index.subcategories.map(() => 0.3 + setup.next()),
    );
    this.#productRank = new Map();
    for (const [key, list] of this.#index.matches) {
      this.#productRank.set(key, setup.shuffle([...list]));
    }

    this.stats = {
      records: 0,
      events: Object.fromEntries(
        [
          "product_view",
          "search",
          "add_to_cart",
          "purchase",
          "order_complete",
          "order_failed",
          "error",
        ]
          .map((t) => [t, 0]),
      ) as Record<EventType, number>,
      bad: Object.fromEntries(BAD_KIND_LIST.map((k) => [k, 0])) as Record<
        BadKind,
        number
      >,
      sessions: 0,
      orders: 0,
      failedOrders: 0,
    };
  }

  [Symbol.iterator](): Iterator<GeneratedRecord> {
    return { next: () => ({ done: false, value: this.next() }) };
  }

  /** The current event-time clock (epoch ms). */
  get clock(): number {
    return this.#clock;
  }

  /** The next record (never ends). */
  next(): GeneratedRecord {
    this.stats.records++;
    if (this.badRate > 0 && this.#badRng.next() < this.badRate) {
      return this.#badRecord();
    }
    const ts = Math.floor(this.#clock);
    this.#advanceClock();
    const event = this.#nextEvent(ts);
    this.stats.events[event.event_type]++;
    return { key: event.session_id, value: JSON.stringify(event), event, ts };
  }

  /** `n` records at once. */
  take(n: number): GeneratedRecord[] {
    const out: GeneratedRecord[] = new Array(n);
    for (let i = 0; i < n; i++) out[i] = this.next();
    return out;
  }

  #advanceClock(): void {
    let rate = this.rate;
    if (this.dailyRhythm) {
      const hour = (this.#clock % DAY_MS) / HOUR_MS;
      rate *= 1 + 0.6 * Math.sin((2 * Math.PI * (hour - 14)) / 24);
    }
    this.#clock += 1000 / rate;
  }

  // ------------------------------------------------------ time effects ----

  /** An incident in force at `ts`: 12% of 15-minute windows have one, lasting 2–10 minutes. */
  incidentAt(ts: number): Incident | undefined {
    const window = Math.floor(ts / INCIDENT_WINDOW_MS);
    const h = hash32(this.#seedHash, window, 0x1c1d);
    if (h % 100 >= 12) return undefined;
    const into = ts - window * INCIDENT_WINDOW_MS;
    const startMin = (h >>> 8) % 5;
    const durationMin = 2 + ((h >>> 12) % 9);
    if (into < startMin * 60_000 || into >= (startMin + durationMin) * 60_000) {
      return undefined;
    }
    const { service, codes } = INCIDENTS[(h >>> 16) % INCIDENTS.length];
    return { service, codes, errorRate: 0.15 + ((h >>> 20) % 30) / 100 };
  }

  /** The background error probability per step at `ts` (0.5%–2.5%, varying by hour). */
  baseErrorRate(ts: number): number {
    const hour = Math.floor(ts / HOUR_MS);
    return 0.005 + (hash32(this.#seedHash, hour, 0xe77) % 1000) / 50_000;
  }

  #responseTime(service: Service, ts: number, timeout = false): number {
    const rng = this.#rng;
    if (timeout) return rng.int(5_000, 30_000);
    let median = SERVICE_MEDIAN_MS[service];
    const inc = this.incidentAt(ts);
    if (inc && inc.service === service) median *= 5;
    const ms = Math.round(rng.logNormal(median, 0.55));
    return Math.min(LIMITS.maxResponseTimeMs, Math.max(1, ms));
  }

  // ---------------------------------------------------------- sessions ----

  #pickUser(): number {
    // Skewed activity: u^1.6 favours the head of a per-seed permutation.
    const u = this.#rng.next();
    return this
      .#userOrder[Math.floor(Math.pow(u, 1.6) * this.#userOrder.length)];
  }

  #newSession(ts: number): Session {
    const rng = this.#rng;
    const user = this.#index.users[this.#pickUser()];
    let country = user.country;
    let city = user.city;
    const place = rng.next();
    if (place < 0.03) {
      country = rng.pick(COUNTRY_CODES); // travelling
      city = rng.pick(COUNTRIES[country].cities as readonly { name: string }[])
        .name;
    } else if (place < 0.1) {
      city = rng.pick(COUNTRIES[country].cities as readonly { name: string }[])
        .name;
    }
    this.stats.sessions++;
    return {
      id: randomId(rng, "sess_"),
      userId: user.user_id,
      user,
      device: rng.pickWeighted(DEVICE_TYPES, DEVICE_CUM),
      country,
      city,
      step: "start",
      intent: rng.chance(0.3) ? 1.8 : 0.7,
      lastTs: ts,
      events: 0,
      lastViewed: 0,
      cart: [],
      retried: false,
      frustrated: false,
    };
  }

  #nextEvent(ts: number): Event {
    const active = this.#active;
    for (;;) {
      let slot: number;
      if (active.length < this.#targetSessions) {
        active.push(this.#newSession(ts));
        slot = active.length - 1;
      } else {
        slot = Math.floor(this.#rng.next() * active.length);
      }
      const session = active[slot];
      const event = this.#step(session, ts);
      if (event) {
        session.lastTs = ts;
        session.events++;
        return event;
      }
      // The visitor left: swap-remove (pool order only matters for determinism).
      const last = active.pop()!;
      if (slot < active.length) active[slot] = last;
    }
  }

  /** Session ids still in progress (their open orders may lack an outcome). */
  activeSessionIds(): string[] {
    return this.#active.map((s) => s.id);
  }

  #envelope<T extends EventType>(
    s: Session,
    type: T,
    ts: number,
    service: Service,
    responseTime: number,
    details: EventOf<T>["details"],
  ): EventOf<T> {
    return {
      event_id: this.#ids.next(ts),
      schema_version: SCHEMA_VERSION,
      event_type: type,
      event_ts: isoMs(ts),
      level: levelFor(type, responseTime),
      service,
      user_id: s.userId,
      session_id: s.id,
      device_type: s.device,
      geo: { country: s.country, city: s.city },
      response_time_ms: responseTime,
      details,
    };
  }

  /** When a request that ended at `ts` began (not before the session's previous event). */
  #startedAt(s: Session, ts: number, responseTime: number): string {
    return isoMs(Math.max(s.lastTs, ts - responseTime));
  }

  #error(
    s: Session,
    ts: number,
    code: ErrorCode,
    extra: { product_id?: string; order_id?: string } = {},
  ): Event {
    const info = ERROR_CODES[code];
    const rt = this.#responseTime(info.service, ts, info.http_status === 504);
    return this.#envelope(s, "error", ts, info.service, rt, {
      error_code: code,
      message: info.message,
      error_at: this.#startedAt(s, ts, rt),
      http_status: info.http_status,
      ...extra,
    });
  }

  /** A random step error for `kind` at `ts`, or undefined. */
  #maybeStepError(
    s: Session,
    ts: number,
    kind: "view" | "search" | "cart",
  ): Event | undefined {
    const rng = this.#rng;
    const inc = this.incidentAt(ts);
    const stepService: Service = kind === "view"
      ? "catalog-service"
      : kind === "search"
      ? "search-service"
      : "cart-service";
    if (
      inc && (inc.service === stepService ||
        (kind === "cart" && inc.service === "inventory-service") ||
        inc.service === "auth-service") &&
      rng.chance(inc.errorRate)
    ) {
      return this.#error(s, ts, rng.pick(inc.codes));
    }
    if (rng.chance(this.baseErrorRate(ts))) {
      const code = rng.chance(0.8)
        ? rng.pick(STEP_ERRORS[kind])
        : rng.pick(STEP_ERRORS.any);
      const extra = code === "CAT-404" && s.lastViewed
        ? { product_id: productIdOf(s.lastViewed) }
        : {};
      return this.#error(s, ts, code, extra);
    }
    return undefined;
  }

  #pickRanked(key: string): number {
    const list = this.#productRank.get(key)!;
    const u = this.#rng.next();
    return list[Math.floor(u * u * list.length)];
  }

  #search(s: Session, ts: number): Event {
    const rng = this.#rng;
    const idx = this.#index;
    const subNo = rng.pickWeighted(SUB_NUMBERS, this.#subCum);
    const sub = idx.subcategories[subNo];
    let query = rng.pick(sub.terms);
    const filters: SearchFilters = {};
    let brand = "*";
    let bucket = "*";
    const f = rng.next();
    if (f < 0.2) {
      brand = rng.pick(sub.brands);
      filters.brand = brand;
    } else if (f < 0.35) {
      const b = rng.int(0, PRICE_BUCKETS.length - 1);
      bucket = String(b);
      filters.price_range = `${PRICE_BUCKETS[b][0]}-${PRICE_BUCKETS[b][1]}`;
    } else if (f < 0.45) {
      filters.category = sub.category;
    } else if (f < 0.5) {
      filters.category = sub.category;
      const b = rng.int(0, PRICE_BUCKETS.length - 1);
      bucket = String(b);
      filters.price_range = `${PRICE_BUCKETS[b][0]}-${PRICE_BUCKETS[b][1]}`;
    }
    let key = `${subNo}|${brand}|${bucket}`;
    if (rng.chance(0.05)) {
      // A typo: nothing matches.
      const i = rng.int(0, query.length - 2);
      query = query.slice(0, i) + query[i + 1] + query[i] + query.slice(i + 2);
      key = "";
    }
    const results = this.#productRank.get(key)?.length ?? 0;
    const rt = this.#responseTime("search-service", ts);
    s.resultsKey = results > 0 ? key : undefined;
    s.step = results > 0 ? "after_search" : "after_empty_search";
    return this.#envelope(s, "search", ts, "search-service", rt, {
      query,
      results_count: results,
      filters,
      searched_at: this.#startedAt(s, ts, rt),
    });
  }

  #view(s: Session, ts: number, fromResults: boolean): Event {
    const rng = this.#rng;
    let index: number;
    if (fromResults && s.resultsKey) {
      index = this.#pickRanked(s.resultsKey);
    } else if (s.lastViewed && rng.chance(0.6)) {
      index = this.#pickRanked(`${this.#index.subOf[s.lastViewed]}|*|*`);
    } else {
      const subNo = rng.pickWeighted(SUB_NUMBERS, this.#subCum);
      index = this.#pickRanked(`${subNo}|*|*`);
    }
    const product = this.#index.products[index - 1];
    s.lastViewed = index;
    s.step = "after_view";
    const rt = this.#responseTime("catalog-service", ts);
    return this.#envelope(s, "product_view", ts, "catalog-service", rt, {
      product_id: product.product_id,
      category: product.category,
      unit_price: priceAtIndex(index, ts) / 100,
    });
  }

  #addToCart(s: Session, ts: number): Event {
    const rng = this.#rng;
    const index = s.lastViewed;
    const q = rng.next();
    const quantity = q < 0.7 ? 1 : q < 0.9 ? 2 : rng.int(3, 5);
    const inCart = s.cart.find((l) => l.index === index);
    const wanted = quantity + (inCart?.quantity ?? 0);
    if (stockAtIndex(index, ts) < wanted) {
      s.step = "after_view";
      return this.#error(s, ts, "INV-409", { product_id: productIdOf(index) });
    }
    if (inCart) inCart.quantity = wanted;
    else s.cart.push({ index, quantity });
    s.step = "after_cart";
    const rt = this.#responseTime("cart-service", ts);
    const details: AddToCartDetails = {
      product_id: productIdOf(index),
      quantity,
      unit_price: priceAtIndex(index, ts) / 100,
    };
    return this.#envelope(s, "add_to_cart", ts, "cart-service", rt, details);
  }

  #purchase(s: Session, ts: number): Event {
    const rng = this.#rng;
    let cents = 0;
    const items: OrderItem[] = s.cart.map((l) => {
      const price = priceAtIndex(l.index, ts);
      cents += price * l.quantity;
      return {
        product_id: productIdOf(l.index),
        quantity: l.quantity,
        unit_price: price / 100,
      };
    });
    const payment = s.order?.payment && s.retried
      ? rng.pick(PAYMENTS.filter((p) => p !== s.order!.payment))
      : rng.pickWeighted(PAYMENTS, PAYMENT_CUM[s.country]);
    // Decide now how the order ends; it is logged on the next step.
    let failure: FailureReason | undefined;
    const inc = this.incidentAt(ts);
    const outOfStock = s.cart.some((l) =>
      stockAtIndex(l.index, ts) < l.quantity
    );
    if (outOfStock) failure = "insufficient_stock";
    else if (
      inc?.service === "payment-service" && payment !== "cash_on_delivery" &&
      rng.chance(inc.errorRate * 1.5)
    ) failure = "payment_timeout";
    else {
      const r = rng.next();
      if (r < 0.05 && payment !== "cash_on_delivery") {
        failure = "payment_declined";
      } else if (r < 0.065) failure = "fraud_suspected";
      else if (r < 0.075) failure = "address_invalid";
    }
    s.order = {
      id: randomId(rng, "order_"),
      items,
      cents,
      payment,
      failure,
      errorLogged: false,
    };
    s.step = "after_purchase";
    this.stats.orders++;
    const home = s.user;
    const rt = this.#responseTime("checkout-service", ts);
    return this.#envelope(s, "purchase", ts, "checkout-service", rt, {
      order_id: s.order.id,
      amount: cents / 100,
      payment_method: payment,
      items,
      shipping_address: `${rng.int(100, 999)} ${
        rng.pick(STREETS)
      }, ${home.city}, ${COUNTRIES[home.country].name}`,
    });
  }

  #orderOutcome(s: Session, ts: number): Event {
    const rng = this.#rng;
    const order = s.order!;
    if (order.failure && !order.errorLogged) {
      // The failing service logs its error first, then the order fails.
      order.errorLogged = true;
      const code = FAILURE_REASONS[order.failure];
      const productId = order.failure === "insufficient_stock"
        ? order.items.find((l, i) =>
          stockAtIndex(s.cart[i].index, ts) < l.quantity
        )?.product_id
        : undefined;
      return this.#error(s, ts, code, {
        order_id: order.id,
        ...(productId ? { product_id: productId } : {}),
      });
    }
    s.step = "after_order";
    if (order.failure) {
      this.stats.failedOrders++;
      const service: Service = order.failure.startsWith("payment")
        ? "payment-service"
        : order.failure === "insufficient_stock"
        ? "inventory-service"
        : "order-service";
      const rt = this.#responseTime(
        service,
        ts,
        order.failure === "payment_timeout",
      );
      return this.#envelope(s, "order_failed", ts, service, rt, {
        order_id: order.id,
        attempted_amount: order.cents / 100,
        payment_method: order.payment,
        items: order.items,
        failure_reason: order.failure,
        failed_at: isoMs(ts),
      });
    }
    const shipping = rng.pickWeighted(SHIPPING, SHIPPING_CUM);
    const days = shipping === "express"
      ? rng.int(1, 2)
      : shipping === "pickup"
      ? rng.int(1, 3)
      : rng.int(3, 7);
    const rt = this.#responseTime("order-service", ts);
    s.cart = [];
    return this.#envelope(s, "order_complete", ts, "order-service", rt, {
      order_id: order.id,
      amount: order.cents / 100,
      payment_method: order.payment,
      items: order.items,
      shipping_method: shipping,
      delivery_estimate: new Date(ts + days * DAY_MS).toISOString().slice(
        0,
        10,
      ),
      completed_at: isoMs(ts),
    });
  }

  /**
   * Emits the session's next event, or returns undefined when the visitor
   * leaves (the session ends after its last event; an order in flight always
   * gets its outcome first).
   */
  #step(s: Session, ts: number): Event | undefined {
    const rng = this.#rng;
    if (s.step !== "after_purchase") {
      if (s.events >= 60) return undefined;
      // After an error, many visitors give up.
      if (s.frustrated) {
        s.frustrated = false;
        if (rng.chance(0.4)) return undefined;
      }
    }
    const r = rng.next();
    switch (s.step) {
      case "start":
        if (rng.chance(this.baseErrorRate(ts) / 2)) {
          s.frustrated = true;
          return this.#error(s, ts, "AUTH-401");
        }
        return this.#do(s, ts, r < 0.55 ? "search" : "view");
      case "after_search":
        if (r < 0.75) return this.#do(s, ts, "view", true);
        if (r < 0.87) return this.#do(s, ts, "search");
        return undefined;
      case "after_empty_search":
        return r < 0.5 ? this.#do(s, ts, "search") : undefined;
      case "after_view": {
        const cart = Math.min(0.6, 0.25 * s.intent);
        if (r < cart) return this.#do(s, ts, "cart");
        if (r < cart + 0.3) return this.#do(s, ts, "view");
        if (r < cart + 0.45) return this.#do(s, ts, "search");
        return undefined;
      }
      case "after_cart": {
        const buy = Math.min(0.7, 0.35 * s.intent);
        if (r < buy) return this.#purchase(s, ts);
        if (r < buy + 0.35) return this.#do(s, ts, "view");
        return undefined; // cart abandoned
      }
      case "after_purchase":
        return this.#orderOutcome(s, ts);
      case "after_order": {
        const order = s.order!;
        if (
          order.failure?.startsWith("payment") && !s.retried && r < 0.4
        ) {
          // Retry the same cart with another payment method: a new order.
          s.retried = true;
          return this.#purchase(s, ts);
        }
        s.cart = [];
        s.order = undefined;
        s.retried = false;
        s.step = "start";
        return r < 0.75 ? undefined : this.#do(s, ts, "search");
      }
    }
  }

  /** A funnel step, or an error instead of it (the step did not happen). */
  #do(
    s: Session,
    ts: number,
    kind: "view" | "search" | "cart",
    fromResults = false,
  ): Event {
    const err = this.#maybeStepError(s, ts, kind);
    if (err) {
      s.frustrated = true;
      return err;
    }
    if (kind === "search") return this.#search(s, ts);
    if (kind === "view") return this.#view(s, ts, fromResults);
    return this.#addToCart(s, ts);
  }

  // ------------------------------------------------------ bad records ----

  /** A valid standalone event from the bad stream, to mutate. */
  #template(ts: number, type: "purchase" | "search"): Event {
    const saved = { rng: this.#rng, ids: this.#ids };
    // Build with the bad streams so the good stream is untouched.
    this.#rng = this.#badRng;
    this.#ids = this.#badIds;
    try {
      const s = this.#newSession(ts);
      this.stats.sessions--; // not a real visit
      if (type === "search") return this.#search(s, ts);
      s.lastViewed = this.#pickRanked(`${this.#rng.int(0, 39)}|*|*`);
      s.cart = [{ index: s.lastViewed, quantity: this.#rng.int(1, 3) }];
      const e = this.#purchase(s, ts);
      this.stats.orders--;
      return e;
    } finally {
      this.#rng = saved.rng;
      this.#ids = saved.ids;
    }
  }

  #badRecord(): GeneratedRecord {
    const kind = BAD_KIND_LIST[this.#badTurn++ % BAD_KIND_LIST.length];
    this.stats.bad[kind]++;
    const ts = Math.floor(this.#clock);
    const turn = Math.floor(this.#badTurn / BAD_KIND_LIST.length);
    const base = this.#template(
      ts,
      kind === "html_in_string" || kind === "sql_in_string"
        ? "search"
        : "purchase",
    );
    const key = base.session_id;
    const obj = base as unknown as Record<string, unknown>;
    const details = obj.details as Record<string, unknown>;
    let value: string | Uint8Array;
    switch (kind) {
      case "invalid_utf8": {
        const bytes = encoder.encode(JSON.stringify(base));
        // Overwrite a byte inside the city name with a lone continuation
        // byte or an invalid lead byte: still one line, no longer UTF-8.
        const at = JSON.stringify(base).indexOf('"city":"') + 9;
        bytes[at] = [0xff, 0xc3, 0x80, 0xfe][turn % 4];
        if (bytes[at] === 0xc3) bytes[at + 1] = 0x28; // C3 28: bad sequence
        value = bytes;
        break;
      }
      case "invalid_json": {
        const text = JSON.stringify(base);
        value = [
          text.slice(0, Math.floor(text.length / 2)),
          text.replace('"level":', '"level"'),
          text.replace(/}$/, ",}"),
          `{'event_type': 'purchase'}`,
        ][turn % 4];
        break;
      }
      case "not_an_object":
        value = ["[1,2,3]", '"purchase"', "42", "null", "true"][turn % 5];
        break;
      case "missing_field": {
        const field =
          ["event_id", "user_id", "event_ts", "session_id", "details", "geo"][
            turn % 6
          ];
        delete obj[field];
        value = JSON.stringify(obj);
        break;
      }
      case "wrong_type": {
        const v = turn % 4;
        if (v === 0) obj.response_time_ms = String(obj.response_time_ms);
        else if (v === 1) details.amount = String(details.amount);
        else if (v === 2) obj.user_id = 42;
        else obj.geo = "EG";
        value = JSON.stringify(obj);
        break;
      }
      case "unknown_event_type":
        obj.event_type = ["refund", "page_view", "PURCHASE"][turn % 3];
        value = JSON.stringify(obj);
        break;
      case "invalid_value": {
        const v = turn % 4;
        if (v === 0) (obj.geo as Record<string, unknown>).country = "UK";
        else if (v === 1) obj.device_type = "smart_fridge";
        else if (v === 2) details.amount = (details.amount as number) + 0.001;
        else obj.event_ts = (obj.event_ts as string).replace("T", " ");
        value = JSON.stringify(obj);
        break;
      }
      case "out_of_range": {
        const v = turn % 4;
        if (v === 0) obj.response_time_ms = -5;
        else if (v === 1) {
          (details.items as OrderItem[])[0].quantity = 0;
        } else if (v === 2) obj.user_id = "user_99999";
        else obj.response_time_ms = 86_400_000;
        value = JSON.stringify(obj);
        break;
      }
      case "inconsistent":
        // amount ≠ Σ price × quantity (the original's bug, on purpose).
        details.amount = Math.round((details.amount as number) * 100 + 100) /
          100;
        value = JSON.stringify(obj);
        break;
      case "unsupported_schema_version":
        obj.schema_version = 2;
        value = JSON.stringify(obj);
        break;
      case "too_large":
        details.gift_message = "x".repeat(TOO_LARGE_BYTES);
        value = JSON.stringify(obj);
        break;
      case "future_timestamp":
        obj.event_ts = "3000-01-01T00:00:00.000Z";
        value = JSON.stringify(obj);
        break;
      case "html_in_string":
      case "sql_in_string": {
        const list = kind === "html_in_string" ? HOSTILE_HTML : HOSTILE_SQL;
        details.query = list[turn % list.length];
        value = JSON.stringify(obj);
        return { key, value, event: base, bad: kind, ts };
      }
    }
    return { key, value, bad: kind, ts };
  }
}

/** Creates a generator (see `EventGenerator`). */
export function createGenerator(opts: GeneratorOptions): EventGenerator {
  return new EventGenerator(opts);
}

/** Re-exported for tests and tools that need the catalog the generator uses. */
export function generatorCatalogs(): { users: User[]; products: Product[] } {
  const { users, products } = getCatalogIndex();
  return { users, products };
}
