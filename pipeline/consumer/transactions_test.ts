/**
 * Issue test: a topic written by a transactional producer. Each transaction
 * ends with a marker (a control record) that takes an offset but is never
 * delivered as a message, and the records of an aborted transaction are
 * never delivered either, so the last data record of a partition is not at
 * its end offset. `--until-caught-up` must still stop (it used to wait
 * forever for an HDFS position equal to the end offset), and the raw zone
 * must hold exactly the committed transactions' events: the consumer reads
 * with read_committed isolation.
 *
 * Three partitions: 0 ends with a commit marker, 1 with an aborted
 * transaction and its abort marker, 2 holds only aborted records (nothing to
 * write, ever). Real Kafka, HDFS and Postgres, isolated by createTestEnv.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import type { Message } from "kafkajs";
import { createTestEnv } from "../testing/env.ts";
import { spawnConsumer } from "../testing/consumer.ts";
import { createKafka, topicEndOffsets } from "../clients/kafka.ts";
import { createGenerator, recordBytes } from "../events/generator.ts";
import { readZones } from "../zones/readers.ts";

/** The consumer is killed (and the test fails) if it has not stopped by then. */
const TIMEOUT_MS = 45_000;

Deno.test({
  name:
    "consumer: --until-caught-up stops after transaction markers and aborted transactions; only committed events reach HDFS",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const t = await createTestEnv("consumer_transactions", { partitions: 3 });
    try {
      const gen = createGenerator({
        seed: "transactions",
        startTime: Date.now() - 60_000,
        rate: 2_000,
      })[Symbol.iterator]();
      const producer = createKafka(t.config, { quiet: true, retries: 15 })
        .producer({
          transactionalId: `logpipe-test-${t.id}`,
          idempotent: true,
          maxInFlightRequests: 1,
        });
      await producer.connect();
      const committed = new Set<string>();
      const aborted = new Set<string>();
      /** One transaction of `count` events per listed partition. */
      const transaction = async (
        partitions: number[],
        count: number,
        outcome: "commit" | "abort",
      ) => {
        const txn = await producer.transaction();
        const messages: Message[] = [];
        for (const partition of partitions) {
          for (let i = 0; i < count; i++) {
            const rec = gen.next().value!;
            (outcome === "commit" ? committed : aborted).add(
              rec.event!.event_id,
            );
            messages.push({
              partition,
              key: rec.key,
              value: Buffer.from(recordBytes(rec)),
            });
          }
        }
        await txn.send({ topic: t.config.kafka.topic, messages });
        await (outcome === "commit" ? txn.commit() : txn.abort());
      };
      try {
        await transaction([0, 1], 400, "commit");
        await transaction([0, 1, 2], 200, "abort");
        await transaction([0, 1], 300, "commit");
        await transaction([1, 2], 150, "abort");
      } finally {
        await producer.disconnect();
      }
      const ends = await topicEndOffsets(t.config);
      // One offset per record and one per transaction marker: partition 0
      // is 400+1, 200+1, 300+1; 1 also 150+1; 2 is 200+1, 150+1.
      assert.deepEqual(
        [...ends].map(([p, e]) => [p, Number(e.high)]).sort(),
        [[0, 903], [1, 1_054], [2, 352]],
      );

      const t0 = performance.now();
      const child = spawnConsumer(
        t.env,
        ["--until-caught-up", "--json", "--no-metrics"],
        { stdout: "piped", stderr: "piped" },
      );
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill("SIGKILL");
      }, TIMEOUT_MS);
      const out = await child.output();
      clearTimeout(timer);
      const seconds = (performance.now() - t0) / 1000;
      const dec = new TextDecoder();
      const stderr = dec.decode(out.stderr);
      assert.ok(
        !timedOut,
        `--until-caught-up did not stop within ${TIMEOUT_MS / 1000} s: ${
          stderr.slice(-2000)
        }`,
      );
      assert.equal(out.code, 0, stderr.slice(-2000));
      const summary = JSON.parse(
        dec.decode(out.stdout).trim().split("\n").at(-1)!,
      );
      assert.equal(summary.caughtUp, true);
      assert.equal(summary.recordsIn, committed.size, "records delivered");
      assert.equal(summary.deadLetters, 0);

      const z = await readZones(t.config);
      assert.deepEqual(z.foreign, []);
      assert.deepEqual(z.leftovers, []);
      assert.deepEqual(z.deadLetters, []);
      const ids = z.raw.map((r) => r.event_id);
      assert.equal(new Set(ids).size, ids.length, "no duplicates");
      const fromAborted = ids.filter((id) => aborted.has(id));
      assert.deepEqual(
        fromAborted.slice(0, 5),
        [],
        `${fromAborted.length} events of aborted transactions in the raw zone`,
      );
      assert.deepEqual(new Set(ids), committed, "exactly the committed events");
      console.log(
        `  ${committed.size} committed and ${aborted.size} aborted events; ` +
          `end offsets ${[...ends.values()].map((e) => e.high)}; ` +
          `consumer stopped after ${seconds.toFixed(1)} s`,
      );
    } finally {
      await t.cleanup();
    }
  },
});
