import assert from "node:assert/strict";
import {
  deadLetterPartitionDir,
  formatDataFileName,
  padOffset,
  parseDataFileName,
  parseRawPartition,
  rawPartitionDir,
  utcDateHour,
} from "./names.ts";

Deno.test("formatDataFileName pads offsets to 20 digits and round-trips", () => {
  const f = {
    topic: "LogEvents",
    partition: 3,
    firstOffset: 120,
    lastOffset: 4_999,
    extension: "parquet" as const,
  };
  const name = formatDataFileName(f);
  assert.deepEqual(
    name,
    "LogEvents+3+00000000000000000120+00000000000000004999.parquet",
  );
  assert.deepEqual(parseDataFileName(name), f);
  const dl = formatDataFileName({
    ...f,
    topic: "t.test_x-1",
    extension: "ndjson",
  });
  assert.deepEqual(parseDataFileName(dl)?.topic, "t.test_x-1");
  assert.deepEqual(parseDataFileName(dl)?.extension, "ndjson");
});

Deno.test("names sort in offset order", () => {
  const names = [900, 5, 10_000, 42].map((o) =>
    formatDataFileName({
      topic: "T",
      partition: 0,
      firstOffset: o,
      lastOffset: o + 1,
      extension: "parquet",
    })
  );
  const firsts = names.sort().map((n) => parseDataFileName(n)!.firstOffset);
  assert.deepEqual(firsts, [5, 42, 900, 10_000]);
});

Deno.test("parseDataFileName rejects what is not a committed file", () => {
  for (
    const bad of [
      "",
      "LogEvents+3+1+2.parquet", // not padded
      "LogEvents+3+00000000000000000120+00000000000000004999.json",
      "LogEvents+3+00000000000000000120+00000000000000004999.parquet.tmp",
      "LogEvents+3+00000000000000000200+00000000000000000100.parquet", // last < first
      "Log Events+3+00000000000000000120+00000000000000004999.parquet",
      "_tmp",
      "LogEvents+-1+00000000000000000120+00000000000000004999.parquet",
      "LogEvents+3+99999999999999999999+99999999999999999999.parquet", // unsafe
    ]
  ) {
    assert.deepEqual(parseDataFileName(bad), undefined, bad);
  }
});

Deno.test("formatDataFileName validates its input", () => {
  const ok = {
    topic: "T",
    partition: 0,
    firstOffset: 1,
    lastOffset: 1,
    extension: "parquet" as const,
  };
  assert.throws(() => formatDataFileName({ ...ok, topic: "a+b" }), RangeError);
  assert.throws(() => formatDataFileName({ ...ok, partition: -1 }), RangeError);
  assert.throws(
    () => formatDataFileName({ ...ok, firstOffset: 2 }),
    RangeError,
  );
  assert.throws(
    () => formatDataFileName({ ...ok, lastOffset: 1.5 }),
    RangeError,
  );
  assert.throws(() => padOffset(-3), RangeError);
});

Deno.test("partition folders", () => {
  const { date, hour } = utcDateHour(Date.parse("2026-03-01T07:59:59.999Z"));
  assert.deepEqual([date, hour], ["2026-03-01", "07"]);
  assert.deepEqual(
    rawPartitionDir(date, hour),
    "event_date=2026-03-01/event_hour=07",
  );
  assert.deepEqual(deadLetterPartitionDir(date), "date=2026-03-01");
  assert.deepEqual(
    parseRawPartition(
      "/logpipe/raw/event_date=2026-03-01/event_hour=07/x.parquet",
    ),
    { eventDate: "2026-03-01", eventHour: 7 },
  );
  assert.deepEqual(
    parseRawPartition("/logpipe/raw/event_date=2026-03-01/x"),
    undefined,
  );
  assert.throws(() => rawPartitionDir("2026-03-01", "24"), RangeError);
});
