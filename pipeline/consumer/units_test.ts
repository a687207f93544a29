/**
 * Unit tests of the consumer's pure pieces (no services): staged-file names,
 * batch folder names, dead-letter records, micro-batch grouping, metrics
 * aggregation and percentiles, retry/backoff, and the DuckDB Parquet writer
 * (local files only).
 */
import assert from "node:assert/strict";
import {
  batchFolderName,
  decodeStagedName,
  encodeStagedName,
  parseBatchFolderName,
} from "../zones/commit.ts";
import { deadLetterRecord } from "../zones/dead_letter.ts";
import { decodeBase64 } from "../zones/base64.ts";
import { MicroBatch } from "./micro_batch.ts";
import {
  addDeadLetterStats,
  addEventStats,
  bucketOf,
  MetricsAggregator,
  newBatchStats,
  percentile,
  RECENT_EVENTS_LIMIT,
  RECENT_PER_BATCH,
} from "./metrics.ts";
import { backoffMs, retry, RetryAborted } from "./retry.ts";
import { type FlatRow, NO_DETAILS } from "../events/flatten.ts";
import type { Event } from "../events/schema.ts";

Deno.test("staged names encode the final path and decode back", () => {
  const f = {
    zone: "raw" as const,
    dir: "event_date=2026-01-01/event_hour=07",
    name: "LogEvents+0+00000000000000000001+00000000000000000009.parquet",
  };
  const s = encodeStagedName(f);
  assert.equal(s.includes("/"), false);
  assert.deepEqual(decodeStagedName(s), f);
  const dl = {
    zone: "dead_letter" as const,
    dir: "date=2026-01-01",
    name: "x.ndjson",
  };
  assert.deepEqual(decodeStagedName(encodeStagedName(dl)), dl);
  assert.equal(decodeStagedName("other~a~b"), undefined);
  assert.throws(() => encodeStagedName({ ...f, name: "a~b" }), RangeError);
});

Deno.test("batch folder names carry the batch's offset range", () => {
  const name = batchFolderName(
    { topic: "LogEvents", partition: 5, firstOffset: 10, lastOffset: 99 },
    "0b8c6a1e-2f7a-4d7b-9d0e-3f5e0c1a2b3c",
  );
  assert.deepEqual(parseBatchFolderName(name), {
    topic: "LogEvents",
    partition: 5,
    firstOffset: 10,
    lastOffset: 99,
    id: "0b8c6a1e-2f7a-4d7b-9d0e-3f5e0c1a2b3c",
  });
  assert.equal(parseBatchFolderName("LogEvents+5+10+99+x"), undefined);
});

Deno.test("dead-letter record keeps the original bytes, coordinates and reason", () => {
  const bytes = new Uint8Array([0xff, 0xfe, 0x7b, 0x00]);
  const rec = deadLetterRecord(
    "LogEvents",
    2,
    {
      offset: "41",
      timestamp: "1767225600000",
      key: new TextEncoder().encode("sess_1"),
      value: bytes,
      headers: { schema_version: new TextEncoder().encode("1") },
    },
    "invalid_utf8",
    "bytes are not valid UTF-8",
    "c1",
    new Date("2026-01-02T00:00:00Z"),
  );
  assert.equal(rec.offset, 41);
  assert.equal(rec.partition, 2);
  assert.equal(rec.kafka_timestamp, "2026-01-01T00:00:00.000Z");
  assert.deepEqual(decodeBase64(rec.value_base64!), bytes);
  assert.equal(
    new TextDecoder().decode(decodeBase64(rec.key_base64!)),
    "sess_1",
  );
  assert.equal(rec.headers.schema_version, "MQ==");
  assert.equal(rec.reason, "invalid_utf8");
  assert.equal(rec.value_bytes, 4);
  const tomb = deadLetterRecord(
    "T",
    0,
    { offset: "1", value: null },
    "wrong_type",
    "null",
    "c1",
  );
  assert.equal(tomb.value_base64, null);
  assert.equal(tomb.kafka_timestamp, null);
});

function row(over: Partial<FlatRow>): FlatRow {
  return {
    event_id: "e",
    schema_version: 1,
    event_type: "search",
    event_ts: "2026-01-01T07:59:59.000Z",
    level: "INFO",
    service: "search-service",
    user_id: "user_1",
    session_id: "s",
    device_type: "mobile",
    geo_country: "EG",
    geo_city: "Cairo",
    response_time_ms: 10,
    ...NO_DETAILS,
    details_json: "{}",
    kafka_topic: "T",
    kafka_partition: 0,
    kafka_offset: 0,
    kafka_timestamp: null,
    ...over,
  };
}

Deno.test("micro-batch groups rows per event hour and dead letters per day", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const b = new MicroBatch("T", 0, dir, 1_000);
    b.addEvent(10, 100, 5, "2026-01-01T07:59:59.000Z", '{"a":1}');
    b.addDeadLetter(11, 7, 6, "2026-01-01", '{"dl":1}');
    b.addEvent(12, 100, 7, "2026-01-01T08:00:00.000Z", '{"a":2}');
    b.addEvent(13, 100, 8, "2026-01-01T07:10:00.000Z", '{"a":3}');
    assert.throws(
      () => b.addEvent(13, 1, 9, "2026-01-01T07:10:00.000Z", "{}"),
      RangeError,
    );
    assert.equal(b.records, 4);
    assert.equal(b.firstOffset, 10);
    assert.equal(b.lastOffset, 13);
    assert.equal(b.firstKafkaTs, 5);
    assert.equal(
      b.full({ maxRecords: 5, maxBytes: 1e9, maxAgeMs: 1e9 }, 2_000),
      false,
    );
    assert.equal(
      b.full({ maxRecords: 4, maxBytes: 1e9, maxAgeMs: 1e9 }, 2_000),
      true,
    );
    assert.equal(
      b.full({ maxRecords: 9, maxBytes: 307, maxAgeMs: 1e9 }, 2_000),
      true,
    );
    assert.equal(
      b.full({ maxRecords: 9, maxBytes: 1e9, maxAgeMs: 1_000 }, 2_000),
      true,
    );
    const groups = await b.finish();
    const byDir = Object.fromEntries(groups.map((g) => [g.dir, g]));
    assert.deepEqual(Object.keys(byDir).sort(), [
      "date=2026-01-01",
      "event_date=2026-01-01/event_hour=07",
      "event_date=2026-01-01/event_hour=08",
    ]);
    const h7 = byDir["event_date=2026-01-01/event_hour=07"];
    assert.deepEqual([h7.firstOffset, h7.lastOffset, h7.count], [10, 13, 2]);
    assert.equal(await Deno.readTextFile(h7.path), '{"a":1}\n{"a":3}\n');
    assert.equal(byDir["date=2026-01-01"].kind, "dead_letter");
    await b.discard();
    assert.equal(await Deno.stat(h7.path).then(() => true, () => false), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("metrics: counts, revenue, dead letters, latency percentiles, restore", () => {
  const s = newBatchStats();
  const ev = {} as Event;
  const t = Date.parse("2026-01-01T00:00:00.000Z");
  addEventStats(
    s,
    row({
      event_type: "order_complete",
      amount: 10.1,
      event_ts: new Date(t).toISOString(),
    }),
    ev,
  );
  addEventStats(
    s,
    row({
      event_type: "order_complete",
      amount: 0.2,
      event_ts: new Date(t).toISOString(),
    }),
    ev,
  );
  addEventStats(
    s,
    row({
      event_type: "order_failed",
      amount: 5,
      level: "ERROR",
      event_ts: new Date(t).toISOString(),
    }),
    ev,
  );
  addDeadLetterStats(s, "invalid_json");
  addDeadLetterStats(s, "invalid_json");
  const m = new MetricsAggregator();
  const commit = t + 1_500;
  m.recordIn(5, commit);
  m.recordCommitted(s, 2, 1234, commit);
  const snap = m.drain(commit);
  const oc = snap.eventCounts.find((r) => r.eventType === "order_complete")!;
  assert.equal(oc.events, 2);
  assert.equal(oc.orders, 2);
  assert.equal(oc.revenueCents, 1030); // exact cents, no float drift
  const of = snap.eventCounts.find((r) => r.eventType === "order_failed")!;
  assert.deepEqual([of.failedOrders, of.level, of.revenueCents], [
    1,
    "ERROR",
    0,
  ]);
  assert.equal(oc.bucket, bucketOf(commit));
  assert.deepEqual(snap.deadLetters, [{
    bucket: bucketOf(commit),
    reason: "invalid_json",
    records: 2,
  }]);
  const st = snap.consumerStats[0];
  assert.deepEqual(
    [
      st.recordsIn,
      st.eventsOut,
      st.deadLetters,
      st.filesWritten,
      st.bytesWritten,
    ],
    [5, 3, 2, 2, 1234],
  );
  assert.deepEqual([st.p50, st.p95, st.p99], [1500, 1500, 1500]);
  // Nothing left after a drain; a failed write is restored and adds up.
  assert.equal(m.drain(commit).eventCounts.length, 0);
  m.restore(snap);
  m.recordCommitted(s, 1, 1, commit);
  const again = m.drain(commit);
  assert.equal(
    again.eventCounts.find((r) => r.eventType === "order_complete")!.events,
    4,
  );
  assert.equal(m.totals.eventsOut, 6);
});

Deno.test("metrics: the live feed keeps only the newest events", () => {
  const m = new MetricsAggregator();
  for (let i = 0; i < 7; i++) {
    const s = newBatchStats();
    for (let j = 0; j < 300; j++) {
      addEventStats(s, row({ kafka_offset: i * 300 + j }), {} as Event);
    }
    assert.ok(s.recent.length <= 2 * RECENT_PER_BATCH);
    m.recordCommitted(s, 1, 1);
  }
  const recent = m.drain().recent;
  assert.equal(recent.length, RECENT_EVENTS_LIMIT);
  assert.equal(recent.at(-1)!.row.kafka_offset, 2_099);
  assert.equal(recent[0].row.kafka_offset, 2_100 - RECENT_EVENTS_LIMIT);
});

Deno.test("percentile is nearest-rank", () => {
  const xs = Float64Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert.equal(percentile(xs, 50), 5);
  assert.equal(percentile(xs, 95), 10);
  assert.equal(percentile(xs, 10), 1);
  assert.equal(percentile([], 50), null);
});

Deno.test("retry: backs off, succeeds, aborts", async () => {
  let calls = 0;
  const v = await retry(() => {
    calls++;
    return calls < 3 ? Promise.reject(new Error("down")) : Promise.resolve(42);
  }, { initialMs: 1, maxMs: 2 });
  assert.equal(v, 42);
  assert.equal(calls, 3);
  let stop = false;
  await assert.rejects(
    retry(() => {
      stop = true;
      return Promise.reject(new Error("down"));
    }, { initialMs: 1, aborted: () => stop }),
    RetryAborted,
  );
  for (let a = 1; a < 40; a++) {
    const d = backoffMs(a, 100, 5_000);
    assert.ok(d >= 80 && d <= 6_000, String(d));
  }
});
