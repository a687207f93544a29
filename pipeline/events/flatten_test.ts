import assert from "node:assert/strict";
import {
  eventOfRow,
  FLAT_COLUMNS,
  flatRowValues,
  flattenEvent,
  type KafkaCoords,
  NO_DETAILS,
} from "./flatten.ts";
import { type Event, EVENT_TYPES, validateEvent } from "./schema.ts";
import { createGenerator } from "./generator.ts";
import { PROJECT_ROOT } from "../config.ts";

/** Columns of `create table if not exists raw.events (...)` in 010_raw.sql. */
function rawEventsColumns(sql: string) {
  const m = /create table if not exists raw\.events \(([\s\S]*?)\n\);/i.exec(
    sql,
  );
  assert.ok(m, "raw.events not found in 010_raw.sql");
  return m[1].split("\n")
    .map((l) => l.replace(/--.*$/, "").trim().replace(/,$/, ""))
    .filter((l) => l && !/^(primary|unique|constraint|check)\b/i.test(l))
    .map((l) => {
      const [, name, rest] = /^(\w+)\s+(.*)$/.exec(l)!;
      const type = rest.replace(/\s+(not null|primary key|default .*)+$/gi, "")
        .replace(/\s+not null.*$/i, "").replace(/\s+primary key.*$/i, "")
        .replace(/\s+default .*$/i, "").trim().toLowerCase();
      const nullable = !/not null|primary key/i.test(rest);
      return { name, type, nullable };
    });
}

Deno.test("FLAT_COLUMNS equal raw.events minus source_file and loaded_at", async () => {
  const sql = await Deno.readTextFile(
    `${PROJECT_ROOT}/pipeline/migrations/010_raw.sql`,
  );
  const table = rawEventsColumns(sql).filter((c) =>
    c.name !== "source_file" && c.name !== "loaded_at"
  );
  assert.deepEqual(
    FLAT_COLUMNS.map((c) => ({
      name: c.name,
      type: c.pgType,
      nullable: c.nullable,
    })),
    table,
  );
});

function sample(): Map<string, Event[]> {
  const g = createGenerator({
    seed: "flatten",
    startTime: Date.UTC(2026, 2, 1),
  });
  const out = new Map<string, Event[]>();
  for (let i = 0; i < 30_000; i++) {
    const e = g.next().event!;
    const list = out.get(e.event_type) ?? [];
    list.push(e);
    out.set(e.event_type, list);
  }
  return out;
}
const SAMPLE = sample();
const COORDS = {
  topic: "LogEvents",
  partition: 3,
  offset: "12345",
  timestamp: "1767225600123",
};

Deno.test("every type flattens to a full row that keeps details verbatim", () => {
  for (const type of EVENT_TYPES) {
    const events = SAMPLE.get(type)!;
    assert.ok(events.length > 0, type);
    for (const e of events.slice(0, 50)) {
      const row = flattenEvent(e, COORDS);
      assert.deepEqual(Object.keys(row), FLAT_COLUMNS.map((c) => c.name));
      for (const c of FLAT_COLUMNS) {
        const v = (row as unknown as Record<string, unknown>)[c.name];
        if (!c.nullable) assert.notEqual(v, null, `${type}.${c.name}`);
      }
      assert.deepEqual(JSON.parse(row.details_json), e.details);
      assert.equal(row.kafka_offset, 12345);
      assert.equal(row.kafka_timestamp, "2026-01-01T00:00:00.123Z");
      assert.equal(row.geo_country, e.geo.country);
      assert.equal(flatRowValues(row).length, FLAT_COLUMNS.length);
    }
  }
});

Deno.test("type-specific columns", () => {
  const view = SAMPLE.get("product_view")![0] as Extract<
    Event,
    { event_type: "product_view" }
  >;
  const v = flattenEvent(view, COORDS);
  assert.equal(v.product_id, view.details.product_id);
  assert.equal(v.unit_price, view.details.unit_price);
  assert.equal(v.quantity, null);
  assert.equal(v.order_id, null);

  const search = SAMPLE.get("search")!.find((e) =>
    e.event_type === "search" && e.details.filters.brand
  ) as Extract<Event, { event_type: "search" }>;
  const s = flattenEvent(search, COORDS);
  assert.equal(s.search_query, search.details.query);
  assert.equal(s.filter_brand, search.details.filters.brand);
  assert.equal(s.searched_at, search.details.searched_at);

  const failed = SAMPLE.get("order_failed")![0] as Extract<
    Event,
    { event_type: "order_failed" }
  >;
  const f = flattenEvent(failed, COORDS);
  assert.equal(f.amount, failed.details.attempted_amount);
  assert.equal(f.failure_reason, failed.details.failure_reason);
  assert.deepEqual(JSON.parse(f.items_json!), failed.details.items);

  const err = SAMPLE.get("error")![0] as Extract<
    Event,
    { event_type: "error" }
  >;
  const r = flattenEvent(err, { ...COORDS, timestamp: undefined });
  assert.equal(r.error_code, err.details.error_code);
  assert.equal(r.http_status, err.details.http_status);
  assert.equal(r.kafka_timestamp, null);
});

Deno.test("single-line orders fill product columns; multi-line orders leave them null", () => {
  let single = 0, multi = 0;
  for (const type of ["purchase", "order_complete", "order_failed"] as const) {
    for (const e of SAMPLE.get(type)!) {
      if (e.event_type !== type) continue;
      const row = flattenEvent(e, COORDS);
      const items = e.details.items;
      assert.equal(row.order_id, e.details.order_id);
      if (items.length === 1) {
        single++;
        assert.equal(row.product_id, items[0].product_id);
        assert.equal(row.quantity, items[0].quantity);
        assert.equal(row.unit_price, items[0].unit_price);
      } else {
        multi++;
        assert.equal(row.product_id, null);
        assert.equal(row.quantity, null);
      }
    }
  }
  assert.ok(single > 0 && multi > 0, `single ${single}, multi ${multi}`);
});

Deno.test("hostile text survives flattening unchanged", () => {
  const e = structuredClone(SAMPLE.get("search")![0]) as Extract<
    Event,
    { event_type: "search" }
  >;
  e.details.query = "<img src=x onerror=alert(1)>";
  assert.ok(validateEvent(JSON.stringify(e)).ok);
  assert.equal(
    flattenEvent(e, COORDS).search_query,
    "<img src=x onerror=alert(1)>",
  );
});

Deno.test("the row literal's type-specific nulls are NO_DETAILS, and Kafka timestamps follow each record", () => {
  // flattenEvent spells the nulls out (one hidden class); NO_DETAILS is what
  // fixtures spread: both must name exactly the nullable detail columns.
  const details = FLAT_COLUMNS.filter((c) =>
    c.nullable && c.name !== "kafka_timestamp"
  ).map((c) => c.name);
  assert.deepEqual(Object.keys(NO_DETAILS), details);
  const e = SAMPLE.get("search")![0];
  const at = (timestamp: KafkaCoords["timestamp"]) =>
    flattenEvent(e, { ...COORDS, timestamp }).kafka_timestamp;
  // The last timestamp is remembered: a different one right after must not
  // get the remembered result.
  assert.equal(at("1767225600123"), "2026-01-01T00:00:00.123Z");
  assert.equal(at("1767225600124"), "2026-01-01T00:00:00.124Z");
  assert.equal(at(1767225600124), "2026-01-01T00:00:00.124Z");
  assert.equal(at(new Date(1767225600125)), "2026-01-01T00:00:00.125Z");
  assert.equal(at("x"), null);
  assert.equal(at("1767225600124"), "2026-01-01T00:00:00.124Z");
  assert.equal(at(null), null);
});

Deno.test("eventOfRow gives back the validated event of every type", () => {
  for (const type of EVENT_TYPES) {
    for (const e of SAMPLE.get(type)!.slice(0, 50)) {
      const row = flattenEvent(e, COORDS);
      // Through the JSON text the live feed keeps, as the writer reads it.
      assert.deepEqual(eventOfRow(JSON.parse(JSON.stringify(row))), e);
    }
  }
});
