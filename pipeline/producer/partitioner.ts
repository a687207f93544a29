/**
 * Kafka's default key partitioner (murmur2, as in the Java client's
 * `Utils.murmur2` and kafkajs' `Partitioners.DefaultPartitioner`), written
 * with 32-bit `Math.imul` instead of kafkajs' Long arithmetic and one Buffer
 * per key: the same partition for every key, at a fraction of the cost (the
 * kafkajs version was ~10% of the producer's CPU). A session's events
 * therefore land on the partition any Java or kafkajs client would choose.
 */
import type { ICustomPartitioner } from "kafkajs";

const encoder = new TextEncoder();

/** murmur2 of the key's UTF-8 bytes, as a signed 32-bit integer (Java's int). */
export function murmur2(key: string | Uint8Array): number {
  let bytes: Uint8Array | undefined;
  let length: number;
  if (typeof key === "string") {
    // ASCII keys (all of ours) are their own UTF-8 bytes: no encoding needed.
    let ascii = true;
    for (let i = 0; i < key.length; i++) {
      if (key.charCodeAt(i) > 0x7f) {
        ascii = false;
        break;
      }
    }
    if (!ascii) bytes = encoder.encode(key);
    length = bytes ? bytes.length : key.length;
  } else {
    bytes = key;
    length = key.length;
  }
  const at = bytes
    ? (i: number) => bytes![i]
    : (i: number) => (key as string).charCodeAt(i);
  const m = 0x5bd1e995;
  let h = 0x9747b28c ^ length;
  const length4 = length >>> 2;
  for (let i = 0; i < length4; i++) {
    const i4 = i * 4;
    let k = (at(i4) & 0xff) | ((at(i4 + 1) & 0xff) << 8) |
      ((at(i4 + 2) & 0xff) << 16) | ((at(i4 + 3) & 0xff) << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m) ^ k;
  }
  const tail = length & ~3;
  switch (length & 3) {
    case 3:
      h ^= (at(tail + 2) & 0xff) << 16;
    // falls through
    case 2:
      h ^= (at(tail + 1) & 0xff) << 8;
    // falls through
    case 1:
      h ^= at(tail) & 0xff;
      h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}

/** The partition of a key among `partitions` (Java's `toPositive(murmur2) % n`). */
export function partitionForKey(
  key: string | Uint8Array,
  partitions: number,
): number {
  return (murmur2(key) & 0x7fffffff) % partitions;
}

/**
 * A kafkajs partitioner: an explicit `partition` wins, else murmur2 of the
 * key. (Keyless messages are not produced by logpipe; they go to partition
 * 0 rather than round-robin.)
 */
export const KeyPartitioner: ICustomPartitioner =
  () => ({ partitionMetadata, message }) => {
    if (message.partition !== undefined && message.partition !== null) {
      return message.partition;
    }
    if (message.key === null || message.key === undefined) return 0;
    return partitionForKey(
      typeof message.key === "string" ? message.key : message.key,
      partitionMetadata.length,
    );
  };
