/**
 * Issue test (memory bounded in bytes, whatever the records): two topics
 * consumed to the end with the consumer's peak RSS (the whole process tree,
 * sampled from /proc every 50 ms by the benchmarks' ProcessTreeMeter) under
 * its documented limit (CONSUMER_RSS_LIMIT_MB, pipeline/runtime.ts):
 *
 * 1. the project's own producer with `--count 20000 --seed 11 --bad-rate
 *    0.05` (72 records of 2 MB, the `too_large` kind): the consumer used to
 *    run out of its V8 heap on it within seconds;
 * 2. a topic of only maximum-size records (the broker's 4 MiB limit,
 *    incompressible, one record per batch), sent with a raw kafkajs
 *    producer.
 *
 * Every record is accounted for, and each too-large one is dead-lettered
 * from its size, SHA-256 and a bounded prefix (not its bytes).
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { CompressionTypes } from "kafkajs";
import { createTestEnv, runTask, type TestEnv } from "../testing/env.ts";
import { createKafka } from "../clients/kafka.ts";
import { readZones } from "../zones/readers.ts";
import { DEAD_LETTER_PREFIX_BYTES } from "../zones/dead_letter.ts";
import { decodeBase64 } from "../zones/base64.ts";
import { CONSUMER_RSS_LIMIT_MB } from "../runtime.ts";
import { POISON_TOPIC, spawnConsumer } from "../testing/consumer.ts";
import { ProcessTreeMeter } from "../bench/proc.ts";

/** How often the consumer's process tree is sampled. */
const SAMPLE_MS = 50;

/** Consumes the test topic to the end; returns the summary and the peak tree RSS. */
async function consume(
  t: TestEnv,
): Promise<{ summary: Record<string, number>; peakMb: number }> {
  const child = spawnConsumer(t.env, ["--until-caught-up", "--json"], {
    stdout: "piped",
  });
  // The benchmarks' meter: the same whole-tree RSS as the consumer bench.
  const meter = new ProcessTreeMeter(child.pid, SAMPLE_MS);
  const out = await child.output().catch((err) => {
    meter.stop();
    throw err;
  });
  const { peakRssBytes } = meter.stop();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, `consumer exited ${out.code}: ${text}`);
  return {
    summary: JSON.parse(text.trim().split("\n").at(-1)!),
    peakMb: peakRssBytes / 1024 / 1024,
  };
}

Deno.test({
  name:
    `consumer memory: 2 MB records and maximum-size records both consume within ${CONSUMER_RSS_LIMIT_MB} MB RSS`,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (ctx) => {
    await ctx.step(
      "produce --count 20000 --seed 11 --bad-rate 0.05",
      async () => {
        const t = await createTestEnv("consumer_memory_2mb");
        try {
          const p = await runTask(t, "produce.ts", [
            ...POISON_TOPIC.produceArgs,
            "--quiet",
          ]);
          assert.equal(p.code, 0, p.stderr);
          const { summary, peakMb } = await consume(t);
          assert.equal(summary.recordsIn, POISON_TOPIC.records);
          const z = await readZones(t.config);
          assert.equal(
            z.raw.length + z.deadLetters.length,
            POISON_TOPIC.records,
          );
          const large = z.deadLetters.filter((d) => d.reason === "too_large");
          assert.equal(
            large.length,
            POISON_TOPIC.twoMbRecords,
            "the records of 2 MB",
          );
          for (const d of large) {
            assert.equal(d.value_truncated, true);
            assert.equal(d.value_base64, null);
            assert.ok(d.value_bytes > 2_000_000);
            assert.equal(
              decodeBase64(d.value_prefix_base64!).byteLength,
              DEAD_LETTER_PREFIX_BYTES,
            );
            assert.match(d.value_sha256!, /^[0-9a-f]{64}$/);
          }
          console.log(
            `  20,000 records (72 of 2 MB): peak RSS ${peakMb.toFixed(0)} MB`,
          );
          assert.ok(
            peakMb < CONSUMER_RSS_LIMIT_MB,
            `peak RSS ${peakMb.toFixed(0)} MB`,
          );
        } finally {
          await t.cleanup();
        }
      },
    );

    await ctx.step("only maximum-size records (4 MiB each)", async () => {
      const t = await createTestEnv("consumer_memory_max");
      try {
        // The broker's limit (message.max.bytes = 4 MiB) counts the whole
        // record batch: leave room for its headers.
        const size = 4 * 1024 * 1024 - 1024;
        const count = 48;
        const producer = createKafka(t.config, { quiet: true }).producer({
          idempotent: true,
          maxInFlightRequests: 1,
        });
        await producer.connect();
        const hashes = new Set<string>();
        try {
          for (let i = 0; i < count; i++) {
            const big = randomBytes(size);
            hashes.add(createHash("sha256").update(big).digest("hex"));
            await producer.send({
              topic: t.config.kafka.topic,
              acks: -1,
              compression: CompressionTypes.None,
              messages: [{ key: `k${i}`, value: big }],
            });
          }
        } finally {
          await producer.disconnect();
        }
        const { summary, peakMb } = await consume(t);
        assert.equal(summary.recordsIn, count);
        const z = await readZones(t.config);
        assert.equal(z.deadLetters.length, count);
        assert.deepEqual(
          new Set(z.deadLetters.map((d) => d.value_sha256)),
          hashes,
          "every record once, identified by its hash",
        );
        assert.ok(z.deadLetters.every((d) => d.reason === "too_large"));
        console.log(
          `  ${count} records of 4 MiB: peak RSS ${peakMb.toFixed(0)} MB`,
        );
        assert.ok(
          peakMb < CONSUMER_RSS_LIMIT_MB,
          `peak RSS ${peakMb.toFixed(0)} MB`,
        );
      } finally {
        await t.cleanup();
      }
    });
  },
});
