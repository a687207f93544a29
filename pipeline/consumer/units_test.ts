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
import {
  DEAD_LETTER_PREFIX_BYTES,
  deadLetterRecord,
} from "../zones/dead_letter.ts";
import { decodeBase64 } from "../zones/base64.ts";
import { Buffer } from "node:buffer";
import type { KafkaMessage } from "kafkajs";
import { type BatchLimits, MicroBatch } from "./micro_batch.ts";
import { ingestRecord } from "./ingest.ts";
import { createGenerator, recordBytes } from "../events/generator.ts";
import {
  bucketOf,
  MetricsAggregator,
  percentile,
  RECENT_EVENTS_BYTES,
  RECENT_EVENTS_LIMIT,
} from "./metrics.ts";
import { retry } from "../async.ts";
import { CONSUMER_BACKOFF, RetryAborted } from "./context.ts";
import { type FlatRow, NO_DETAILS } from "../events/flatten.ts";
import { sha256Hex } from "../hash.ts";

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

Deno.test("dead-letter record of a too-large value keeps its size, hash and a prefix, not its bytes", async () => {
  const value = new Uint8Array(3 * 1024 * 1024).fill(0x78);
  value[0] = 0x7b;
  const rec = deadLetterRecord(
    "T",
    0,
    { offset: "7", value, key: new Uint8Array(10_000) },
    "too_large",
    "too big",
    "c1",
  );
  assert.equal(rec.value_base64, null);
  assert.equal(rec.value_truncated, true);
  assert.equal(rec.value_bytes, value.byteLength);
  assert.deepEqual(
    decodeBase64(rec.value_prefix_base64!),
    value.subarray(0, DEAD_LETTER_PREFIX_BYTES),
  );
  assert.equal(
    rec.value_sha256,
    await sha256Hex(value),
  );
  assert.equal(rec.key_truncated, true);
  assert.equal(
    decodeBase64(rec.key_base64!).byteLength,
    DEAD_LETTER_PREFIX_BYTES,
  );
  assert.ok(JSON.stringify(rec).length < 20_000, "the line stays small");
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
    assert.deepEqual([b.events, b.deadLetters], [3, 1]);
    const limits = (o: Partial<BatchLimits>): BatchLimits => ({
      maxRecords: 1e9,
      maxBytes: 1e9,
      rotateIntervalMs: 1e9,
      ...o,
    });
    assert.equal(b.due(limits({ maxRecords: 5 }), 2_000), false);
    assert.equal(b.due(limits({ maxRecords: 4 }), 2_000), true);
    assert.equal(b.full(limits({ maxRecords: 4 })), true);
    assert.equal(b.due(limits({ maxBytes: 307 }), 2_000), true);
    // The rotate interval makes a batch due, not full (no back-pressure).
    assert.equal(b.due(limits({ rotateIntervalMs: 1_000 }), 2_000), true);
    assert.equal(b.full(limits({ rotateIntervalMs: 1_000 })), false);
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

Deno.test("micro-batch keeps at most ~1M chars of lines in memory over all its hours", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const b = new MicroBatch("T", 0, dir, 0);
    const line = "x".repeat(10_000);
    // 300 event hours, 3 MB of lines: spilled as the total grows, whatever
    // the spread over hours.
    for (let i = 0; i < 300; i++) {
      const ts = new Date(Date.UTC(2026, 0, 1) + i * 3_600_000).toISOString();
      b.addEvent(i, 10_000, undefined, ts, line);
    }
    let held = 0;
    for (const g of b.groups.values()) held += g.pendingChars;
    assert.ok(held < 1024 * 1024, `held ${held} chars`);
    const groups = await b.finish();
    assert.equal(groups.length, 300);
    assert.equal(await Deno.readTextFile(groups[299].path), line + "\n");
    await b.discard();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("metrics: counted per partition on consumption, exactly-once claims, latency at the write", () => {
  // The live feed's JSON text of each row (not read here).
  const ev = "{}";
  const t = Date.parse("2026-01-01T00:00:00.000Z");
  const m = new MetricsAggregator();
  // Counting needs a claim.
  assert.throws(() => m.countDeadLetter(0, 1, "invalid_json", t), RangeError);
  m.startCounting(0, 7);
  m.startCounting(1, 3);
  const at = t + 1_500;
  m.countEvent(
    0,
    10,
    row({
      event_type: "order_complete",
      amount: 10.1,
      event_ts: new Date(t).toISOString(),
    }),
    ev,
    400,
    at,
  );
  m.countEvent(
    0,
    11,
    row({
      event_type: "order_complete",
      amount: 0.2,
      event_ts: new Date(t).toISOString(),
    }),
    ev,
    400,
    at,
  );
  m.countEvent(
    1,
    5,
    row({
      event_type: "order_failed",
      amount: 5,
      level: "ERROR",
      event_ts: new Date(t).toISOString(),
    }),
    ev,
    400,
    at,
  );
  m.countDeadLetter(0, 12, "invalid_json", at);
  m.countDeadLetter(1, 6, "invalid_json", at);
  // Offsets only go forward within a claim.
  assert.throws(() => m.countDeadLetter(0, 12, "x", at), RangeError);
  m.recordCommitted(2, 1, 2, 1234, at);
  const snap = m.drain(t + 2_000);
  const p0 = snap.partitions.find((p) => p.partition === 0)!;
  const p1 = snap.partitions.find((p) => p.partition === 1)!;
  assert.deepEqual([p0.epoch, p0.firstOffset, p0.lastOffset], [7, 10, 12]);
  assert.deepEqual([p1.epoch, p1.firstOffset, p1.lastOffset], [3, 5, 6]);
  const oc = p0.eventCounts.find((r) => r.eventType === "order_complete")!;
  assert.deepEqual([oc.events, oc.orders, oc.revenueCents], [2, 2, 1030]); // exact cents
  const of = p1.eventCounts.find((r) => r.eventType === "order_failed")!;
  assert.deepEqual([of.failedOrders, of.level, of.revenueCents], [
    1,
    "ERROR",
    0,
  ]);
  assert.equal(oc.bucket, bucketOf(at));
  assert.deepEqual(p0.deadLetters, [{
    bucket: bucketOf(at),
    reason: "invalid_json",
    records: 1,
  }]);
  assert.deepEqual(p0.records, [{
    bucket: bucketOf(at),
    recordsIn: 3,
    eventsOut: 2,
    deadLetters: 1,
  }]);
  const st = snap.consumerStats.find((r) => r.bucket === bucketOf(at))!;
  assert.deepEqual([st.filesWritten, st.bytesWritten], [2, 1234]);
  // event time → the write (drain at t + 2 s)
  assert.deepEqual([st.p50, st.p95, st.p99], [2000, 2000, 2000]);
  assert.deepEqual(m.totals, {
    recordsIn: 0,
    eventsOut: 2,
    deadLetters: 1,
    filesWritten: 2,
    bytesWritten: 1234,
  });
  // Nothing left after a drain; a failed write is restored and adds up.
  assert.equal(m.drain(t + 2_000).partitions.length, 0);
  m.restore(snap);
  m.countDeadLetter(0, 13, "invalid_json", at);
  const again = m.drain(t + 2_000);
  const a0 = again.partitions.find((p) => p.partition === 0)!;
  assert.deepEqual([a0.firstOffset, a0.lastOffset], [10, 13]);
  assert.equal(a0.records[0].recordsIn, 4);
  // A new claim drops what an older one counted and did not write: those
  // records are counted again after the claim's last counted offset.
  m.restore(again);
  m.startCounting(0, 8);
  const after = m.drain(t + 2_000);
  assert.deepEqual(after.partitions.map((p) => p.partition), [1]);
  m.restore(after);
  m.stopCounting(1);
  assert.equal(m.drain(t + 2_000).partitions.length, 0);
});

Deno.test("metrics: the live feed keeps the newest events, bounded in count and bytes", () => {
  const m = new MetricsAggregator();
  m.startCounting(0, 1);
  for (let i = 0; i < 2_100; i++) {
    const r = row({ kafka_offset: i });
    m.countEvent(0, i, r, JSON.stringify(r), 100);
  }
  const recent = m.drain().recent;
  assert.equal(recent.length, RECENT_EVENTS_LIMIT);
  assert.equal(JSON.parse(recent.at(-1)!.line).kafka_offset, 2_099);
  assert.equal(
    JSON.parse(recent[0].line).kafka_offset,
    2_100 - RECENT_EVENTS_LIMIT,
  );
  // Large events: the byte bound wins.
  const big = 64 * 1024;
  for (let i = 0; i < 200; i++) {
    m.countEvent(
      0,
      3_000 + i,
      row({ kafka_offset: 3_000 + i }),
      JSON.stringify(row({ kafka_offset: 3_000 + i })),
      big,
    );
  }
  const few = m.drain().recent;
  assert.equal(few.length, Math.floor(RECENT_EVENTS_BYTES / big));
  assert.equal(JSON.parse(few.at(-1)!.line).kafka_offset, 3_199);
});

Deno.test("percentile is nearest-rank", () => {
  const xs = Float64Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert.equal(percentile(xs, 50), 5);
  assert.equal(percentile(xs, 95), 10);
  assert.equal(percentile(xs, 10), 1);
  assert.equal(percentile([], 50), null);
});

Deno.test("retry with the consumer's backoff: succeeds, and a forced stop ends it with RetryAborted", async () => {
  let calls = 0;
  const v = await retry(() => {
    calls++;
    return calls < 3 ? Promise.reject(new Error("down")) : Promise.resolve(42);
  }, { ...CONSUMER_BACKOFF, maxAttempts: Infinity, minTimeout: 1 });
  assert.equal(v, 42);
  assert.equal(calls, 3);
  const force = new AbortController();
  const delays: number[] = [];
  const giving = retry(() => Promise.reject(new Error("down")), {
    ...CONSUMER_BACKOFF,
    maxAttempts: Infinity,
    signal: force.signal,
    onRetry: (_e, _a, ms) => void delays.push(ms),
  });
  setTimeout(() => force.abort(new RetryAborted("retry abandoned")), 50);
  await assert.rejects(giving, RetryAborted);
  // 250 ms ± 20 %: the first wait was under way when the stop came.
  assert.equal(delays.length, 1);
  assert.ok(delays[0] >= 200 && delays[0] <= 300, String(delays[0]));
});

Deno.test("ingest: the record's Kafka timestamp reaches the validator (future_timestamp)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const gen = createGenerator({
      seed: "skew",
      startTime: Date.parse("2026-01-01T10:00:00Z"),
      rate: 10,
    });
    const rec = gen[Symbol.iterator]().next().value!;
    const message = (timestamp: number) =>
      ({
        offset: "5",
        timestamp: String(timestamp),
        key: null,
        value: Buffer.from(recordBytes(rec)),
        headers: {},
      }) as unknown as KafkaMessage;
    const skew = 15 * 60_000;
    // The producer's clock an hour ahead of the broker's.
    const ahead = new MicroBatch("T", 0, dir);
    ingestRecord(
      ahead,
      undefined,
      "T",
      0,
      message(rec.ts - 3_600_000),
      "c",
      skew,
    );
    assert.deepEqual([ahead.events, ahead.deadLetters], [0, 1]);
    const [g] = await ahead.finish();
    const line = JSON.parse((await Deno.readTextFile(g.path)).trim());
    assert.equal(line.reason, "future_timestamp");
    // Within the skew: a valid event.
    const fine = new MicroBatch("T", 0, dir);
    ingestRecord(fine, undefined, "T", 0, message(rec.ts - 60_000), "c", skew);
    assert.deepEqual([fine.events, fine.deadLetters], [1, 0]);
    await ahead.discard();
    await fine.discard();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
