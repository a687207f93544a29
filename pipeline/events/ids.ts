/**
 * Identifiers of the event stream: UUIDv7 event ids (RFC 9562), which sort by
 * time, and the session and order ids. All are drawn from a seeded `Rng`, so a
 * seeded run reproduces its ids exactly.
 */
import type { Rng } from "./rng.ts";

const HEX: string[] = Array.from(
  { length: 256 },
  (_, i) => i.toString(16).padStart(2, "0"),
);

/** RFC 9562 UUID version 7 text form: 48-bit ms time, version 7, variant 10. */
export const UUID_V7_PATTERN =
  /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/**
 * Makes UUIDv7 ids from a seeded stream. Within one millisecond the 12-bit
 * `rand_a` field is a counter (RFC 9562 §6.2, method 1), so ids made by one
 * factory sort in creation order; the 62 random bits of `rand_b` keep them
 * unique across factories and runs.
 */
export class UuidV7Factory {
  #rng: Rng;
  #lastMs = -1;
  #counter = 0;

  constructor(rng: Rng) {
    this.#rng = rng;
  }

  /** A new UUIDv7 whose time field is `ms` (Unix epoch milliseconds). */
  next(ms: number): string {
    if (ms === this.#lastMs && this.#counter < 0xfff) {
      this.#counter++;
    } else {
      this.#lastMs = ms;
      // Start low in the counter space so many ids fit in one millisecond.
      this.#counter = this.#rng.nextUint32() & 0x7ff;
    }
    const hi = Math.floor(ms / 0x10000); // top 32 bits of the 48-bit time
    const lo = ms % 0x10000; // low 16 bits
    const r1 = this.#rng.nextUint32();
    const r2 = this.#rng.nextUint32();
    const c = this.#counter;
    return HEX[(hi >>> 24) & 0xff] + HEX[(hi >>> 16) & 0xff] +
      HEX[(hi >>> 8) & 0xff] + HEX[hi & 0xff] + "-" +
      HEX[lo >>> 8] + HEX[lo & 0xff] + "-" +
      HEX[0x70 | (c >>> 8)] + HEX[c & 0xff] + "-" +
      HEX[0x80 | ((r1 >>> 24) & 0x3f)] + HEX[(r1 >>> 16) & 0xff] + "-" +
      HEX[(r1 >>> 8) & 0xff] + HEX[r1 & 0xff] +
      HEX[(r2 >>> 24) & 0xff] + HEX[(r2 >>> 16) & 0xff] +
      HEX[(r2 >>> 8) & 0xff] + HEX[r2 & 0xff];
  }
}

/** The Unix-epoch milliseconds stored in a UUIDv7. */
export function uuidV7Time(id: string): number {
  return parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}

/** `prefix` + 16 hex digits (64 random bits): session and order ids. */
export function randomId(rng: Rng, prefix: string): string {
  const a = rng.nextUint32(), b = rng.nextUint32();
  return prefix +
    HEX[a >>> 24] + HEX[(a >>> 16) & 0xff] + HEX[(a >>> 8) & 0xff] +
    HEX[a & 0xff] + HEX[b >>> 24] + HEX[(b >>> 16) & 0xff] +
    HEX[(b >>> 8) & 0xff] + HEX[b & 0xff];
}

/** Session ids: `sess_` + 16 hex digits. */
export const SESSION_ID_PATTERN = /^sess_[0-9a-f]{16}$/;
/** Order ids: `order_` + 16 hex digits (the original's 6 digits collided). */
export const ORDER_ID_PATTERN = /^order_[0-9a-f]{16}$/;
