// kafkajs 2.2.4 against the real local Kafka 4.x broker: the smoke test that
// decides whether we may stay on Kafka 4 (README, "Kafka version").
import assert from "node:assert/strict";
import process from "node:process";
import { loadConfig } from "../config.ts";
import { createTestEnv } from "../testing/env.ts";
import {
  createKafka,
  deleteTopic,
  ensureTopic,
  topicEndOffsets,
} from "./kafka.ts";

Deno.test("kafkajs produces, consumes with a group and commits on Kafka 4", async () => {
  const t = await createTestEnv("kafka_smoke", { partitions: 3 });
  const kafka = createKafka(t.config, { quiet: true });
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  const consumer = kafka.consumer({ groupId: t.config.kafka.consumerGroup });
  try {
    await producer.connect();
    await producer.send({
      topic: t.config.kafka.topic,
      acks: -1,
      messages: [{
        key: "k1",
        value: "hello",
        headers: { schema_version: "1" },
      }],
    });
    const ends = await topicEndOffsets(t.config);
    assert.equal([...ends.values()].reduce((n, o) => n + o.high, 0n), 1n);

    await consumer.connect();
    await consumer.subscribe({
      topic: t.config.kafka.topic,
      fromBeginning: true,
    });
    const got = await new Promise<
      { value: string; partition: number; offset: string; header: string }
    >(
      (resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error("no message within 30 s")),
          30_000,
        );
        consumer.run({
          autoCommit: false,
          eachMessage: async ({ message, partition }) => {
            clearTimeout(timer);
            await consumer.commitOffsets([{
              topic: t.config.kafka.topic,
              partition,
              offset: (BigInt(message.offset) + 1n).toString(),
            }]);
            resolve({
              value: message.value!.toString(),
              partition,
              offset: message.offset,
              header: message.headers!.schema_version!.toString(),
            });
          },
        }).catch(reject);
      },
    );
    assert.equal(got.value, "hello");
    assert.equal(got.header, "1");
    await consumer.disconnect();

    const admin = kafka.admin();
    await admin.connect();
    const committed = await admin.fetchOffsets({
      groupId: t.config.kafka.consumerGroup,
      topics: [t.config.kafka.topic],
    });
    await admin.disconnect();
    const part = committed[0].partitions.find((p) =>
      p.partition === got.partition
    )!;
    assert.equal(part.offset, (BigInt(got.offset) + 1n).toString());
  } finally {
    await producer.disconnect().catch(() => {});
    await consumer.disconnect().catch(() => {});
    await t.cleanup();
  }
});

Deno.test("admin creates a topic once and deletes it", async () => {
  const t = await createTestEnv("kafka_admin", { noTopic: true });
  try {
    const name = `${t.config.kafka.topic}_extra`;
    assert.ok(
      await ensureTopic(t.config, name, 2),
      "first ensureTopic creates",
    );
    assert.equal(
      await ensureTopic(t.config, name, 2),
      false,
      "second is a no-op",
    );
    assert.equal((await topicEndOffsets(t.config, name)).size, 2);
    await deleteTopic(t.config, name);
    const admin = createKafka(t.config, { quiet: true }).admin();
    await admin.connect();
    // Deletion is asynchronous in the controller: wait for it to show.
    let listed = true;
    for (let i = 0; i < 50 && listed; i++) {
      listed = (await admin.listTopics()).includes(name);
      if (listed) await new Promise((r) => setTimeout(r, 200));
    }
    await admin.disconnect();
    assert.equal(listed, false);
  } finally {
    await t.cleanup();
  }
});

Deno.test("createKafka drops only kafkajs' TimeoutNegativeWarning, every other warning still reaches listeners", async () => {
  const seen: string[] = [];
  const onWarning = (w: Error) => seen.push(w.name);
  process.on("warning", onWarning);
  try {
    createKafka({ kafka: { ...loadConfig().kafka } });
    process.emitWarning("-1 is a negative number", "TimeoutNegativeWarning");
    process.emitWarning("something else", "DeprecationWarning");
    process.emitWarning(new Error("an error object"));
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(seen.sort(), ["DeprecationWarning", "Error"]);
  } finally {
    process.off("warning", onWarning);
  }
});
