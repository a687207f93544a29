/**
 * Seeded pseudo-random numbers for the generator and the catalogs.
 *
 * `Math.random()` cannot be seeded, and reproducibility is the point: the same
 * seed must give the same catalogs and the same event stream on every machine
 * and Deno version. sfc32 (Chris Doty-Humphrey's Small Fast Counting generator)
 * is fast on 32-bit integer arithmetic, passes PractRand to terabytes, and is
 * defined entirely by `Math.imul`, `>>>` and `|0`, so it is bit-exact in V8.
 */

/** Hashes a string to four 32-bit words (cyrb128), for seeding sfc32. */
export function hashString128(text: string): [number, number, number, number] {
  let h1 = 1779033703, h2 = 3144134277, h3 = 1013904242, h4 = 2773480762;
  for (let i = 0; i < text.length; i++) {
    const k = text.charCodeAt(i);
    h1 = h2 ^ Math.imul(h1 ^ k, 597399067);
    h2 = h3 ^ Math.imul(h2 ^ k, 2869860233);
    h3 = h4 ^ Math.imul(h3 ^ k, 951274213);
    h4 = h1 ^ Math.imul(h4 ^ k, 2716044179);
  }
  h1 = Math.imul(h3 ^ (h1 >>> 18), 597399067);
  h2 = Math.imul(h4 ^ (h2 >>> 22), 2869860233);
  h3 = Math.imul(h1 ^ (h3 >>> 17), 951274213);
  h4 = Math.imul(h2 ^ (h4 >>> 19), 2716044179);
  h1 ^= h2 ^ h3 ^ h4;
  h2 ^= h1;
  h3 ^= h1;
  h4 ^= h1;
  return [h1 >>> 0, h2 >>> 0, h3 >>> 0, h4 >>> 0];
}

/**
 * A stateless 32-bit mix of up to three integers (a murmur3-style finalizer).
 * Used where a value must be a pure function of its inputs, e.g. the price of
 * a product on a given day, without carrying generator state.
 */
export function hash32(a: number, b = 0, c = 0): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h ^ b, 0xc2b2ae35);
  h ^= h >>> 16;
  h = Math.imul(h ^ c, 0x27d4eb2f);
  h ^= h >>> 15;
  h = Math.imul(h, 0x165667b1);
  h ^= h >>> 16;
  return h >>> 0;
}

/** `hash32` scaled to [0, 1). */
export function hashUnit(a: number, b = 0, c = 0): number {
  return hash32(a, b, c) / 4294967296;
}

/** A seeded random stream (sfc32). */
export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  /** Seeds from a string or number; the same seed always gives the same stream. */
  constructor(seed: string | number) {
    const [a, b, c, d] = hashString128(String(seed));
    this.#a = a;
    this.#b = b;
    this.#c = c;
    this.#d = d;
    // Discard the first outputs: sfc32 mixes its state in ~12 rounds.
    for (let i = 0; i < 15; i++) this.nextUint32();
  }

  /** The next unsigned 32-bit integer. */
  nextUint32(): number {
    const a = this.#a, b = this.#b, c = this.#c, d = this.#d;
    const t = (((a + b) | 0) + d) | 0;
    this.#d = (d + 1) | 0;
    this.#a = b ^ (b >>> 9);
    this.#b = (c + (c << 3)) | 0;
    const c2 = (c << 21) | (c >>> 11);
    this.#c = (c2 + t) | 0;
    return t >>> 0;
  }

  /** A float in [0, 1) with 32 bits of randomness. */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** An integer in [min, max] (both inclusive). */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** A uniformly chosen element of a non-empty array. */
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)];
  }

  /**
   * An element chosen by weight. `cumulative` holds the running sums of the
   * weights (see `cumulativeWeights`), so a pick is a short scan, no allocation.
   */
  pickWeighted<T>(items: readonly T[], cumulative: readonly number[]): T {
    const r = this.next() * cumulative[cumulative.length - 1];
    for (let i = 0; i < cumulative.length; i++) {
      if (r < cumulative[i]) return items[i];
    }
    return items[items.length - 1];
  }

  /** A standard normal variate (Box-Muller; one of the pair is discarded for simplicity). */
  normal(): number {
    let u = this.next();
    if (u < 1e-12) u = 1e-12;
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }

  /** A log-normal variate with the given median and shape sigma. */
  logNormal(median: number, sigma: number): number {
    return median * Math.exp(sigma * this.normal());
  }

  /** Fisher-Yates shuffle in place; returns the array. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      const t = items[i];
      items[i] = items[j];
      items[j] = t;
    }
    return items;
  }
}

/**
 * mulberry32 as a `() => number` in [0, 1): the stream the dbt and site test
 * fixtures and the crash test were written against. It is kept bit-exact, in
 * this one place, because a fixture's data is a function of its stream:
 * moving the fixtures to sfc32 is a data change of its own, to be made with
 * their tests run. New code uses `Rng`.
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Running sums of `weights`, for `Rng.pickWeighted`. */
export function cumulativeWeights(weights: readonly number[]): number[] {
  const out: number[] = [];
  let sum = 0;
  for (const w of weights) out.push(sum += w);
  return out;
}
