import assert from "node:assert/strict";
import { createRequire } from "node:module";
import {
  FAST_PATH_KAFKAJS_VERSION,
  installKafkajsFastPath,
  kafkajsEncoder,
  kafkajsVersion,
  ORIGINALS,
} from "./kafkajs_fastpath.ts";
import { Rng } from "../events/rng.ts";

// Runs first: nothing is installed yet in this process.
Deno.test("the fast path is not installed on an unverified kafkajs version", () => {
  assert.equal(installKafkajsFastPath("2.3.0"), false);
  assert.equal(ORIGINALS.writeUVarInt, undefined, "Encoder left untouched");
  assert.equal(kafkajsVersion(), FAST_PATH_KAFKAJS_VERSION);
});

Deno.test("fast varint/varlong writers are byte-identical to kafkajs' originals", () => {
  installKafkajsFastPath();
  const Encoder = kafkajsEncoder();
  const rng = new Rng("varint");
  const values = [
    0,
    1,
    -1,
    63,
    64,
    -64,
    -65,
    127,
    128,
    255,
    256,
    16383,
    16384,
    2 ** 20,
    2 ** 30 - 1,
    -(2 ** 30) + 1,
    2 ** 30,
    -(2 ** 30),
    2 ** 31 - 1,
    -(2 ** 31),
    2 ** 40,
    -(2 ** 45),
    1767225600123,
  ];
  for (let i = 0; i < 20000; i++) {
    values.push(
      rng.int(-(2 ** 31), 2 ** 31 - 1),
      rng.int(-300, 300),
      Math.floor(rng.next() * 2 ** 50) * (rng.chance(0.5) ? 1 : -1),
    );
  }
  for (const v of values) {
    const fast = new Encoder();
    const slow = new Encoder();
    if (v >= -(2 ** 31) && v < 2 ** 31) {
      fast.writeUVarInt(v >>> 0);
      ORIGINALS.writeUVarInt!.call(slow, v >>> 0);
      assert.deepEqual(fast.buffer, slow.buffer, `uvarint ${v}`);
    }
    const f2 = new Encoder();
    const s2 = new Encoder();
    f2.writeVarLong(v);
    ORIGINALS.writeVarLong!.call(s2, v);
    assert.deepEqual(f2.buffer, s2.buffer, `varlong ${v}`);
    assert.equal(
      Encoder.sizeOfVarLong(v),
      ORIGINALS.sizeOfVarLong!.call(Encoder, v),
      `size ${v}`,
    );
    assert.equal(Encoder.sizeOfVarLong(v), f2.buffer.length);
  }
});

Deno.test("the patched Encoder is the one kafkajs' own record encoder uses", () => {
  assert.equal(installKafkajsFastPath(), true);
  // Resolve the way kafkajs itself does: from its main module's folder.
  const fromKafkajs = createRequire(
    createRequire(import.meta.url).resolve("kafkajs"),
  );
  const Encoder = kafkajsEncoder();
  assert.equal(fromKafkajs("./src/protocol/encoder.js"), Encoder);
  const fast = Encoder.prototype.writeUVarInt;
  assert.notEqual(fast, ORIGINALS.writeUVarInt);
  let calls = 0;
  Encoder.prototype.writeUVarInt = function (this: unknown, v: number) {
    calls++;
    return fast.call(this as never, v);
  };
  try {
    const encodeRecord = fromKafkajs(
      "./src/protocol/recordBatch/record/v0/index.js",
    ) as (r: { key: Uint8Array; value: Uint8Array }) => unknown;
    encodeRecord({
      key: new TextEncoder().encode("k"),
      value: new TextEncoder().encode("v"),
    });
  } finally {
    Encoder.prototype.writeUVarInt = fast;
  }
  assert.ok(calls > 0, "kafkajs' record encoder wrote through the fast path");
});
