import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { type PartitionerArgs, Partitioners } from "kafkajs";
import { KeyPartitioner, murmur2, partitionForKey } from "./partitioner.ts";
import { Rng } from "../events/rng.ts";
import { randomId } from "../events/ids.ts";

function metadata(n: number): PartitionerArgs["partitionMetadata"] {
  return Array.from({ length: n }, (_, i) => ({
    partitionId: i,
    leader: 1,
    partitionErrorCode: 0,
    replicas: [1],
    isr: [1],
  }));
}

Deno.test("murmur2 partitioning equals kafkajs' DefaultPartitioner (Java-compatible)", () => {
  const rng = new Rng("murmur");
  const theirs = Partitioners.DefaultPartitioner();
  const ours = KeyPartitioner();
  const keys: string[] = [
    "",
    "a",
    "ab",
    "abc",
    "abcd",
    "ü",
    "日本語キー",
    "🚀x",
  ];
  for (let i = 0; i < 5000; i++) keys.push(randomId(rng, "sess_"));
  for (let i = 0; i < 500; i++) {
    keys.push(
      String.fromCharCode(
        ...Array.from({ length: rng.int(0, 40) }, () => rng.int(32, 0x2fff)),
      ),
    );
  }
  for (const n of [1, 3, 6, 7, 64]) {
    const partitionMetadata = metadata(n);
    for (const key of keys) {
      const expected = theirs({
        topic: "t",
        partitionMetadata,
        message: { key, value: "" },
      });
      assert.equal(
        ours({ topic: "t", partitionMetadata, message: { key, value: "" } }),
        expected,
        key,
      );
      assert.equal(partitionForKey(key, n), expected);
      assert.equal(partitionForKey(Buffer.from(key), n), expected);
    }
  }
  // Kafka's own test vector (Utils.murmur2 of "21" = -973932308).
  assert.equal(murmur2("21"), -973932308);
  // Explicit partitions win.
  assert.equal(
    ours({
      topic: "t",
      partitionMetadata: metadata(6),
      message: { key: "x", value: "", partition: 4 },
    }),
    4,
  );
});
