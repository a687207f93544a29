import assert from "node:assert/strict";
import {
  installKafkajsFastPath,
  kafkajsEncoder,
  ORIGINALS,
} from "./kafkajs_fastpath.ts";
import { Rng } from "../events/rng.ts";

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
