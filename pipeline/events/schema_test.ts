// Tests mutate events freely through untyped paths.
// deno-lint-ignore-file no-explicit-any
import assert from "node:assert/strict";
import {
  DEFAULT_MAX_FUTURE_SKEW_MS,
  type Event,
  EVENT_TYPES,
  isUuidV7,
  LIMITS,
  parseEventTimestamp,
  parseIsoDate,
  REJECT_REASON_LIST,
  type RejectReason,
  validateEvent,
  validateParsed,
} from "./schema.ts";
import { BAD_KINDS, createGenerator, recordBytes } from "./generator.ts";
import { Rng } from "./rng.ts";

const START = Date.UTC(2026, 0, 5, 10);

/** One valid example of every event type, from the generator. */
function examples(): Map<string, Event> {
  const g = createGenerator({ seed: "schema-test", startTime: START });
  const out = new Map<string, Event>();
  for (let i = 0; i < 200_000 && out.size < EVENT_TYPES.length; i++) {
    const r = g.next();
    if (r.event && !out.has(r.event.event_type)) {
      out.set(r.event.event_type, r.event);
    }
  }
  return out;
}
const EXAMPLES = examples();

function clone<T>(v: T): T {
  return JSON.parse(JSON.stringify(v));
}

function reasonOf(value: unknown): RejectReason | "ok" {
  const r = validateEvent(
    typeof value === "string" ? value : JSON.stringify(value),
  );
  return r.ok ? "ok" : r.reason;
}

Deno.test("every event type has a valid example that passes, as text and as bytes", () => {
  assertEqualsSet([...EXAMPLES.keys()], [...EVENT_TYPES]);
  for (const [type, event] of EXAMPLES) {
    const text = JSON.stringify(event);
    const fromText = validateEvent(text);
    const fromBytes = validateEvent(new TextEncoder().encode(text));
    assert.ok(fromText.ok, `${type}: ${JSON.stringify(fromText)}`);
    assert.ok(fromBytes.ok, `${type}: ${JSON.stringify(fromBytes)}`);
    assert.deepEqual(fromBytes.event, event);
  }
});

function assertEqualsSet(a: string[], b: string[]) {
  assert.deepEqual([...a].sort(), [...b].sort());
}

Deno.test("hostile text in a valid event is valid data", () => {
  const search = clone(EXAMPLES.get("search")!) as Extract<
    Event,
    { event_type: "search" }
  >;
  for (
    const q of [
      "<img src=x onerror=alert(1)>",
      "'; DROP TABLE raw.events; --",
      "ünïcödé 検索 🚀",
    ]
  ) {
    search.details.query = q;
    assert.equal(reasonOf(search), "ok", q);
  }
});

/** [description, mutation of a purchase event, expected reason] */
const MUTATIONS: [string, (e: Record<string, any>) => unknown, RejectReason][] =
  [
    [
      "schema_version 2",
      (e) => (e.schema_version = 2, e),
      "unsupported_schema_version",
    ],
    ["schema_version '1'", (e) => (e.schema_version = "1", e), "wrong_type"],
    ["no schema_version", (e) => (delete e.schema_version, e), "missing_field"],
    ["no event_id", (e) => (delete e.event_id, e), "missing_field"],
    ["null user_id", (e) => (e.user_id = null, e), "missing_field"],
    ["no details", (e) => (delete e.details, e), "missing_field"],
    ["no items", (e) => (delete e.details.items, e), "missing_field"],
    [
      "event_id uuid v4",
      (e) => (e.event_id = crypto.randomUUID(), e),
      "invalid_value",
    ],
    ["event_id number", (e) => (e.event_id = 7, e), "wrong_type"],
    ["unknown type", (e) => (e.event_type = "refund", e), "unknown_event_type"],
    ["type not string", (e) => (e.event_type = 3, e), "wrong_type"],
    ["level debug", (e) => (e.level = "DEBUG", e), "invalid_value"],
    ["service", (e) => (e.service = "ecommerce-platform", e), "invalid_value"],
    ["user_0", (e) => (e.user_id = "user_0", e), "out_of_range"],
    ["user_2001", (e) => (e.user_id = "user_2001", e), "out_of_range"],
    ["user_007", (e) => (e.user_id = "user_007", e), "invalid_value"],
    ["session id", (e) => (e.session_id = "sess_12345", e), "invalid_value"],
    ["device", (e) => (e.device_type = "phone", e), "invalid_value"],
    ["country UK", (e) => (e.geo.country = "UK", e), "invalid_value"],
    [
      "city of other country",
      (e) => (e.geo = { country: "FR", city: "Berlin" }, e),
      "invalid_value",
    ],
    ["geo string", (e) => (e.geo = "EG", e), "wrong_type"],
    ["rt string", (e) => (e.response_time_ms = "12", e), "wrong_type"],
    ["rt float", (e) => (e.response_time_ms = 1.5, e), "wrong_type"],
    ["rt negative", (e) => (e.response_time_ms = -1, e), "out_of_range"],
    ["rt one day", (e) => (e.response_time_ms = 86_400_000, e), "out_of_range"],
    [
      "ts year 3000",
      (e) => (e.event_ts = "3000-01-01T00:00:00.000Z", e),
      "out_of_range",
    ],
    [
      "ts 1999",
      (e) => (e.event_ts = "1999-12-31T23:59:59.999Z", e),
      "out_of_range",
    ],
    [
      "ts no millis",
      (e) => (e.event_ts = "2026-01-01T00:00:00Z", e),
      "invalid_value",
    ],
    [
      "ts microseconds",
      (e) => (e.event_ts = "2026-01-01T00:00:00.123456Z", e),
      "invalid_value",
    ],
    [
      "ts offset",
      (e) => (e.event_ts = "2026-01-01T00:00:00.000+01:00", e),
      "invalid_value",
    ],
    [
      "ts Feb 30",
      (e) => (e.event_ts = "2026-02-30T00:00:00.000Z", e),
      "invalid_value",
    ],
    ["ts number", (e) => (e.event_ts = 1767225600000, e), "wrong_type"],
    [
      "amount 3 decimals",
      (e) => (e.details.amount += 0.001, e),
      "invalid_value",
    ],
    [
      "amount float artifact",
      (
        e,
      ) => (e.details.items = [{
        ...e.details.items[0],
        quantity: 3,
        unit_price: 244.98,
      }],
        e.details.amount = 734.9399999999999,
        e),
      "invalid_value",
    ],
    [
      "amount + 1",
      (
        e,
      ) => (e.details.amount = Math.round(e.details.amount * 100 + 100) / 100,
        e),
      "inconsistent",
    ],
    [
      "amount string",
      (e) => (e.details.amount = String(e.details.amount), e),
      "wrong_type",
    ],
    ["amount negative", (e) => (e.details.amount = -5, e), "out_of_range"],
    [
      "amount NaN-ish huge",
      (e) => (e.details.amount = 1e300, e),
      "out_of_range",
    ],
    ["quantity 0", (e) => (e.details.items[0].quantity = 0, e), "out_of_range"],
    [
      "quantity 1.5",
      (e) => (e.details.items[0].quantity = 1.5, e),
      "wrong_type",
    ],
    ["items empty", (e) => (e.details.items = [], e), "out_of_range"],
    ["items object", (e) => (e.details.items = {}, e), "wrong_type"],
    ["item not object", (e) => (e.details.items = [5], e), "wrong_type"],
    [
      "product id",
      (e) => (e.details.items[0].product_id = "prod_99999", e),
      "out_of_range",
    ],
    [
      "product id short",
      (e) => (e.details.items[0].product_id = "prod_1", e),
      "invalid_value",
    ],
    [
      "payment",
      (e) => (e.details.payment_method = "bitcoin", e),
      "invalid_value",
    ],
    [
      "order id",
      (e) => (e.details.order_id = "order_123456", e),
      "invalid_value",
    ],
    [
      "address empty",
      (e) => (e.details.shipping_address = "", e),
      "out_of_range",
    ],
    [
      "address huge",
      (e) => (e.details.shipping_address = "x".repeat(501), e),
      "out_of_range",
    ],
    ["details array", (e) => (e.details = [], e), "wrong_type"],
  ];

Deno.test("every mutation yields its reason", () => {
  const purchase = EXAMPLES.get("purchase")!;
  for (const [name, mutate, expected] of MUTATIONS) {
    const result = validateEvent(
      JSON.stringify(mutate(clone(purchase) as any)),
    );
    assert.equal(
      result.ok ? "ok" : result.reason,
      expected,
      `${name}: ${JSON.stringify(result)}`,
    );
    if (!result.ok) assert.ok(result.detail.length > 0);
  }
});

Deno.test("per-type detail checks", () => {
  const cases: [string, (e: any) => unknown, RejectReason][] = [
    ["search", (e) => (e.details.filters = null, e), "missing_field"],
    [
      "search",
      (e) => (e.details.filters = { category: "Cars" }, e),
      "invalid_value",
    ],
    [
      "search",
      (e) => (e.details.filters = { price_range: "200-100" }, e),
      "out_of_range",
    ],
    [
      "search",
      (e) => (e.details.filters = { price_range: "cheap" }, e),
      "invalid_value",
    ],
    ["search", (e) => (e.details.results_count = -1, e), "out_of_range"],
    ["search", (e) => (delete e.details.searched_at, e), "missing_field"],
    ["search", (e) => (e.details.query = "", e), "out_of_range"],
    ["product_view", (e) => (e.details.category = "Cars", e), "invalid_value"],
    ["product_view", (e) => (e.details.unit_price = 0, e), "out_of_range"],
    ["add_to_cart", (e) => (e.details.quantity = 101, e), "out_of_range"],
    [
      "order_complete",
      (e) => (e.details.delivery_estimate = "2026-13-01", e),
      "invalid_value",
    ],
    [
      "order_complete",
      (e) => (e.details.shipping_method = "drone", e),
      "invalid_value",
    ],
    [
      "order_complete",
      (
        e,
      ) => (e.details.amount = Math.round(e.details.amount * 100 + 1) / 100, e),
      "inconsistent",
    ],
    [
      "order_failed",
      (e) => (e.details.failure_reason = "bad luck", e),
      "invalid_value",
    ],
    [
      "order_failed",
      (e) => (delete e.details.attempted_amount, e),
      "missing_field",
    ],
    ["error", (e) => (e.details.error_code = "ERR-1234", e), "invalid_value"],
    ["error", (e) => (e.details.http_status = 700, e), "out_of_range"],
    [
      "error",
      (e) => (e.details.error_at = "3000-01-01T00:00:00.000Z", e),
      "out_of_range",
    ],
  ];
  for (const [type, mutate, expected] of cases) {
    const got = reasonOf(mutate(clone(EXAMPLES.get(type)!)));
    assert.equal(got, expected, `${type}: ${mutate.toString()}`);
  }
});

Deno.test("framing reasons: bytes, size, JSON, shape", () => {
  const valid = JSON.stringify(EXAMPLES.get("product_view"));
  const bytes = new TextEncoder().encode(valid);
  const broken = bytes.slice();
  broken[broken.indexOf(0x22) + 1] = 0xff; // inside the first key
  assert.equal(reasonOf(""), "invalid_json");
  assert.equal(
    validateEvent(broken).ok ? "ok" : (validateEvent(broken) as any).reason,
    "invalid_utf8",
  );
  assert.equal(
    (validateEvent(new Uint8Array([0xc3, 0x28])) as any).reason,
    "invalid_utf8",
  );
  assert.equal((validateEvent("\ud800{}") as any).reason, "invalid_utf8");
  // A real U+FFFD in valid UTF-8 is fine (it is only a hint for the decoder).
  const withFffd = clone(EXAMPLES.get("search")!) as any;
  withFffd.details.query = "bad \uFFFD char";
  assert.ok(
    validateEvent(new TextEncoder().encode(JSON.stringify(withFffd))).ok,
  );
  assert.equal(reasonOf(valid.slice(0, -1)), "invalid_json");
  for (const v of ["[]", "null", "42", '"x"', "true"]) {
    assert.equal(reasonOf(v), "not_an_object", v);
  }
  const big = new Uint8Array(LIMITS.maxEventBytes + 1).fill(0x20);
  assert.equal((validateEvent(big) as any).reason, "too_large");
  assert.equal(reasonOf(" ".repeat(LIMITS.maxEventBytes + 1)), "too_large");
  // 30,000 three-byte characters: short as a JS string, 90 KB as UTF-8.
  assert.equal(reasonOf(`"${"€".repeat(30_000)}"`), "too_large");
  assert.equal(
    (validateEvent(42 as unknown as string) as any).reason,
    "wrong_type",
  );
});

Deno.test("every injected bad kind gets the reason it is meant to get", () => {
  const g = createGenerator({
    seed: "bad-kinds",
    startTime: START,
    badRate: 0.5,
  });
  const seen = new Map<string, number>();
  for (let i = 0; i < 2000; i++) {
    const r = g.next();
    if (!r.bad) continue;
    const result = validateEvent(recordBytes(r));
    const got = result.ok ? null : result.reason;
    assert.equal(
      got,
      BAD_KINDS[r.bad],
      `${r.bad}: ${JSON.stringify(result).slice(0, 300)}`,
    );
    seen.set(r.bad, (seen.get(r.bad) ?? 0) + 1);
  }
  assertEqualsSet([...seen.keys()], Object.keys(BAD_KINDS));
  // Every validator reason is exercised by some injected kind, or (the
  // reasons of hostile clients, which the seeded generator does not make:
  // its bad stream is pinned byte for byte) by a case of HOSTILE_CASES below.
  const covered = new Set<string>(
    Object.values(BAD_KINDS).filter((v) => v !== null),
  );
  for (const [, , reason] of HOSTILE_CASES) covered.add(reason);
  for (const reason of REJECT_REASON_LIST) {
    assert.ok(covered.has(reason), `no bad kind or hostile case for ${reason}`);
  }
});

Deno.test("fuzz: random bytes, random JSON and mutated events never throw", () => {
  const rng = new Rng("fuzz");
  const reasons = new Set<string>(REJECT_REASON_LIST);
  const check = (input: Uint8Array | string) => {
    const r = validateEvent(input); // must not throw
    if (!r.ok) {
      assert.ok(reasons.has(r.reason), r.reason);
      assert.equal(typeof r.detail, "string");
    }
  };
  for (let i = 0; i < 5000; i++) {
    const bytes = new Uint8Array(rng.int(0, 300));
    for (let j = 0; j < bytes.length; j++) bytes[j] = rng.int(0, 255);
    check(bytes);
  }
  const randomJson = (depth: number): unknown => {
    const k = rng.int(0, depth > 3 ? 4 : 7);
    switch (k) {
      case 0:
        return null;
      case 1:
        return rng.chance(0.5);
      case 2:
        return rng.next() * 1e6 - 5e5;
      case 3:
        return rng.pick([
          "",
          "x",
          "purchase",
          "2026-01-01T00:00:00.000Z",
          "user_1",
          "\u0000",
        ]);
      case 4:
        return rng.int(-10, 10);
      case 5:
        return Array.from(
          { length: rng.int(0, 4) },
          () => randomJson(depth + 1),
        );
      default: {
        const o: Record<string, unknown> = {};
        const keys = [
          "event_id",
          "schema_version",
          "event_type",
          "details",
          "geo",
          "items",
          "amount",
          "constructor",
          "toString",
        ];
        for (let n = rng.int(0, 6); n > 0; n--) {
          o[rng.pick(keys)] = randomJson(depth + 1);
        }
        return o;
      }
    }
  };
  for (let i = 0; i < 5000; i++) check(JSON.stringify(randomJson(0)) ?? "null");
  // Mutations of valid events: replace one random path with random JSON.
  const all = [...EXAMPLES.values()];
  for (let i = 0; i < 5000; i++) {
    const e = clone(rng.pick(all)) as any;
    const paths: [any, string][] = [];
    const walk = (o: any) => {
      for (const k of Object.keys(o)) {
        paths.push([o, k]);
        if (o[k] && typeof o[k] === "object") walk(o[k]);
      }
    };
    walk(e);
    const [parent, key] = rng.pick(paths);
    if (rng.chance(0.3)) delete parent[key];
    else parent[key] = randomJson(2);
    check(JSON.stringify(e));
  }
  // Prototype-looking keys from the wire are plain data.
  check(
    '{"__proto__":{"schema_version":1},"schema_version":1,"event_type":"error"}',
  );
  // Deep nesting must not blow the stack.
  check("[".repeat(20_000) + "]".repeat(20_000));
  check('{"a":'.repeat(10_000) + "1" + "}".repeat(10_000));
  // validateParsed with non-JSON values (as a careless caller might pass).
  for (
    const v of [
      undefined,
      () => 1,
      Symbol("s"),
      10n,
      new Date(),
      Object.create(null),
    ]
  ) {
    assert.equal(validateParsed(v).ok, false);
  }
});

Deno.test("strict timestamp and date parsing", () => {
  assert.equal(
    parseEventTimestamp("2024-02-29T23:59:59.999Z"),
    Date.UTC(2024, 1, 29, 23, 59, 59, 999),
  );
  for (
    const bad of [
      "2023-02-29T00:00:00.000Z",
      "2026-04-31T00:00:00.000Z",
      "2026-01-01T24:00:00.000Z",
      "2026-01-01T00:60:00.000Z",
      "2026-01-01t00:00:00.000Z",
      "2026-1-01T00:00:00.000Z",
      "+02026-01-01T00:00:00.00Z",
      "2026-01-01T00:00:00.0a0Z",
    ]
  ) assert.ok(Number.isNaN(parseEventTimestamp(bad)), bad);
  assert.equal(parseIsoDate("2026-12-31"), Date.UTC(2026, 11, 31));
  assert.ok(Number.isNaN(parseIsoDate("2026-12-32")));
  assert.ok(isUuidV7("019b76db-69a2-71bd-b058-a28801865823"));
  assert.ok(!isUuidV7("019b76db-69a2-41bd-b058-a28801865823")); // v4
  assert.ok(!isUuidV7("019b76db-69a2-71bd-c058-a28801865823")); // variant
  assert.ok(!isUuidV7("019B76DB-69A2-71BD-B058-A28801865823")); // upper case
});

// ------------------------------------------------ the stream agrees with ----
// ---------------------------------------------------- the warehouse (#13) --

/** The event's JSON text with `insert` spliced in right after its first "{". */
function withRawKey(event: unknown, insert: string): string {
  return JSON.stringify(event).replace(/^\{/, `{${insert},`);
}

/**
 * [description, JSON text of a hostile record, expected reason]: what a
 * client that is not the project's producer may send.
 */
const HOSTILE_CASES: [string, () => string, RejectReason][] = [
  ["U+0000 in a value", () => {
    const e = clone(EXAMPLES.get("search")!) as any;
    e.details.filters.brand = "Acme\u0000";
    return JSON.stringify(e);
  }, "control_character"],
  ["U+0000 in a key", () => {
    const e = clone(EXAMPLES.get("search")!) as any;
    e.details.filters["bra\u0000nd"] = "Acme";
    return JSON.stringify(e);
  }, "control_character"],
  ["escaped unpaired high surrogate", () => {
    const e = clone(EXAMPLES.get("search")!) as any;
    e.details.query = "x\ud800y";
    return JSON.stringify(e); // JSON.stringify writes it as the escape \ud800
  }, "unpaired_surrogate"],
  [
    "escaped unpaired low surrogate in a key",
    () => withRawKey(EXAMPLES.get("purchase"), '"\\udc00":1'),
    "unpaired_surrogate",
  ],
  ["nesting below details.items[0]", () => {
    const e = clone(EXAMPLES.get("purchase")!) as any;
    e.details.items[0].quantity = { n: 1 };
    return JSON.stringify(e);
  }, "too_deep"],
  ["1,000-deep nesting in an extra key", () =>
    withRawKey(
      EXAMPLES.get("error"),
      `"x":${"[".repeat(1000)}${"]".repeat(1000)}`,
    ), "too_deep"],
  ["an unknown top-level key", () => {
    const e = clone(EXAMPLES.get("add_to_cart")!) as any;
    e.experiment = "b";
    return JSON.stringify(e);
  }, "unknown_key"],
  [
    "a __proto__ key",
    () => withRawKey(EXAMPLES.get("purchase"), '"__proto__":{"polluted":1}'),
    "unknown_key",
  ],
  ["a constructor key in details", () => {
    const e = clone(EXAMPLES.get("order_complete")!) as any;
    e.details.constructor = { name: "x" };
    return JSON.stringify(e);
  }, "unknown_key"],
  ["year 2099, sent now", () => {
    const e = clone(EXAMPLES.get("product_view")!) as any;
    e.event_ts = "2099-01-01T00:00:00.000Z";
    return JSON.stringify(e);
  }, "future_timestamp"],
];

// deno-lint-ignore no-control-regex -- looking for control characters
const ANY_C0 = /[\u0000-\u001f]/;

/** The Kafka timestamp HOSTILE_CASES are validated with: the examples' start. */
const KAFKA_TS = START + 3_600_000;

Deno.test("hostile records get their typed reason (HOSTILE_CASES)", () => {
  for (const [name, make, expected] of HOSTILE_CASES) {
    const text = make();
    for (const input of [text, new TextEncoder().encode(text)]) {
      const r = validateEvent(input, { kafkaTimestampMs: KAFKA_TS });
      assert.equal(
        r.ok ? "ok" : r.reason,
        expected,
        `${name}: ${text.slice(0, 200)}`,
      );
      if (!r.ok) {
        assert.ok(r.detail.length > 0);
        // A detail is stored and shown: never a raw control or surrogate.
        assert.ok(r.detail.isWellFormed() && !ANY_C0.test(r.detail), r.detail);
      }
    }
  }
  // The parsed __proto__ key stayed data: nothing reached Object.prototype.
  assert.equal(({} as any).polluted, undefined);
});

/** Every string of `v` (keys excluded), as [parent, key] pairs. */
function stringSlots(v: any, out: [any, string | number][] = []) {
  for (const k of Object.keys(v)) {
    if (typeof v[k] === "string") {
      out.push([v, Array.isArray(v) ? Number(k) : k]);
    } else if (v[k] && typeof v[k] === "object") stringSlots(v[k], out);
  }
  return out;
}

Deno.test("U+0000 and the other C0 controls in EVERY string field of every event type are control_character", () => {
  // Every optional string field present, so it is covered too.
  const error = clone(EXAMPLES.get("error")!) as any;
  error.details.product_id ??= "prod_00001";
  error.details.order_id ??= "order_0123456789abcdef";
  const search = clone(EXAMPLES.get("search")!) as any;
  search.details.filters = {
    category: "Books",
    price_range: "10-20",
    brand: "Acme",
  };
  const events = [...EXAMPLES.values(), error, search];
  let checked = 0;
  for (const event of events) {
    const slots = stringSlots(clone(event)).length;
    for (let i = 0; i < slots; i++) {
      for (
        const control of ["\u0000", "\u0001", "\b", "\f", "\u000b", "\u001f"]
      ) {
        const e = clone(event) as any;
        const [parent, key] = stringSlots(e)[i];
        parent[key] = parent[key].slice(0, 3) + control + parent[key].slice(3);
        const r = validateEvent(JSON.stringify(e));
        assert.equal(
          r.ok ? "ok" : r.reason,
          "control_character",
          `${event.event_type} ${String(key)}`,
        );
        checked++;
      }
    }
  }
  assert.ok(checked > 6 * 60, `only ${checked} fields checked`);
  // Tab, newline and carriage return are text, not controls to refuse.
  const ok = clone(EXAMPLES.get("search")!) as any;
  ok.details.query = "line one\nline\ttwo\r\n";
  assert.equal(reasonOf(ok), "ok");
  // validateParsed has no text to look at: it walks every string itself.
  const parsed = clone(EXAMPLES.get("purchase")!) as any;
  parsed.details.shipping_address = "1 Main St\u0000";
  assert.equal((validateParsed(parsed) as any).reason, "control_character");
  const parsedKey = clone(EXAMPLES.get("purchase")!) as any;
  parsedKey.geo["\u0007"] = 1;
  assert.equal((validateParsed(parsedKey) as any).reason, "control_character");
});

Deno.test("unpaired surrogates: escaped ones are unpaired_surrogate, escaped pairs are text", () => {
  const at = (q: string) => {
    const e = clone(EXAMPLES.get("search")!) as any;
    e.details.query = "PLACEHOLDER";
    // Splice the escape in as JSON text (JSON.stringify would re-escape it).
    return JSON.stringify(e).replace("PLACEHOLDER", q);
  };
  for (
    const q of [
      "\\ud800",
      "a\\udbff",
      "\\udc00b",
      "\\udc00\\ud800",
      "\\ud800\\ud800\\udc00x\\ud800",
    ]
  ) {
    assert.equal(reasonOf(at(q)), "unpaired_surrogate", q);
    const r = validateEvent(new TextEncoder().encode(at(q)));
    assert.equal(r.ok ? "ok" : r.reason, "unpaired_surrogate", q);
  }
  for (const q of ["\\ud83d\\ude80", "\\u00e9", "\\u0009", "\\\\ud800", "🚀"]) {
    assert.equal(reasonOf(at(q)), "ok", q);
  }
  // A raw unpaired surrogate in a JS string is no text at all (as before).
  assert.equal(reasonOf(at("\ud800")), "invalid_utf8");
});

Deno.test("nesting deeper than the schema is too_deep; the schema's own depth is fine", () => {
  const purchase = EXAMPLES.get("purchase")!;
  assert.equal(reasonOf(purchase), "ok"); // 4 levels: event, details, items, item
  const cases: [(e: any) => void, RejectReason][] = [
    [(e) => (e.details.items[0].product_id = ["prod_00001"]), "too_deep"],
    [(e) => (e.geo.city = { name: { x: [1] } }), "too_deep"], // level 5
    [(e) => (e.geo.city = { name: "Berlin" }), "wrong_type"], // level 3: allowed depth, wrong type
    [(e) => (e.details.items = [[[]]]), "too_deep"],
  ];
  for (const [mutate, expected] of cases) {
    const e = clone(purchase) as any;
    mutate(e);
    assert.equal(reasonOf(e), expected, mutate.toString());
  }
  // 10,000 levels: no stack overflow, the nesting is named.
  const deep = withRawKey(
    purchase,
    `"x":${'{"a":'.repeat(10_000)}1${"}".repeat(10_000)}`,
  );
  const r = validateEvent(deep);
  assert.equal(r.ok ? "ok" : r.reason, "too_deep");
  // With a backslash in the text the string walk meets the nesting first.
  const both = withRawKey(JSON.parse(deep), '"q":"\\"quoted\\""');
  assert.equal(reasonOf(both), "too_deep");
});

Deno.test("unknown keys are rejected at every level, __proto__ and constructor included", () => {
  const cases: [string, (e: any) => void, string][] = [
    ["purchase", (e) => (e.experiment = "b"), "event"],
    ["purchase", (e) => (e.geo.zip = "10115"), "geo"],
    ["purchase", (e) => (e.details.coupon = "WELCOME10"), "details"],
    ["purchase", (e) => (e.details.items[0].discount = 1), "details.items[0]"],
    ["search", (e) => (e.details.filters.color = "red"), "details.filters"],
    ["error", (e) => (e.details.stack = "at x"), "details"],
    ["product_view", (e) => (e.details.toString = "x"), "details"],
    ["add_to_cart", (e) => (e.hasOwnProperty = 1), "event"],
  ];
  for (const [type, mutate, where] of cases) {
    const e = clone(EXAMPLES.get(type)!) as any;
    mutate(e);
    const r = validateEvent(JSON.stringify(e));
    assert.equal(r.ok ? "ok" : r.reason, "unknown_key", `${type} ${where}`);
    assert.ok(
      !r.ok && r.detail.startsWith(`${where}: unknown key`),
      (r as any).detail,
    );
  }
  // __proto__ and constructor as JSON keys (object literals cannot make an
  // own __proto__ key, so they are spliced into the text), at two levels.
  for (const type of EVENT_TYPES) {
    const e = EXAMPLES.get(type)!;
    for (const key of ["__proto__", "constructor", "prototype"]) {
      assert.equal(
        reasonOf(withRawKey(e, `"${key}":{"event_type":"x"}`)),
        "unknown_key",
        `${type} ${key}`,
      );
      const text = JSON.stringify(e).replace(
        '"details":{',
        `"details":{"${key}":1,`,
      );
      assert.equal(reasonOf(text), "unknown_key", `${type} details.${key}`);
    }
  }
  assert.equal(({} as any).event_type, undefined);
  // Optional keys present or absent are not unknown.
  const error = clone(EXAMPLES.get("error")!) as any;
  delete error.details.product_id;
  delete error.details.order_id;
  assert.equal(reasonOf(error), "ok");
  error.details.product_id = "prod_00001";
  error.details.order_id = "order_0123456789abcdef";
  assert.equal(reasonOf(error), "ok");
  const search = clone(EXAMPLES.get("search")!) as any;
  for (
    const filters of [{}, { brand: "Acme" }, {
      category: "Books",
      price_range: "1-2",
      brand: "A",
    }]
  ) {
    search.details.filters = filters;
    assert.equal(reasonOf(search), "ok", JSON.stringify(filters));
  }
  // A polluted Object.prototype (for-in sees it) does not reject valid events.
  (Object.prototype as any).polluted_for_test = 1;
  try {
    assert.equal(reasonOf(EXAMPLES.get("purchase")), "ok");
  } finally {
    delete (Object.prototype as any).polluted_for_test;
  }
});

Deno.test("future_timestamp: no timestamp more than the skew ahead of the Kafka record timestamp", () => {
  const e = clone(EXAMPLES.get("search")!) as any;
  const eventMs = Date.parse(e.event_ts);
  const at = (
    kafkaTimestampMs: number | undefined,
    maxFutureSkewMs?: number,
  ) => {
    const r = validateEvent(JSON.stringify(e), {
      kafkaTimestampMs,
      maxFutureSkewMs,
    });
    return r.ok ? "ok" : r.reason;
  };
  assert.equal(DEFAULT_MAX_FUTURE_SKEW_MS, 15 * 60_000);
  // A producer clock 5 minutes fast passes with room to spare.
  assert.equal(at(eventMs - 5 * 60_000), "ok");
  assert.equal(at(eventMs - DEFAULT_MAX_FUTURE_SKEW_MS), "ok"); // exactly the skew
  assert.equal(
    at(eventMs - DEFAULT_MAX_FUTURE_SKEW_MS - 1),
    "future_timestamp",
  );
  assert.equal(at(eventMs - 10 * 60_000, 5 * 60_000), "future_timestamp");
  assert.equal(at(eventMs, 0), "ok");
  assert.equal(at(eventMs - 1, 0), "future_timestamp");
  // No (usable) Kafka timestamp: no future check, the wall clock is never used.
  for (const kts of [undefined, 0, -1, NaN]) {
    assert.equal(at(kts), "ok", String(kts));
  }
  assert.equal(validateEvent(JSON.stringify(e)).ok, true);
  // A negative or NaN skew falls back to the default.
  assert.equal(at(eventMs - 10 * 60_000, -1), "ok");
  assert.equal(at(eventMs - 20 * 60_000, NaN), "future_timestamp");
  // Every timestamp of the event counts, not only event_ts.
  e.details.searched_at = new Date(eventMs + 20 * 60_000).toISOString();
  const r = validateEvent(JSON.stringify(e), { kafkaTimestampMs: eventMs });
  assert.equal(r.ok ? "ok" : r.reason, "future_timestamp");
  assert.match(
    (r as any).detail,
    /^details\.searched_at: .* is 20 min ahead of the Kafka timestamp .* \(allowed: 15 min\)$/,
  );
  // validateParsed takes the same context.
  assert.equal(
    (validateParsed(e, { kafkaTimestampMs: eventMs }) as any).reason,
    "future_timestamp",
  );
});
