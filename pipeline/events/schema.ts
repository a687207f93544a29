/**
 * Event schema v1: the TypeScript types of every event and the runtime
 * validator. Producer, consumer, tests, dbt (accepted values) and the site all
 * import this module; it is the one definition of what an event is.
 *
 * Rules kept here on purpose, not in callers:
 * - `validateEvent` never throws, whatever the bytes; a failure carries a typed
 *   `RejectReason` (for the dead-letter zone and its counters) and a short
 *   human detail naming the field.
 * - The stream agrees with the warehouse: whatever passes here can be stored
 *   by Parquet, Postgres `text` and `jsonb` and the marts. So no string (value
 *   or key) may hold U+0000 or another C0 control other than tab, newline and
 *   carriage return (`control_character`), or an unpaired UTF-16 surrogate
 *   such as the escape `"\ud800"` (`unpaired_surrogate`); nothing may nest
 *   deeper than the schema does (`too_deep`, LIMITS.maxDepth).
 * - Unknown keys are rejected (`unknown_key`), at every level, `__proto__`
 *   and `constructor` included. Rejecting (rather than keeping them in an
 *   `extras` column) keeps the contract strict and the warehouse exactly the
 *   schema: a field nobody declared never reaches a table, a mart or the site
 *   unseen. A producer that adds a field before the schema does loses nothing:
 *   its records wait in the dead-letter zone and `deno task redrive` sends
 *   them again once the schema knows the field.
 * - Time bounds are fixed dates, not the wall clock, so a replay validates the
 *   same way years later; a year-3000 timestamp is `out_of_range`. Given the
 *   Kafka record timestamp (ValidationContext), no timestamp of the event may
 *   be more than `maxFutureSkewMs` ahead of it (`future_timestamp`): an event
 *   cannot be sent before it happened, beyond clock skew. The reference is the
 *   record's own timestamp, never the wall clock, so a redrive or a replay
 *   judges a record the same way as the stream did.
 * - Money is exact to the cent: at most 2 decimals, and an order's amount must
 *   equal Σ unit_price × quantity of its items computed in integer cents.
 */

/** The only schema version this module produces and accepts. */
export const SCHEMA_VERSION = 1 as const;

/** Event types of v1: the original five plus product_view and add_to_cart. */
export const EVENT_TYPES = [
  "product_view",
  "search",
  "add_to_cart",
  "purchase",
  "order_complete",
  "order_failed",
  "error",
] as const;
export type EventType = typeof EVENT_TYPES[number];

/** Log levels: ERROR for error and order_failed, WARN for slow responses. */
export const LEVELS = ["INFO", "WARN", "ERROR"] as const;
export type Level = typeof LEVELS[number];

/** A response slower than this (ms) is logged at WARN. */
export const SLOW_RESPONSE_MS = 2000;

export const DEVICE_TYPES = ["desktop", "mobile", "tablet"] as const;
export type DeviceType = typeof DEVICE_TYPES[number];

/** A city the events use, with coordinates for the site's map. */
export interface City {
  name: string;
  lat: number;
  lon: number;
}

/**
 * Countries of the events (ISO 3166-1 alpha-2; the original's "UK" is "GB")
 * with their display name and cities (the original's city pools).
 */
export const COUNTRIES = {
  US: {
    name: "United States",
    cities: [
      { name: "New York", lat: 40.7128, lon: -74.006 },
      { name: "San Francisco", lat: 37.7749, lon: -122.4194 },
      { name: "Chicago", lat: 41.8781, lon: -87.6298 },
      { name: "Austin", lat: 30.2672, lon: -97.7431 },
    ],
  },
  GB: {
    name: "United Kingdom",
    cities: [
      { name: "London", lat: 51.5074, lon: -0.1278 },
      { name: "Manchester", lat: 53.4808, lon: -2.2426 },
      { name: "Liverpool", lat: 53.4084, lon: -2.9916 },
    ],
  },
  DE: {
    name: "Germany",
    cities: [
      { name: "Berlin", lat: 52.52, lon: 13.405 },
      { name: "Munich", lat: 48.1351, lon: 11.582 },
      { name: "Frankfurt", lat: 50.1109, lon: 8.6821 },
    ],
  },
  IN: {
    name: "India",
    cities: [
      { name: "Mumbai", lat: 19.076, lon: 72.8777 },
      { name: "Delhi", lat: 28.7041, lon: 77.1025 },
      { name: "Bangalore", lat: 12.9716, lon: 77.5946 },
    ],
  },
  EG: {
    name: "Egypt",
    cities: [
      { name: "Cairo", lat: 30.0444, lon: 31.2357 },
      { name: "Alexandria", lat: 31.2001, lon: 29.9187 },
      { name: "Giza", lat: 30.0131, lon: 31.2089 },
    ],
  },
  FR: {
    name: "France",
    cities: [
      { name: "Paris", lat: 48.8566, lon: 2.3522 },
      { name: "Lyon", lat: 45.764, lon: 4.8357 },
      { name: "Marseille", lat: 43.2965, lon: 5.3698 },
    ],
  },
  ES: {
    name: "Spain",
    cities: [
      { name: "Madrid", lat: 40.4168, lon: -3.7038 },
      { name: "Barcelona", lat: 41.3874, lon: 2.1686 },
      { name: "Valencia", lat: 39.4699, lon: -0.3763 },
    ],
  },
  SA: {
    name: "Saudi Arabia",
    cities: [
      { name: "Riyadh", lat: 24.7136, lon: 46.6753 },
      { name: "Jeddah", lat: 21.4858, lon: 39.1925 },
      { name: "Mecca", lat: 21.3891, lon: 39.8579 },
    ],
  },
} as const satisfies Record<string, { name: string; cities: readonly City[] }>;
export type CountryCode = keyof typeof COUNTRIES;
export const COUNTRY_CODES = Object.keys(COUNTRIES) as CountryCode[];

export const PAYMENT_METHODS = [
  "credit_card",
  "debit_card",
  "paypal",
  "bank_transfer",
  "cash_on_delivery",
] as const;
export type PaymentMethod = typeof PAYMENT_METHODS[number];

export const SHIPPING_METHODS = ["standard", "express", "pickup"] as const;
export type ShippingMethod = typeof SHIPPING_METHODS[number];

/** Services that emit events; an error is attributed to the one that failed. */
export const SERVICES = [
  "api-gateway",
  "auth-service",
  "catalog-service",
  "search-service",
  "cart-service",
  "checkout-service",
  "payment-service",
  "inventory-service",
  "order-service",
] as const;
export type Service = typeof SERVICES[number];

/** The service that emits each non-error event type. */
export const EVENT_TYPE_SERVICE: Record<Exclude<EventType, "error">, Service> =
  {
    product_view: "catalog-service",
    search: "search-service",
    add_to_cart: "cart-service",
    purchase: "checkout-service",
    order_complete: "order-service",
    order_failed: "order-service",
  };

/** What an error code means, who raises it and with which HTTP status. */
export interface ErrorCodeInfo {
  message: string;
  service: Service;
  http_status: number;
  meaning: string;
}

/**
 * Error codes `<SERVICE>-<HTTP status>`: unlike the original's random
 * ERR-1000..9999, each one means something and names its service.
 */
export const ERROR_CODES = {
  "GW-429": {
    message: "Too many requests",
    service: "api-gateway",
    http_status: 429,
    meaning: "The client exceeded its request rate and was throttled.",
  },
  "AUTH-401": {
    message: "User authentication failed",
    service: "auth-service",
    http_status: 401,
    meaning: "Sign-in or token check failed; the user must sign in again.",
  },
  "AUTH-403": {
    message: "Session expired",
    service: "auth-service",
    http_status: 403,
    meaning: "The session token expired during the visit.",
  },
  "CAT-404": {
    message: "Product not found",
    service: "catalog-service",
    http_status: 404,
    meaning: "A product page was requested for a delisted or unknown product.",
  },
  "CAT-503": {
    message: "Catalog service unavailable",
    service: "catalog-service",
    http_status: 503,
    meaning: "Product pages could not be served (catalog backend down).",
  },
  "SRCH-503": {
    message: "Search index unavailable",
    service: "search-service",
    http_status: 503,
    meaning:
      "The search cluster rejected the query (index down or rebuilding).",
  },
  "SRCH-504": {
    message: "Search timeout",
    service: "search-service",
    http_status: 504,
    meaning: "The search query took longer than the gateway timeout.",
  },
  "CART-409": {
    message: "Cart update conflict",
    service: "cart-service",
    http_status: 409,
    meaning: "The cart was changed concurrently (another tab or device).",
  },
  "CART-500": {
    message: "Cart update failed",
    service: "cart-service",
    http_status: 500,
    meaning: "The cart store failed to save the change.",
  },
  "INV-409": {
    message: "Insufficient stock",
    service: "inventory-service",
    http_status: 409,
    meaning: "The requested quantity exceeds the stock at that moment.",
  },
  "INV-504": {
    message: "Inventory check timeout",
    service: "inventory-service",
    http_status: 504,
    meaning: "The stock reservation did not answer in time.",
  },
  "PAY-402": {
    message: "Payment declined",
    service: "payment-service",
    http_status: 402,
    meaning: "The card issuer or wallet declined the charge.",
  },
  "PAY-502": {
    message: "Payment gateway error",
    service: "payment-service",
    http_status: 502,
    meaning: "The external payment provider returned an invalid response.",
  },
  "PAY-504": {
    message: "Payment gateway timeout",
    service: "payment-service",
    http_status: 504,
    meaning: "The external payment provider did not answer in time.",
  },
  "ORD-403": {
    message: "Order blocked by fraud check",
    service: "order-service",
    http_status: 403,
    meaning: "The fraud screen rejected the order.",
  },
  "ORD-422": {
    message: "Invalid shipping address",
    service: "order-service",
    http_status: 422,
    meaning: "The address failed validation with the carrier.",
  },
  "ORD-500": {
    message: "Order creation failed",
    service: "order-service",
    http_status: 500,
    meaning: "The order could not be persisted.",
  },
} as const satisfies Record<string, ErrorCodeInfo>;
export type ErrorCode = keyof typeof ERROR_CODES;
export const ERROR_CODE_LIST = Object.keys(ERROR_CODES) as ErrorCode[];

/** Why an order failed, and the error code logged with it. */
export const FAILURE_REASONS = {
  payment_declined: "PAY-402",
  payment_timeout: "PAY-504",
  insufficient_stock: "INV-409",
  fraud_suspected: "ORD-403",
  address_invalid: "ORD-422",
} as const satisfies Record<string, ErrorCode>;
export type FailureReason = keyof typeof FAILURE_REASONS;
export const FAILURE_REASON_LIST = Object.keys(
  FAILURE_REASONS,
) as FailureReason[];

/** Product categories and their subcategories (original-system.md §1.6). */
export const CATEGORIES = {
  "Electronics": ["Audio", "Cameras", "Laptops", "Smartphones", "TVs"],
  "Fashion": [
    "Accessories",
    "Footwear",
    "Kids' Fashion",
    "Men's Wear",
    "Women's Wear",
  ],
  "Home & Kitchen": ["Appliances", "Bedding", "Cookware", "Decor", "Furniture"],
  "Books": [
    "Biographies",
    "Children's",
    "Educational",
    "Fiction",
    "Non-Fiction",
  ],
  "Beauty": ["Fragrances", "Grooming", "Haircare", "Makeup", "Skincare"],
  "Grocery": ["Beverages", "Cleaning", "Food", "Personal Care", "Snacks"],
  "Toys": ["Action Figures", "Dolls", "Educational", "Outdoor", "Puzzles"],
  "Sports": ["Cycling", "Fitness", "Outdoor", "Swimwear", "Team Sports"],
} as const;
export type Category = keyof typeof CATEGORIES;
export const CATEGORY_NAMES = Object.keys(CATEGORIES) as Category[];

/** Catalog sizes: user_1..user_2000, prod_00001..prod_10000. */
export const USER_COUNT = 2000;
export const PRODUCT_COUNT = 10000;

/** Limits the validator enforces (absurd values are rejected, not stored). */
export const LIMITS = {
  /** Largest accepted message, in UTF-8 bytes (typical events are < 1 KiB). */
  maxEventBytes: 64 * 1024,
  /** Earliest and latest accepted timestamps (fixed, not the wall clock). */
  minTimestamp: "2000-01-01T00:00:00.000Z",
  maxTimestamp: "2100-01-01T00:00:00.000Z",
  maxResponseTimeMs: 120_000,
  maxQuantity: 100,
  maxItems: 50,
  /** Largest money value in cents (fits numeric(12,2)). */
  maxMoneyCents: 9_999_999_999,
  maxResultsCount: 100_000,
  /** Longest free-text field (query, message, address), in characters. */
  maxTextLength: 500,
  /** Longest name-like field (city, brand, category), in characters. */
  maxNameLength: 100,
  /**
   * Deepest nesting of objects and arrays the schema has: the event (1),
   * `details` (2), `details.items` (3), one item (4).
   */
  maxDepth: 4,
} as const;

/**
 * Default of how far an event's timestamps may run ahead of its Kafka record
 * timestamp (LOGPIPE_MAX_FUTURE_SKEW): 15 minutes. Clocks kept by NTP agree
 * within a second; the margin is for a badly kept host (the issue's producer
 * 5 minutes fast must pass with room to spare, not sit on the edge where
 * network delay decides), while an event dated hours or years ahead, which
 * would sit in the future of every live chart and mart, is refused. Kafka
 * 4's own broker check (`log.message.timestamp.after.max.ms`) is 1 hour.
 */
export const DEFAULT_MAX_FUTURE_SKEW_MS = 15 * 60_000;

/** Validation failures, each with what it means (dead-letter reasons). */
export const REJECT_REASONS = {
  too_large: "message larger than the limit (64 KiB)",
  invalid_utf8: "bytes are not valid UTF-8",
  invalid_json: "not parseable as JSON",
  not_an_object: "JSON value is not an object",
  unsupported_schema_version: "schema_version is not 1",
  missing_field: "a required field is absent or null",
  wrong_type: "a field has the wrong JSON type",
  unknown_event_type: "event_type is not one of EVENT_TYPES",
  invalid_value: "a value is malformed or not in its allowed set",
  out_of_range: "a value is outside its allowed range",
  inconsistent: "fields contradict each other (amount ≠ Σ price × quantity)",
  control_character:
    "a string or key holds U+0000 or another C0 control (tab, newline and CR are allowed)",
  unpaired_surrogate:
    'a string or key holds an unpaired UTF-16 surrogate (e.g. the escape "\\ud800")',
  too_deep: "objects or arrays nested deeper than the schema (4 levels)",
  unknown_key:
    "a key the schema does not define (at any level; __proto__ and constructor included)",
  future_timestamp:
    "a timestamp is more than the allowed skew ahead of the Kafka record timestamp",
} as const;
export type RejectReason = keyof typeof REJECT_REASONS;
export const REJECT_REASON_LIST = Object.keys(REJECT_REASONS) as RejectReason[];

// ---------------------------------------------------------------- types ----

/** Where the session takes place. */
export interface Geo {
  country: CountryCode;
  city: string;
}

/** One line of an order. Money is a JSON number with at most 2 decimals. */
export interface OrderItem {
  product_id: string;
  quantity: number;
  unit_price: number;
}

export interface ProductViewDetails {
  product_id: string;
  category: Category;
  unit_price: number;
}

export interface SearchFilters {
  category?: Category;
  /** "min-max" in whole currency units, e.g. "100-200". */
  price_range?: string;
  brand?: string;
}

export interface SearchDetails {
  query: string;
  results_count: number;
  filters: SearchFilters;
  searched_at: string;
}

export interface AddToCartDetails {
  product_id: string;
  quantity: number;
  unit_price: number;
}

export interface PurchaseDetails {
  order_id: string;
  amount: number;
  payment_method: PaymentMethod;
  items: OrderItem[];
  shipping_address: string;
}

export interface OrderCompleteDetails {
  order_id: string;
  amount: number;
  payment_method: PaymentMethod;
  items: OrderItem[];
  shipping_method: ShippingMethod;
  /** YYYY-MM-DD */
  delivery_estimate: string;
  completed_at: string;
}

export interface OrderFailedDetails {
  order_id: string;
  attempted_amount: number;
  payment_method: PaymentMethod;
  items: OrderItem[];
  failure_reason: FailureReason;
  failed_at: string;
}

export interface ErrorDetails {
  error_code: ErrorCode;
  message: string;
  error_at: string;
  http_status: number;
  /** The product concerned, when there is one (e.g. CAT-404, INV-409). */
  product_id?: string;
  /** The order concerned, when there is one (e.g. PAY-402). */
  order_id?: string;
}

/** Details of each event type. */
export interface DetailsByType {
  product_view: ProductViewDetails;
  search: SearchDetails;
  add_to_cart: AddToCartDetails;
  purchase: PurchaseDetails;
  order_complete: OrderCompleteDetails;
  order_failed: OrderFailedDetails;
  error: ErrorDetails;
}

/** The envelope every event shares; `details` depends on `event_type`. */
export interface EventOf<T extends EventType> {
  /** UUIDv7: unique and sortable by time. */
  event_id: string;
  schema_version: typeof SCHEMA_VERSION;
  event_type: T;
  /** UTC ISO-8601 with exactly 3 fractional digits, e.g. 2026-01-01T12:00:00.123Z */
  event_ts: string;
  level: Level;
  service: Service;
  user_id: string;
  session_id: string;
  device_type: DeviceType;
  geo: Geo;
  response_time_ms: number;
  details: DetailsByType[T];
}

/** Any v1 event (a discriminated union on `event_type`). */
export type Event = { [T in EventType]: EventOf<T> }[EventType];

/** The validator's answer. */
export type ValidationResult =
  | { ok: true; event: Event }
  | { ok: false; reason: RejectReason; detail: string };

/**
 * What the validator may know about the record beyond its bytes. Without a
 * Kafka timestamp there is no `future_timestamp` check (nothing to compare
 * with: the wall clock is never used).
 */
export interface ValidationContext {
  /**
   * The Kafka record timestamp, epoch ms (CreateTime from the producer or
   * LogAppendTime from the broker). Absent, not finite or ≤ 0 = unknown.
   */
  kafkaTimestampMs?: number;
  /**
   * How far (ms) any timestamp of the event may be ahead of
   * `kafkaTimestampMs`; default DEFAULT_MAX_FUTURE_SKEW_MS. The consumer
   * passes config.validation.maxFutureSkewMs (LOGPIPE_MAX_FUTURE_SKEW).
   */
  maxFutureSkewMs?: number;
}

// ------------------------------------------------------------ validator ----

const EVENT_TYPE_SET: ReadonlySet<string> = new Set(EVENT_TYPES);
const LEVEL_SET: ReadonlySet<string> = new Set(LEVELS);
const DEVICE_SET: ReadonlySet<string> = new Set(DEVICE_TYPES);
const SERVICE_SET: ReadonlySet<string> = new Set(SERVICES);
const PAYMENT_SET: ReadonlySet<string> = new Set(PAYMENT_METHODS);
const SHIPPING_SET: ReadonlySet<string> = new Set(SHIPPING_METHODS);
const FAILURE_SET: ReadonlySet<string> = new Set(FAILURE_REASON_LIST);
const CATEGORY_SET: ReadonlySet<string> = new Set(CATEGORY_NAMES);
const ERROR_CODE_SET: ReadonlySet<string> = new Set(ERROR_CODE_LIST);
const CITY_SETS: ReadonlyMap<string, ReadonlySet<string>> = new Map(
  COUNTRY_CODES.map((c) => [
    c,
    new Set(COUNTRIES[c].cities.map((city) => city.name)),
  ]),
);

// The keys each object of the schema may have (anything else: unknown_key).
const ENVELOPE_KEYS: ReadonlySet<string> = new Set(
  [
    "event_id",
    "schema_version",
    "event_type",
    "event_ts",
    "level",
    "service",
    "user_id",
    "session_id",
    "device_type",
    "geo",
    "response_time_ms",
    "details",
  ] satisfies (keyof EventOf<EventType>)[],
);
const GEO_KEYS: ReadonlySet<string> = new Set(
  ["country", "city"] satisfies (keyof Geo)[],
);
const ITEM_KEYS: ReadonlySet<string> = new Set(
  ["product_id", "quantity", "unit_price"] satisfies (keyof OrderItem)[],
);
const FILTER_KEYS: ReadonlySet<string> = new Set(
  ["category", "price_range", "brand"] satisfies (keyof SearchFilters)[],
);
const DETAIL_KEYS: { [T in EventType]: ReadonlySet<string> } = {
  product_view: new Set(
    [
      "product_id",
      "category",
      "unit_price",
    ] satisfies (keyof ProductViewDetails)[],
  ),
  add_to_cart: new Set(
    [
      "product_id",
      "quantity",
      "unit_price",
    ] satisfies (keyof AddToCartDetails)[],
  ),
  search: new Set(
    [
      "query",
      "results_count",
      "filters",
      "searched_at",
    ] satisfies (keyof SearchDetails)[],
  ),
  purchase: new Set(
    [
      "order_id",
      "amount",
      "payment_method",
      "items",
      "shipping_address",
    ] satisfies (keyof PurchaseDetails)[],
  ),
  order_complete: new Set(
    [
      "order_id",
      "amount",
      "payment_method",
      "items",
      "shipping_method",
      "delivery_estimate",
      "completed_at",
    ] satisfies (keyof OrderCompleteDetails)[],
  ),
  order_failed: new Set(
    [
      "order_id",
      "attempted_amount",
      "payment_method",
      "items",
      "failure_reason",
      "failed_at",
    ] satisfies (keyof OrderFailedDetails)[],
  ),
  error: new Set(
    [
      "error_code",
      "message",
      "error_at",
      "http_status",
      "product_id",
      "order_id",
    ] satisfies (keyof ErrorDetails)[],
  ),
};

const MIN_TS_MS = Date.parse(LIMITS.minTimestamp);
const MAX_TS_MS = Date.parse(LIMITS.maxTimestamp);
const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

// The non-fatal decoder is ~3x faster in Deno than the fatal one; the
// strict one only runs when the lenient output holds a U+FFFD.
const utf8Lenient = new TextDecoder("utf-8");
const utf8Strict = new TextDecoder("utf-8", { fatal: true });

// The failure of the check in progress. Checks return false and set these
// instead of allocating a result per field: the success path allocates nothing.
// Checks take the VALUE (read at the call site as `o.field`, a monomorphic
// property load on JSON.parse's objects) rather than a key: keyed loads with
// a varying key were most of the validator's cost.
let failReason: RejectReason = "invalid_value";
let failDetail = "";

// Latest accepted timestamp (epoch ms) of the validation in progress:
// Kafka timestamp + skew, or Infinity without a Kafka timestamp.
// Kept in a Float64Array: storing a double into a module variable allocates
// a heap number per validation, a typed-array slot does not.
const future = new Float64Array([Infinity, DEFAULT_MAX_FUTURE_SKEW_MS]);
const LIMIT = 0, SKEW = 1;

function fail(reason: RejectReason, detail: string): false {
  failReason = reason;
  failDetail = detail;
  return false;
}

function typeName(v: unknown): string {
  return v === null ? "null" : Array.isArray(v) ? "array" : typeof v;
}

/** missing_field for undefined/null, else wrong_type. */
function badType(v: unknown, name: string, expected: string): false {
  if (v === undefined || v === null) {
    return fail("missing_field", `${name} is missing`);
  }
  return fail(
    "wrong_type",
    `${name}: expected ${expected}, got ${typeName(v)}`,
  );
}

function quote(v: string): string {
  return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
}

function str(v: unknown, name: string, maxLen: number): boolean {
  if (typeof v !== "string") return badType(v, name, "string");
  if (v.length === 0 || v.length > maxLen) {
    return fail(
      "out_of_range",
      `${name}: length ${v.length} outside 1..${maxLen}`,
    );
  }
  return true;
}

function enumStr(
  v: unknown,
  name: string,
  allowed: ReadonlySet<string>,
): boolean {
  if (typeof v !== "string") return badType(v, name, "string");
  if (allowed.has(v)) return true;
  return fail("invalid_value", `${name}: ${quote(v)} is not allowed`);
}

function idStr(
  v: unknown,
  name: string,
  check: (s: string) => boolean,
): boolean {
  if (typeof v !== "string") return badType(v, name, "string");
  if (check(v)) return true;
  return fail("invalid_value", `${name}: ${quote(v)} is malformed`);
}

/**
 * True when `o` has exactly `expected` keys, the ones just checked: any other
 * key is `unknown_key`. Counting with for-in costs a fraction of Object.keys
 * (no array per object on the hot path). for-in also counts inherited
 * enumerable properties (Object.prototype has none unless something polluted
 * it), so on a mismatch the own keys decide, one by one.
 */
function onlyKeys(
  o: Record<string, unknown>,
  expected: number,
  allowed: ReadonlySet<string>,
  name: string,
  index = -1,
): boolean {
  let n = 0;
  for (const _ in o) n++;
  return n === expected || unknownKey(o, allowed, name, index);
}

function unknownKey(
  o: Record<string, unknown>,
  allowed: ReadonlySet<string>,
  name: string,
  index: number,
): boolean {
  for (const k of Object.keys(o)) {
    if (!allowed.has(k)) {
      return fail(
        "unknown_key",
        `${index < 0 ? name : `${name}[${index}]`}: unknown key ${
          quote(k)
        } (allowed: ${[...allowed].join(", ")})`,
      );
    }
  }
  return true;
}

// C0 controls other than tab (09), newline (0a) and carriage return (0d).
// deno-lint-ignore no-control-regex -- finding control characters is the point
const BAD_CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f]/;

/** A key as it can be shown in a detail: bare when plain, else JSON-escaped. */
function keyName(k: string): string {
  return /^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(k) ? k : quote(k);
}

/** "U+0000" */
function codePoint(c: number): string {
  return `U+${c.toString(16).toUpperCase().padStart(4, "0")}`;
}

/** False (with the reason) when `s` holds what Postgres text/jsonb refuse. */
function storableString(s: string, where: string): boolean {
  const at = s.search(BAD_CONTROL);
  if (at >= 0) {
    return fail(
      "control_character",
      `${where}: ${codePoint(s.charCodeAt(at))} at character ${at}`,
    );
  }
  if (!s.isWellFormed()) {
    let i = 0;
    for (; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0xd800 && c <= 0xdbff) {
        const d = s.charCodeAt(i + 1); // NaN past the end
        if (d >= 0xdc00 && d <= 0xdfff) i++;
        else break;
      } else if (c >= 0xdc00 && c <= 0xdfff) break;
    }
    return fail(
      "unpaired_surrogate",
      `${where}: unpaired surrogate ${
        codePoint(s.charCodeAt(i))
      } at character ${i}`,
    );
  }
  return true;
}

/**
 * Walks every key and string of a parsed value: each must be storable, and
 * no object or array may sit deeper than LIMITS.maxDepth (`level` is the
 * nesting level of `v` if it is one; the event itself is 1). Recursion stops
 * at the limit, so a 10,000-deep value costs a few calls.
 */
function storableTree(v: unknown, level: number, path: string): boolean {
  if (typeof v === "string") return storableString(v, path || "(value)");
  if (typeof v !== "object" || v === null) return true;
  if (level > LIMITS.maxDepth) {
    return fail(
      "too_deep",
      `${path}: nested deeper than the schema's ${LIMITS.maxDepth} levels`,
    );
  }
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      if (!storableTree(v[i], level + 1, `${path}[${i}]`)) return false;
    }
    return true;
  }
  for (const k of Object.keys(v)) {
    const at = path ? `${path}.${keyName(k)}` : keyName(k);
    if (!storableString(k, `key ${at}`)) return false;
    if (!storableTree((v as Record<string, unknown>)[k], level + 1, at)) {
      return false;
    }
  }
  return true;
}

function int(v: unknown, name: string, min: number, max: number): boolean {
  if (typeof v !== "number") return badType(v, name, "number");
  if (!Number.isInteger(v)) {
    return fail("wrong_type", `${name}: expected integer, got ${v}`);
  }
  if (v < min || v > max) {
    return fail("out_of_range", `${name}: ${v} outside ${min}..${max}`);
  }
  return true;
}

// The cents of the last money value checked (set by `money`).
let lastCents = 0;

function money(v: unknown, name: string, minCents: number): boolean {
  if (typeof v !== "number") return badType(v, name, "number");
  if (!Number.isFinite(v)) return fail("wrong_type", `${name}: not finite`);
  const cents = Math.round(v * 100);
  if (cents < minCents || cents > LIMITS.maxMoneyCents) {
    return fail(
      "out_of_range",
      `${name}: ${v} outside ${minCents / 100}..${LIMITS.maxMoneyCents / 100}`,
    );
  }
  // Exact test: a double prints with at most 2 decimals iff it is the double
  // nearest to cents/100. Float artifacts such as 734.9399999999999 (the
  // original's price × quantity) fail it.
  if (cents / 100 !== v) {
    return fail("invalid_value", `${name}: ${v} has more than 2 decimals`);
  }
  lastCents = cents;
  return true;
}

/**
 * Parses `YYYY-MM-DDTHH:MM:SS.mmmZ` strictly (real calendar dates only) to
 * epoch ms, or NaN. Hand-written because `Date.parse` accepts many shapes and
 * rolls 2026-02-30 over to March.
 */
export function parseEventTimestamp(s: string): number {
  if (
    s.length !== 24 || s.charCodeAt(10) !== 84 || s.charCodeAt(13) !== 58 ||
    s.charCodeAt(16) !== 58 || s.charCodeAt(19) !== 46 ||
    s.charCodeAt(23) !== 90
  ) return NaN;
  // Events of a stream share their day: the date part is parsed once and
  // remembered (the hot path then only reads the time of day).
  let dayMs: number;
  if (lastDay !== "" && s.startsWith(lastDay)) dayMs = lastDayMs;
  else {
    dayMs = parseIsoDate(s.slice(0, 10));
    if (Number.isNaN(dayMs)) return NaN;
    lastDay = s.slice(0, 10);
    lastDayMs = dayMs;
  }
  const hour = two(s, 11), minute = two(s, 14), second = two(s, 17);
  const m0 = s.charCodeAt(20) - 48,
    m1 = s.charCodeAt(21) - 48,
    m2 = s.charCodeAt(22) - 48;
  if (
    hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 ||
    second > 59 || m0 < 0 || m0 > 9 || m1 < 0 || m1 > 9 || m2 < 0 || m2 > 9
  ) return NaN;
  return dayMs + hour * 3_600_000 + minute * 60_000 + second * 1000 +
    m0 * 100 + m1 * 10 + m2;
}

let lastDay = "";
let lastDayMs = 0;

/** Two decimal digits at `at`, or -1. */
function two(s: string, at: number): number {
  const a = s.charCodeAt(at) - 48, b = s.charCodeAt(at + 1) - 48;
  if (a < 0 || a > 9 || b < 0 || b > 9) return -1;
  return a * 10 + b;
}

/** Parses a strict `YYYY-MM-DD` calendar date to epoch ms (UTC), or NaN. */
export function parseIsoDate(s: string): number {
  if (s.length !== 10 || s.charCodeAt(4) !== 45 || s.charCodeAt(7) !== 45) {
    return NaN;
  }
  const year = digits(s, 0, 4), month = digits(s, 5, 2), day = digits(s, 8, 2);
  if (
    year < 0 || month < 1 || month > 12 || day < 1 || day > daysIn(year, month)
  ) return NaN;
  return Date.UTC(year, month - 1, day);
}

function digits(s: string, at: number, n: number): number {
  let v = 0;
  for (let i = at; i < at + n; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    v = v * 10 + c;
  }
  return v;
}

// Hand-written id checks: a regex test costs ~130 ns on the hot path.

const IS_HEX = new Uint8Array(128);
for (const c of "0123456789abcdef") IS_HEX[c.charCodeAt(0)] = 1;

function hexRun(s: string, from: number, to: number): boolean {
  // A table lookup measured ~2.5x faster than range comparisons here.
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c > 127 || IS_HEX[c] === 0) return false;
  }
  return true;
}

/** True for a lower-case RFC 9562 UUIDv7 (version 7, variant 10). */
export function isUuidV7(s: string): boolean {
  if (
    s.length !== 36 || s.charCodeAt(8) !== 45 || s.charCodeAt(13) !== 45 ||
    s.charCodeAt(18) !== 45 || s.charCodeAt(23) !== 45 ||
    s.charCodeAt(14) !== 55 // '7'
  ) return false;
  const v = s.charCodeAt(19); // variant: 8, 9, a or b
  if (v !== 56 && v !== 57 && v !== 97 && v !== 98) return false;
  return hexRun(s, 0, 8) && hexRun(s, 9, 13) && hexRun(s, 15, 18) &&
    hexRun(s, 20, 23) && hexRun(s, 24, 36);
}

/** True for `prefix` followed by exactly 16 lower-case hex digits. */
export function isHexId(s: string, prefix: string): boolean {
  return s.length === prefix.length + 16 && s.startsWith(prefix) &&
    hexRun(s, prefix.length, s.length);
}

const isSessionId = (s: string) => isHexId(s, "sess_");
const isOrderId = (s: string) => isHexId(s, "order_");

function daysIn(year: number, month: number): number {
  if (month === 2 && year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0)) {
    return 29;
  }
  return DAYS_IN_MONTH[month - 1];
}

function timestamp(v: unknown, name: string): boolean {
  if (typeof v !== "string") return badType(v, name, "string");
  const ms = parseEventTimestamp(v);
  if (Number.isNaN(ms)) {
    return fail(
      "invalid_value",
      `${name}: ${quote(v)} is not YYYY-MM-DDTHH:MM:SS.mmmZ`,
    );
  }
  if (ms < MIN_TS_MS || ms >= MAX_TS_MS) {
    return fail(
      "out_of_range",
      `${name}: ${v} outside ${LIMITS.minTimestamp}..${LIMITS.maxTimestamp}`,
    );
  }
  return ms <= future[LIMIT] || futureTimestamp(name, v, ms);
}

// Failure paths live in functions of their own: the checks on the success
// path stay small enough for V8 to inline.
function futureTimestamp(name: string, v: string, ms: number): false {
  const skewMs = future[SKEW];
  const kafkaMs = future[LIMIT] - skewMs;
  return fail(
    "future_timestamp",
    `${name}: ${v} is ${
      formatLead(ms - kafkaMs)
    } ahead of the Kafka timestamp ${
      new Date(kafkaMs).toISOString()
    } (allowed: ${formatLead(skewMs)})`,
  );
}

/** 754000 → "12 min 34 s", 1500 → "1.5 s". */
function formatLead(ms: number): string {
  if (ms < 60_000) return `${Math.round(ms / 100) / 10} s`;
  const min = Math.floor(ms / 60_000);
  const s = Math.round((ms % 60_000) / 1000);
  return s ? `${min} min ${s} s` : `${min} min`;
}

function catalogId(
  v: unknown,
  name: string,
  prefix: string,
  fixedDigits: number,
  max: number,
): boolean {
  if (typeof v !== "string") return badType(v, name, "string");
  const n = v.length - prefix.length;
  const num = n > 0 && n <= 9 && v.startsWith(prefix)
    ? digits(v, prefix.length, n)
    : -1;
  if (
    num < 0 ||
    (fixedDigits > 0
      ? n !== fixedDigits
      : n > 1 && v.charCodeAt(prefix.length) === 48 /* no leading zero */)
  ) {
    return fail("invalid_value", `${name}: ${quote(v)} is malformed`);
  }
  if (num < 1 || num > max) {
    return fail("out_of_range", `${name}: ${v} is not in the catalog`);
  }
  return true;
}

function userId(v: unknown, name: string): boolean {
  return catalogId(v, name, "user_", 0, USER_COUNT);
}

function productId(v: unknown, name: string): boolean {
  return catalogId(v, name, "prod_", 5, PRODUCT_COUNT);
}

function isObject(v: unknown, name: string): v is Record<string, unknown> {
  if (typeof v === "object" && v !== null && !Array.isArray(v)) return true;
  return badType(v, name, "object");
}

// Σ unit_price × quantity of the last items array checked, in cents.
let itemsCents = 0;

function items(v: unknown): boolean {
  if (!Array.isArray(v)) return badType(v, "details.items", "array");
  if (v.length < 1 || v.length > LIMITS.maxItems) {
    return fail(
      "out_of_range",
      `details.items: ${v.length} lines outside 1..${LIMITS.maxItems}`,
    );
  }
  let sum = 0;
  for (let i = 0; i < v.length; i++) {
    const line = v[i];
    if (!isObject(line, `details.items[${i}]`)) return false;
    const q = line.quantity;
    if (
      !productId(line.product_id, `details.items[${i}].product_id`) ||
      !int(q, `details.items[${i}].quantity`, 1, LIMITS.maxQuantity) ||
      !money(line.unit_price, `details.items[${i}].unit_price`, 1) ||
      !onlyKeys(line, 3, ITEM_KEYS, "details.items", i)
    ) return false;
    sum += lastCents * (q as number);
  }
  itemsCents = sum;
  return true;
}

function amountMatches(name: string): boolean {
  if (lastCents !== itemsCents) {
    return fail(
      "inconsistent",
      `${name} ${lastCents / 100} ≠ Σ unit_price × quantity ${
        itemsCents / 100
      }`,
    );
  }
  return true;
}

function isoDate(v: unknown, name: string): boolean {
  if (typeof v !== "string") return badType(v, name, "string");
  const ms = parseIsoDate(v);
  if (Number.isNaN(ms)) {
    return fail("invalid_value", `${name} is not YYYY-MM-DD`);
  }
  if (ms < MIN_TS_MS || ms >= MAX_TS_MS) {
    return fail("out_of_range", `${name}: ${v} out of range`);
  }
  return true;
}

const PRICE_RANGE = /^\d{1,7}-\d{1,7}$/;

function searchFilters(f: unknown): boolean {
  if (!isObject(f, "details.filters")) return false;
  if (
    f.category !== undefined &&
    !enumStr(f.category, "details.filters.category", CATEGORY_SET)
  ) return false;
  const range = f.price_range;
  if (range !== undefined) {
    if (
      !idStr(range, "details.filters.price_range", (s) => PRICE_RANGE.test(s))
    ) {
      return false;
    }
    const dash = (range as string).indexOf("-");
    if (
      Number((range as string).slice(0, dash)) >=
        Number((range as string).slice(dash + 1))
    ) {
      return fail(
        "out_of_range",
        `details.filters.price_range: ${range} is empty`,
      );
    }
  }
  if (
    f.brand !== undefined &&
    !str(f.brand, "details.filters.brand", LIMITS.maxNameLength)
  ) return false;
  return onlyKeys(
    f,
    (f.category !== undefined ? 1 : 0) + (range !== undefined ? 1 : 0) +
      (f.brand !== undefined ? 1 : 0),
    FILTER_KEYS,
    "details.filters",
  );
}

function checkDetails(type: EventType, d: Record<string, unknown>): boolean {
  switch (type) {
    case "product_view":
      return productId(d.product_id, "details.product_id") &&
        enumStr(d.category, "details.category", CATEGORY_SET) &&
        money(d.unit_price, "details.unit_price", 1) &&
        onlyKeys(d, 3, DETAIL_KEYS.product_view, "details");
    case "add_to_cart":
      return productId(d.product_id, "details.product_id") &&
        int(d.quantity, "details.quantity", 1, LIMITS.maxQuantity) &&
        money(d.unit_price, "details.unit_price", 1) &&
        onlyKeys(d, 3, DETAIL_KEYS.add_to_cart, "details");
    case "search":
      return str(d.query, "details.query", LIMITS.maxTextLength) &&
        int(
          d.results_count,
          "details.results_count",
          0,
          LIMITS.maxResultsCount,
        ) &&
        searchFilters(d.filters) &&
        timestamp(d.searched_at, "details.searched_at") &&
        onlyKeys(d, 4, DETAIL_KEYS.search, "details");
    case "purchase":
      return idStr(d.order_id, "details.order_id", isOrderId) &&
        enumStr(d.payment_method, "details.payment_method", PAYMENT_SET) &&
        str(
          d.shipping_address,
          "details.shipping_address",
          LIMITS.maxTextLength,
        ) &&
        items(d.items) && money(d.amount, "details.amount", 1) &&
        amountMatches("details.amount") &&
        onlyKeys(d, 5, DETAIL_KEYS.purchase, "details");
    case "order_complete":
      return idStr(d.order_id, "details.order_id", isOrderId) &&
        enumStr(d.payment_method, "details.payment_method", PAYMENT_SET) &&
        enumStr(d.shipping_method, "details.shipping_method", SHIPPING_SET) &&
        isoDate(d.delivery_estimate, "details.delivery_estimate") &&
        timestamp(d.completed_at, "details.completed_at") &&
        items(d.items) && money(d.amount, "details.amount", 1) &&
        amountMatches("details.amount") &&
        onlyKeys(d, 7, DETAIL_KEYS.order_complete, "details");
    case "order_failed":
      return idStr(d.order_id, "details.order_id", isOrderId) &&
        enumStr(d.payment_method, "details.payment_method", PAYMENT_SET) &&
        enumStr(d.failure_reason, "details.failure_reason", FAILURE_SET) &&
        timestamp(d.failed_at, "details.failed_at") && items(d.items) &&
        money(d.attempted_amount, "details.attempted_amount", 1) &&
        amountMatches("details.attempted_amount") &&
        onlyKeys(d, 6, DETAIL_KEYS.order_failed, "details");
    case "error":
      return enumStr(d.error_code, "details.error_code", ERROR_CODE_SET) &&
        str(d.message, "details.message", LIMITS.maxTextLength) &&
        timestamp(d.error_at, "details.error_at") &&
        int(d.http_status, "details.http_status", 100, 599) &&
        (d.product_id === undefined ||
          productId(d.product_id, "details.product_id")) &&
        (d.order_id === undefined ||
          idStr(d.order_id, "details.order_id", isOrderId)) &&
        onlyKeys(
          d,
          4 + (d.product_id !== undefined ? 1 : 0) +
            (d.order_id !== undefined ? 1 : 0),
          DETAIL_KEYS.error,
          "details",
        );
  }
}

function checkEnvelope(o: Record<string, unknown>): boolean {
  const sv = o.schema_version;
  if (sv !== SCHEMA_VERSION) {
    if (typeof sv !== "number") return badType(sv, "schema_version", "number");
    return fail(
      "unsupported_schema_version",
      `schema_version ${sv} is not supported (only ${SCHEMA_VERSION})`,
    );
  }
  const type = o.event_type;
  if (typeof type !== "string") return badType(type, "event_type", "string");
  if (!EVENT_TYPE_SET.has(type)) {
    return fail("unknown_event_type", `event_type ${quote(type)} is unknown`);
  }
  if (
    !idStr(o.event_id, "event_id", isUuidV7) ||
    !timestamp(o.event_ts, "event_ts") ||
    !enumStr(o.level, "level", LEVEL_SET) ||
    !enumStr(o.service, "service", SERVICE_SET) ||
    !userId(o.user_id, "user_id") ||
    !idStr(o.session_id, "session_id", isSessionId) ||
    !enumStr(o.device_type, "device_type", DEVICE_SET)
  ) return false;
  const geo = o.geo;
  if (!isObject(geo, "geo")) return false;
  const country = geo.country;
  if (typeof country !== "string") {
    return badType(country, "geo.country", "string");
  }
  const cities = CITY_SETS.get(country);
  if (!cities) {
    return fail(
      "invalid_value",
      `geo.country: ${quote(country)} is not one of ${COUNTRY_CODES.join(",")}${
        country === "UK" ? " (ISO 3166 uses GB)" : ""
      }`,
    );
  }
  const city = geo.city;
  if (!str(city, "geo.city", LIMITS.maxNameLength)) return false;
  if (!cities.has(city as string)) {
    return fail(
      "invalid_value",
      `geo.city: ${quote(city as string)} is not a city of ${country}`,
    );
  }
  if (!onlyKeys(geo, 2, GEO_KEYS, "geo")) return false;
  if (
    !int(o.response_time_ms, "response_time_ms", 0, LIMITS.maxResponseTimeMs)
  ) return false;
  const details = o.details;
  if (!isObject(details, "details")) return false;
  return checkDetails(type as EventType, details) &&
    onlyKeys(o, 12, ENVELOPE_KEYS, "event");
}

/**
 * Validates a value already parsed from JSON (e.g. by a caller that parsed it
 * for other reasons). Never throws. Every key and string is checked (there
 * is no text to tell that none can hold a control character).
 */
export function validateParsed(
  value: unknown,
  context?: ValidationContext,
): ValidationResult {
  return checkValue(value, true, context);
}

function checkValue(
  value: unknown,
  scanStrings: boolean,
  context: ValidationContext | undefined,
): ValidationResult {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return {
      ok: false,
      reason: "not_an_object",
      detail: `expected a JSON object, got ${typeName(value)}`,
    };
  }
  const skew = context?.maxFutureSkewMs;
  const skewMs = typeof skew === "number" && skew >= 0
    ? skew
    : DEFAULT_MAX_FUTURE_SKEW_MS;
  const kafkaMs = context?.kafkaTimestampMs;
  future[SKEW] = skewMs;
  future[LIMIT] = typeof kafkaMs === "number" && kafkaMs > 0
    ? kafkaMs + skewMs // NaN > 0 is false; Infinity stays no limit
    : Infinity;
  try {
    if (scanStrings && !storableTree(value, 1, "")) return failed();
    if (checkEnvelope(value as Record<string, unknown>)) {
      return { ok: true, event: value as Event };
    }
    // Whatever nests deeper than the schema fails some check above (a field
    // of the wrong type, an unknown key); name the nesting, the real cause.
    // Off the success path, so valid events never pay for the walk.
    if (!scanStrings) storableTree(value, 1, "");
  } catch (err) {
    // Unreachable for JSON.parse output; kept so that a hostile object
    // (getters, proxies) passed by a caller still cannot make this throw.
    return {
      ok: false,
      reason: "invalid_value",
      detail: `validator error: ${String(err).slice(0, 200)}`,
    };
  }
  return failed();
}

function failed(): ValidationResult {
  return { ok: false, reason: failReason, detail: failDetail };
}

/**
 * Validates one Kafka message value (bytes as received, or text). Never
 * throws; fast enough for the hot path (see pipeline/bench/validator.ts).
 * With `context.kafkaTimestampMs` (the record's timestamp) a timestamp more
 * than `context.maxFutureSkewMs` ahead of it is `future_timestamp`.
 */
export function validateEvent(
  input: Uint8Array | string,
  context?: ValidationContext,
): ValidationResult {
  let text: string;
  if (typeof input === "string") {
    // A JS string of n UTF-16 units needs at least n UTF-8 bytes.
    if (
      input.length > LIMITS.maxEventBytes ||
      (input.length * 3 > LIMITS.maxEventBytes &&
        utf8ByteLength(input) > LIMITS.maxEventBytes)
    ) {
      return {
        ok: false,
        reason: "too_large",
        detail: `more than ${LIMITS.maxEventBytes} bytes`,
      };
    }
    if (!input.isWellFormed()) {
      return {
        ok: false,
        reason: "invalid_utf8",
        detail: "text has an unpaired surrogate",
      };
    }
    text = input;
  } else if (input instanceof Uint8Array) {
    if (input.byteLength > LIMITS.maxEventBytes) {
      return {
        ok: false,
        reason: "too_large",
        detail: `${input.byteLength} bytes > ${LIMITS.maxEventBytes}`,
      };
    }
    // The lenient decoder turns every invalid sequence into U+FFFD; without
    // one in its output the bytes were valid UTF-8 (for ASCII, nearly every
    // event, V8 answers the search at once). A U+FFFD may also be real, so
    // only then does the strict decoder decide.
    text = utf8Lenient.decode(input);
    if (text.indexOf("\uFFFD") !== -1) {
      try {
        text = utf8Strict.decode(input);
      } catch {
        return {
          ok: false,
          reason: "invalid_utf8",
          detail: "bytes are not valid UTF-8",
        };
      }
    }
  } else {
    return {
      ok: false,
      reason: "wrong_type",
      detail: `input is ${typeName(input)}, not bytes or text`,
    };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return {
      ok: false,
      reason: "invalid_json",
      detail: err instanceof Error
        ? err.message.slice(0, 200)
        : "not parseable",
    };
  }
  // JSON text cannot carry a control character or a surrogate in a string
  // other than as an escape (raw ones are a JSON or UTF-8 error above), so
  // without a backslash there is nothing to look for: the walk over every
  // string is only paid by the rare event that has one.
  return checkValue(value, text.indexOf("\\") !== -1, context);
}

/** UTF-8 byte length of a string (unpaired surrogates count as 3, like U+FFFD). */
export function utf8ByteLength(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

/** The level an event of this type and response time is logged at. */
export function levelFor(type: EventType, responseTimeMs: number): Level {
  if (type === "error" || type === "order_failed") return "ERROR";
  return responseTimeMs > SLOW_RESPONSE_MS ? "WARN" : "INFO";
}
