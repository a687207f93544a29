/**
 * Integration tests of `deno task produce` against the REAL local Kafka
 * (each test on its own topic via createTestEnv), checked with an
 * independent kafkajs consumer that reads the topic from the beginning.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import type { Config } from "../config.ts";
import { createKafka, topicEndOffsets } from "../clients/kafka.ts";
import { createTestEnv, requireServices, runTask } from "../testing/env.ts";
import { startService, stopService, waitHealthy } from "../services/manager.ts";
import { BAD_KINDS } from "../events/generator.ts";
import { validateEvent } from "../events/schema.ts";
import type { ProduceSummary } from "./producer.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

interface TopicFacts {
  messages: number;
  eventIds: Set<string>;
  duplicateIds: number;
  keyMismatches: number;
  missingHeader: number;
  reasons: Map<string, number>;
  largest: number;
  perPartition: Map<number, number>;
}

/** Reads the whole topic with a fresh consumer group and validates every message. */
async function readTopic(config: Config): Promise<TopicFacts> {
  const ends = await topicEndOffsets(config);
  const total = [...ends.values()].reduce(
    (a, o) => a + Number(o.high - o.low),
    0,
  );
  const facts: TopicFacts = {
    messages: 0,
    eventIds: new Set(),
    duplicateIds: 0,
    keyMismatches: 0,
    missingHeader: 0,
    reasons: new Map(),
    largest: 0,
    perPartition: new Map(),
  };
  const consumer = createKafka(config, { clientId: "producer-test-reader" })
    .consumer({
      groupId: `producer-test-${crypto.randomUUID()}`,
      maxBytes: 32 * 1024 * 1024,
    });
  await consumer.connect();
  await consumer.subscribe({ topic: config.kafka.topic, fromBeginning: true });
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  if (total === 0) done();
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      for (const m of batch.messages) {
        facts.messages++;
        facts.perPartition.set(
          batch.partition,
          (facts.perPartition.get(batch.partition) ?? 0) + 1,
        );
        const value = m.value ?? Buffer.alloc(0);
        facts.largest = Math.max(facts.largest, value.length);
        if (m.headers?.schema_version?.toString() !== "1") {
          facts.missingHeader++;
        }
        const bytes = new Uint8Array(
          value.buffer,
          value.byteOffset,
          value.length,
        );
        const r = validateEvent(bytes);
        const reason = r.ok ? "ok" : r.reason;
        facts.reasons.set(reason, (facts.reasons.get(reason) ?? 0) + 1);
        if (r.ok) {
          if (facts.eventIds.has(r.event.event_id)) facts.duplicateIds++;
          facts.eventIds.add(r.event.event_id);
          if (m.key?.toString() !== r.event.session_id) facts.keyMismatches++;
        }
      }
      if (facts.messages >= total) done();
      await Promise.resolve();
    },
  });
  const timeout = setTimeout(() => done(), 180_000);
  await finished;
  clearTimeout(timeout);
  await consumer.disconnect();
  assert.equal(facts.messages, total, "read every message in the topic");
  return facts;
}

async function summaryOf(path: string): Promise<ProduceSummary> {
  return JSON.parse(await Deno.readTextFile(path));
}

Deno.test({
  name:
    "produce --count 100000: exactly 100,000 distinct event ids, keys = session ids, header",
  ...opts,
  async fn() {
    await requireServices();
    const t = await createTestEnv("produce_100k");
    const summaryFile = await Deno.makeTempFile({ suffix: ".json" });
    try {
      const res = await runTask(t, "produce.ts", [
        "--count",
        "100000",
        "--seed",
        "it-100k",
        "--quiet",
        "--summary-json",
        summaryFile,
      ]);
      assert.equal(res.code, 0, res.stderr);
      const summary = await summaryOf(summaryFile);
      assert.equal(summary.sent, 100_000);
      assert.equal(summary.undelivered, 0);
      const facts = await readTopic(t.config);
      assert.equal(facts.messages, 100_000);
      assert.equal(facts.eventIds.size, 100_000);
      assert.equal(facts.duplicateIds, 0);
      assert.equal(facts.reasons.get("ok"), 100_000);
      assert.equal(facts.keyMismatches, 0);
      assert.equal(facts.missingHeader, 0);
      // Keys spread sessions over every partition.
      assert.equal(facts.perPartition.size, t.config.kafka.partitions);
      console.log(
        `  100k: ${summary.ratePerSec}/s, peak RSS ${summary.peakRssMb} MB (under test load; not asserted)`,
      );
    } finally {
      await Deno.remove(summaryFile).catch(() => {});
      await t.cleanup();
    }
  },
});

Deno.test({
  name:
    "produce --bad-rate: every injected kind reaches Kafka and gets its reason",
  ...opts,
  async fn() {
    await requireServices();
    const t = await createTestEnv("produce_bad", { partitions: 2 });
    const summaryFile = await Deno.makeTempFile({ suffix: ".json" });
    try {
      const res = await runTask(t, "produce.ts", [
        "--count",
        "7000",
        "--bad-rate",
        "0.1",
        "--seed",
        "it-bad",
        "--quiet",
        "--summary-json",
        summaryFile,
      ]);
      assert.equal(res.code, 0, res.stderr);
      const s = await summaryOf(summaryFile);
      assert.equal(s.sent, 7000);
      assert.ok(s.badTotal > 500 && s.badTotal < 900, `${s.badTotal}`);
      const facts = await readTopic(t.config);
      // Expected validator outcome per reason, from what was injected.
      const expected = new Map<string, number>();
      let valid = Object.values(s.events).reduce((a, b) => a + b, 0);
      for (const [kind, n] of Object.entries(s.bad)) {
        const reason = BAD_KINDS[kind as keyof typeof BAD_KINDS];
        if (reason === null) valid += n;
        else expected.set(reason, (expected.get(reason) ?? 0) + n);
      }
      expected.set("ok", valid);
      assert.deepEqual(
        Object.fromEntries([...facts.reasons].sort()),
        Object.fromEntries([...expected].sort()),
      );
      assert.ok(
        facts.largest >= 2 * 1024 * 1024,
        "the 2 MB record arrived whole",
      );
    } finally {
      await Deno.remove(summaryFile).catch(() => {});
      await t.cleanup();
    }
  },
});

Deno.test({
  name:
    "broker stopped during a run: producer reports, retries, nothing lost or duplicated",
  ...opts,
  async fn() {
    await requireServices();
    const t = await createTestEnv("produce_outage", { partitions: 3 });
    const summaryFile = await Deno.makeTempFile({ suffix: ".json" });
    const count = 30_000;
    try {
      const root = new URL("../..", import.meta.url).pathname;
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          `${root}tasks/produce.ts`,
          "--count",
          String(count),
          "--rate",
          "1500",
          "--seed",
          "it-outage",
          "--summary-json",
          summaryFile,
        ],
        cwd: root,
        env: t.env,
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const output = child.output();
      // Let it deliver for a while, then take the broker away for longer
      // than kafkajs's own request retries last (~10 s), so the outage
      // reaches the producer's retry loop and its report, as a real one would.
      await new Promise((r) => setTimeout(r, 6_000));
      await stopService("kafka", t.config);
      const downAt = Date.now();
      await new Promise((r) => setTimeout(r, 15_000));
      await startService("kafka", t.config);
      await waitHealthy("kafka", t.config, 60_000);
      console.log(
        `  broker was down ${Math.round((Date.now() - downAt) / 1000)} s`,
      );
      const out = await output;
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 0, stderr.slice(-3000));
      assert.match(stderr, /Kafka unavailable/);
      const s = await summaryOf(summaryFile);
      assert.ok(s.retries > 0, "the outage was noticed and retried");
      assert.equal(s.sent, count);
      assert.equal(s.undelivered, 0);
      const facts = await readTopic(t.config);
      assert.equal(facts.messages, count, "no loss and no duplicate messages");
      assert.equal(facts.eventIds.size, count);
      assert.equal(facts.duplicateIds, 0);
    } finally {
      // Never leave the shared broker down.
      await startService("kafka", t.config).catch(() => {});
      await waitHealthy("kafka", t.config, 60_000).catch(() => {});
      await Deno.remove(summaryFile).catch(() => {});
      await t.cleanup();
    }
  },
});

Deno.test("produce --event-rate spreads events over event time (a compressed week)", async () => {
  const root = new URL("../..", import.meta.url).pathname;
  const out = await Deno.makeTempFile({ suffix: ".ndjson" });
  try {
    const run = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        `${root}tasks/produce.ts`,
        "--count",
        "2000",
        "--event-rate",
        "0.01",
        "--start-time",
        "2026-01-01T00:00:00Z",
        "--seed",
        "week",
        "--out",
        out,
        "--quiet",
      ],
      cwd: root,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(run.code, 0, new TextDecoder().decode(run.stderr));
    const ts = (await Deno.readTextFile(out)).split("\n").filter(Boolean)
      .map((l) => Date.parse(JSON.parse(l).event_ts));
    assert.equal(ts.length, 2000);
    const spanDays = (Math.max(...ts) - Math.min(...ts)) / 86_400_000;
    // 2,000 events at 0.01/s of event time = 200,000 s ≈ 2.3 days.
    assert.ok(spanDays > 2 && spanDays < 2.7, `span ${spanDays} days`);
    const bad = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${root}tasks/produce.ts`, "--event-rate", "-1"],
      cwd: root,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(bad.code, 2);
    assert.match(new TextDecoder().decode(bad.stderr), /--event-rate/);
  } finally {
    await Deno.remove(out);
  }
});
