// Reproducibility: two fresh pipelines fed the same events
// (`produce --seed S --start-time T --count N`) end with identical mart
// fingerprints, and each passes the audit. Surrogate keys, load timestamps
// and row order must not leak into the marts' content.
import assert from "node:assert/strict";
import { createTestEnv, runTask, type TestEnv } from "../testing.ts";
import { fingerprintMarts } from "./fingerprint.ts";

const PRODUCE = [
  "--count",
  "3000",
  "--seed",
  "fingerprint",
  "--start-time",
  "2026-03-01T10:00:00Z",
  "--bad-rate",
  "0.05",
  "--quiet",
];

async function pipeline(t: TestEnv, partitions: string): Promise<void> {
  const p = await runTask(t, "produce.ts", PRODUCE);
  assert.equal(p.code, 0, p.stderr);
  // A different micro-batch size: other file boundaries, same content.
  const c = await runTask(t, "consume.ts", [
    "--until-caught-up",
    "--max-batch-records",
    partitions,
  ]);
  assert.equal(c.code, 0, c.stderr.slice(-2000));
  const b = await runTask(t, "batch.ts", []);
  assert.equal(b.code, 0, `${b.stdout}\n${b.stderr.slice(-2000)}`);
  const a = await runTask(t, "audit.ts", []);
  assert.equal(
    a.code,
    0,
    `audit failed:\n${a.stdout}\n${a.stderr.slice(-3000)}`,
  );
}

Deno.test("two fresh pipelines fed the same events have identical mart fingerprints", async () => {
  // Different partition counts too: Kafka placement must not matter.
  const a = await createTestEnv("fingerprint_a", { partitions: 3 });
  const b = await createTestEnv("fingerprint_b", { partitions: 5 });
  try {
    // Side by side: each has its own topic, HDFS root and database (and so
    // its own batch lock).
    await Promise.all([pipeline(a, "5000"), pipeline(b, "700")]);
    const fa = await fingerprintMarts(a.config);
    const fb = await fingerprintMarts(b.config);
    const diff = fa.tables.filter((t, i) => t.hash !== fb.tables[i]?.hash).map((
      t,
    ) => t.table);
    assert.deepEqual(
      diff,
      [],
      `tables whose content differs: ${diff.join(", ")}`,
    );
    assert.equal(fa.total, fb.total);
    // Not vacuous: the marts hold the events.
    const facts = fa.tables.find((t) => t.table === "fact_event");
    assert.ok(facts && facts.rows > 2500, `fact_event rows: ${facts?.rows}`);
    assert.ok(
      fa.tables.length >= 8,
      `tables fingerprinted: ${fa.tables.length}`,
    );
  } finally {
    await a.cleanup();
    await b.cleanup();
  }
});
