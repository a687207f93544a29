/** The benchmark report kept in latest.json: partial runs merge, full runs replace. */
import assert from "node:assert/strict";
import {
  type BenchRow,
  type BenchRun,
  mergeBenchReport,
  parseBenchReport,
} from "./report.ts";

const row = (name: string, ours: number): BenchRow => ({
  name,
  ours,
  unit: "ev/s",
  target: "≥ 1",
  pass: true,
});
const T1 = "2026-11-30T10:00:00.000Z";
const T2 = "2026-12-01T12:00:00.000Z";

const first: BenchRun = {
  at: T1,
  quick: false,
  suites: ["validator", "producer", "consumer"],
  complete: true,
  rows: [
    { ...row("validator a", 1), suite: "validator" },
    { ...row("producer a", 2), suite: "producer" },
    { ...row("producer b", 3), suite: "producer" },
    { ...row("consumer a", 4), suite: "consumer" },
  ],
};

Deno.test("a partial run replaces its suites' rows in place and keeps the others with their time", () => {
  const before = mergeBenchReport(undefined, first);
  const after = mergeBenchReport(before, {
    at: T2,
    quick: true,
    suites: ["producer", "api"],
    complete: false,
    rows: [
      { ...row("producer a", 20), suite: "producer" },
      { ...row("api a", 5), suite: "api" },
    ],
  });
  assert.equal(after.at, T2);
  assert.equal(after.quick, true);
  assert.deepEqual(
    after.rows.map((r) => [r.suite, r.name, r.ours, r.at, r.quick]),
    [
      ["validator", "validator a", 1, T1, false],
      ["producer", "producer a", 20, T2, true],
      ["consumer", "consumer a", 4, T1, false],
      ["api", "api a", 5, T2, true],
    ],
  );
});

Deno.test("a complete run replaces every row", () => {
  const before = mergeBenchReport(undefined, first);
  const after = mergeBenchReport(before, {
    at: T2,
    quick: false,
    suites: ["validator"],
    complete: true,
    rows: [{ ...row("validator a", 9), suite: "validator" }],
  });
  assert.deepEqual(after.rows.map((r) => [r.name, r.ours, r.at]), [
    ["validator a", 9, T2],
  ]);
});

Deno.test("a complete run keeps the rows of an opt-in suite it did not run, and replaces them when it ran it", () => {
  const withSpark = mergeBenchReport(mergeBenchReport(undefined, first), {
    at: T2,
    quick: false,
    suites: ["spark"],
    complete: false,
    rows: [{ ...row("spark a", 7), suite: "spark" }],
  });
  const T3 = "2026-12-02T08:00:00.000Z";
  const full = (suites: string[], rows: BenchRun["rows"]): BenchRun => ({
    at: T3,
    quick: false,
    suites,
    complete: true,
    optInSuites: ["spark"],
    rows,
  });
  const without = mergeBenchReport(
    withSpark,
    full(["validator"], [{ ...row("validator a", 9), suite: "validator" }]),
  );
  assert.deepEqual(without.rows.map((r) => [r.name, r.ours, r.at]), [
    ["validator a", 9, T3],
    ["spark a", 7, T2],
  ]);
  const again = mergeBenchReport(
    withSpark,
    full(["validator", "spark"], [
      { ...row("validator a", 9), suite: "validator" },
      { ...row("spark a", 8), suite: "spark" },
    ]),
  );
  assert.deepEqual(again.rows.map((r) => [r.name, r.ours, r.at]), [
    ["validator a", 9, T3],
    ["spark a", 8, T3],
  ]);
});

Deno.test("a suite that failed this time replaces its earlier rows with its failure row", () => {
  const after = mergeBenchReport(mergeBenchReport(undefined, first), {
    at: T2,
    quick: false,
    suites: ["consumer"],
    complete: false,
    rows: [{
      ...row("consumer (failed)", NaN),
      pass: false,
      suite: "consumer",
    }],
  });
  assert.deepEqual(after.rows.map((r) => r.name), [
    "validator a",
    "producer a",
    "producer b",
    "consumer (failed)",
  ]);
});

Deno.test("a file from before rows carried their suite: rows take its time; a rerun replaces same-named and failure rows", () => {
  const legacy = parseBenchReport({
    at: T1,
    quick: true,
    rows: [row("producer a", 2), row("consumer (failed)", NaN), row("x", 1)],
  });
  assert.deepEqual(legacy.rows.map((r) => [r.at, r.quick, r.suite]), [
    [T1, true, undefined],
    [T1, true, undefined],
    [T1, true, undefined],
  ]);
  const after = mergeBenchReport(legacy, {
    at: T2,
    quick: false,
    suites: ["producer", "consumer"],
    complete: false,
    rows: [
      { ...row("producer a", 20), suite: "producer" },
      { ...row("consumer a", 4), suite: "consumer" },
    ],
  });
  assert.deepEqual(after.rows.map((r) => [r.name, r.at]), [
    ["x", T1],
    ["producer a", T2],
    ["consumer a", T2],
  ]);
});

Deno.test("parseBenchReport refuses what is not a report", () => {
  for (const bad of [null, [], {}, { at: T1 }, { at: 1, rows: [] }]) {
    assert.throws(() => parseBenchReport(bad), /not a benchmark report/);
  }
});
