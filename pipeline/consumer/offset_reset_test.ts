/**
 * Issue test (positions that Kafka no longer has):
 *
 * 1. HDFS ahead of Kafka: a topic is consumed, then deleted and re-created
 *    with fewer records (what a re-created topic or a broker that lost its
 *    data looks like). The consumer stops with a clear error naming the
 *    partition, both positions and --reset-to-earliest, and writes nothing;
 *    with --reset-to-earliest it consumes the new records from the earliest
 *    offset, and the range HDFS had beyond the log end is logged and counted
 *    in monitoring.skipped_offsets (reason position_reset).
 * 2. Retention: records deleted before they were read (the log start moved
 *    past the position, here with the DeleteRecords API) are counted as a
 *    skipped range (reason retention), the rest consumed.
 */
import assert from "node:assert/strict";
import { createTestEnv } from "../testing/env.ts";
import { createKafka, deleteTopic, ensureTopic } from "../clients/kafka.ts";
import { withConnection } from "../clients/postgres.ts";
import { readZones } from "../zones/readers.ts";
import { produceGenerated, spawnConsumer } from "../testing/consumer.ts";

async function run(
  env: Record<string, string>,
  args: string[],
): Promise<
  { code: number; stderr: string; summary?: Record<string, unknown> }
> {
  const child = spawnConsumer(env, ["--until-caught-up", "--json", ...args], {
    stdout: "piped",
    stderr: "piped",
  });
  const out = await child.output();
  const dec = new TextDecoder();
  const text = dec.decode(out.stdout).trim();
  return {
    code: out.code,
    stderr: dec.decode(out.stderr),
    summary: text ? JSON.parse(text.split("\n").at(-1)!) : undefined,
  };
}

Deno.test({
  name:
    "consumer: HDFS ahead of Kafka stops with a clear error unless --reset-to-earliest; skipped ranges are counted",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const t = await createTestEnv("consumer_offset_reset", { partitions: 2 });
    try {
      const url = t.env.LOGPIPE_DATABASE_URL;
      const skipped = () =>
        withConnection(url, async (c) =>
          (await c.query(
            `select kafka_partition as p, from_offset::int as f, to_offset::int as t, reason
               from monitoring.skipped_offsets order by id`,
          )).rows);
      const first = await produceGenerated(t.config, {
        count: 3_000,
        seed: "before",
        startTime: Date.now() - 3 * 86_400_000,
      });
      assert.equal((await run(t.env, [])).code, 0);
      const ends = async () => {
        const admin = createKafka(t.config, { quiet: true }).admin();
        await admin.connect();
        try {
          return new Map(
            (await admin.fetchTopicOffsets(t.config.kafka.topic)).map((
              o,
            ) => [o.partition, Number(o.high)]),
          );
        } finally {
          await admin.disconnect();
        }
      };
      const before = await ends();

      // The topic is re-created: fewer records, offsets from 0 again.
      await deleteTopic(t.config, t.config.kafka.topic);
      for (let i = 0;; i++) {
        try {
          await ensureTopic(t.config);
          const e = await ends();
          if ([...e.values()].every((h) => h === 0)) break;
        } catch (err) {
          if (i > 60) throw err;
        }
        await new Promise((r) => setTimeout(r, 1_000));
      }
      const second = await produceGenerated(t.config, {
        count: 600,
        seed: "after",
      });
      const after = await ends();

      const refused = await run(t.env, []);
      assert.notEqual(refused.code, 0, "the consumer must not go on");
      assert.match(refused.stderr, /HDFS holds every record up to offset/);
      assert.match(refused.stderr, /--reset-to-earliest/);
      let z = await readZones(t.config);
      assert.equal(z.raw.length, first.good.size, "nothing written");

      const reset = await run(t.env, ["--reset-to-earliest"]);
      assert.equal(reset.code, 0, reset.stderr.slice(-2000));
      assert.equal(reset.summary?.recordsIn, 600);
      z = await readZones(t.config);
      const ids = new Set(z.raw.map((r) => r.event_id));
      for (const id of second.good.keys()) assert.ok(ids.has(id), id);
      assert.equal(z.raw.length, first.good.size + second.good.size);
      assert.deepEqual(
        (await skipped()).map((r) => [r.p, r.f, r.t, r.reason]).sort(),
        [0, 1].map((p) => [p, after.get(p), before.get(p), "position_reset"]),
      );
      // Caught up now: a plain start neither stops nor reads anything.
      const plain = await run(t.env, []);
      assert.equal(plain.code, 0);
      assert.equal(plain.summary?.recordsIn, 0);

      // Retention: partition 0's log start moves past the position.
      await produceGenerated(t.config, { count: 400, seed: "later" });
      const now = await ends();
      const admin = createKafka(t.config, { quiet: true }).admin();
      await admin.connect();
      try {
        // kafkajs needs the topic's metadata before DeleteRecords.
        await admin.fetchTopicMetadata({ topics: [t.config.kafka.topic] });
        await admin.deleteTopicRecords({
          topic: t.config.kafka.topic,
          partitions: [{ partition: 0, offset: String(now.get(0)) }],
        });
      } finally {
        await admin.disconnect();
      }
      const behind = await run(t.env, []);
      assert.equal(behind.code, 0, behind.stderr.slice(-2000));
      assert.equal(behind.summary?.recordsIn, now.get(1)! - after.get(1)!);
      const rows = await skipped();
      assert.deepEqual(
        rows.filter((r) => r.reason === "retention").map((
          r,
        ) => [r.p, r.f, r.t]),
        [[0, after.get(0), now.get(0)]],
      );
      console.log(
        `  refused with HDFS at ${[...before.values()]} and Kafka at ${[
          ...after.values(),
        ]}; ` +
          `reset: ${second.good.size} new events; skipped ranges: ${
            JSON.stringify(rows)
          }`,
      );
    } finally {
      await t.cleanup();
    }
  },
});
