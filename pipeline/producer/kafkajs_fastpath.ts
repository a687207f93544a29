/**
 * A byte-identical speed-up of kafkajs 2.2.4's record encoding.
 *
 * kafkajs (unmaintained since 2023) writes every varint through a temporary
 * JS array and `Buffer.from(array)`, and every varlong through long.js
 * objects. Under Deno's Buffer those allocations were the largest single cost
 * of producing (~20% of CPU at 20k+ records/s). These replacements write the
 * same bytes straight into the encoder's buffer; values outside the fast
 * range fall back to the original methods. pipeline/producer/
 * kafkajs_fastpath_test.ts checks byte equality against the originals.
 *
 * Applied once per process by `installKafkajsFastPath()`, only on the kafkajs
 * version it was checked against (FAST_PATH_KAFKAJS_VERSION); encoding only —
 * decoding (the consumer side) is untouched. The test also checks that the
 * patched Encoder is the one kafkajs' own record encoder uses.
 */
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

interface EncoderInstance {
  buf: Uint8Array;
  offset: number;
  ensureAvailable(n: number): void;
}
interface EncoderClass {
  new (): EncoderInstance & {
    buffer: Uint8Array;
    writeUVarInt(v: number): unknown;
    writeVarLong(v: unknown): unknown;
  };
  prototype: EncoderInstance & {
    writeUVarInt(v: number): unknown;
    writeVarLong(v: unknown): unknown;
  };
  sizeOfVarLong(v: unknown): number;
}

/** The Encoder class kafkajs uses (same module instance as `import "kafkajs"`). */
export function kafkajsEncoder(): EncoderClass {
  return require("kafkajs/src/protocol/encoder.js") as EncoderClass;
}

const LIMIT = 2 ** 30; // |v| < 2^30: zigzag fits in 31 bits, same varint bytes
let installed = false;

/** The original methods (for tests). */
export const ORIGINALS: {
  writeUVarInt?: (v: number) => unknown;
  writeVarLong?: (v: unknown) => unknown;
  sizeOfVarLong?: (v: unknown) => number;
} = {};

/**
 * The kafkajs release whose Encoder these writers were checked against
 * (byte equality in kafkajs_fastpath_test.ts). Any other version keeps its
 * own encoder: its internals may have changed.
 */
export const FAST_PATH_KAFKAJS_VERSION = "2.2.4";

/** The installed kafkajs version (its package.json). */
export function kafkajsVersion(): string {
  return (require("kafkajs/package.json") as { version: string }).version;
}

/**
 * Installs the fast varint/varlong writers into kafkajs' Encoder, once per
 * process, and only on the kafkajs version they were verified against.
 * Returns whether the fast path is in use.
 */
export function installKafkajsFastPath(
  version = kafkajsVersion(),
): boolean {
  if (installed) return true;
  if (version !== FAST_PATH_KAFKAJS_VERSION) return false;
  installed = true;
  const Encoder = kafkajsEncoder();
  const proto = Encoder.prototype;
  ORIGINALS.writeUVarInt = proto.writeUVarInt;
  ORIGINALS.writeVarLong = proto.writeVarLong;
  ORIGINALS.sizeOfVarLong = Encoder.sizeOfVarLong;
  const origVarLong = proto.writeVarLong;
  const origSizeOfVarLong = Encoder.sizeOfVarLong.bind(Encoder);

  proto.writeUVarInt = function (this: EncoderInstance, value: number) {
    this.ensureAvailable(5);
    const buf = this.buf;
    let o = this.offset;
    while ((value & 0xffffff80) !== 0) {
      buf[o++] = (value & 0x7f) | 0x80;
      value >>>= 7;
    }
    buf[o++] = value & 0x7f;
    this.offset = o;
    return this;
  };

  proto.writeVarLong = function (this: EncoderInstance, value: unknown) {
    if (
      typeof value !== "number" || !Number.isInteger(value) ||
      value >= LIMIT || value <= -LIMIT
    ) return origVarLong.call(this, value);
    let z = value >= 0 ? value * 2 : -value * 2 - 1; // zigzag, exact here
    this.ensureAvailable(5);
    const buf = this.buf;
    let o = this.offset;
    while (z >= 0x80) {
      buf[o++] = (z & 0x7f) | 0x80;
      z = Math.floor(z / 128);
    }
    buf[o++] = z;
    this.offset = o;
    return this;
  };

  Encoder.sizeOfVarLong = (value: unknown): number => {
    if (
      typeof value !== "number" || !Number.isInteger(value) ||
      value >= LIMIT || value <= -LIMIT
    ) return origSizeOfVarLong(value);
    let z = value >= 0 ? value * 2 : -value * 2 - 1;
    let bytes = 1;
    while (z >= 0x80) {
      bytes++;
      z = Math.floor(z / 128);
    }
    return bytes;
  };
  return true;
}
