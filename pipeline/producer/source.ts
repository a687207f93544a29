/**
 * Where the producer's records come from: the seeded generator, run either
 * on the main thread or in a worker (the default for the CLI), so generating
 * the next batch overlaps with kafkajs encoding the current one on another
 * core. Both give exactly the generator's stream, in order.
 */
import {
  BAD_KIND_LIST,
  type BadKind,
  createGenerator,
  type GeneratorOptions,
  type GeneratorStats,
} from "../events/generator.ts";
import { EVENT_TYPES, type EventType } from "../events/schema.ts";

/** A batch of records in stream order (columnar: cheap to pass to a worker). */
export interface RecordBatch {
  /** Kafka keys (session ids). */
  keys: string[];
  /** Values: JSON text, or bytes for invalid-UTF-8 records. */
  values: (string | Uint8Array)[];
  /** Event time of the last record (epoch ms). */
  lastTs: number;
  /** What this batch added to the generator's counters. */
  delta: StatsDelta;
}

export interface StatsDelta {
  events: Record<EventType, number>;
  bad: Record<BadKind, number>;
  sessions: number;
  orders: number;
}

/** Counters that start at zero. */
export function emptyDelta(): StatsDelta {
  return {
    events: Object.fromEntries(EVENT_TYPES.map((t) => [t, 0])) as Record<
      EventType,
      number
    >,
    bad: Object.fromEntries(BAD_KIND_LIST.map((k) => [k, 0])) as Record<
      BadKind,
      number
    >,
    sessions: 0,
    orders: 0,
  };
}

/** Adds `d` into `into`. */
export function addDelta(into: StatsDelta, d: StatsDelta): void {
  for (const t of EVENT_TYPES) into.events[t] += d.events[t];
  for (const k of BAD_KIND_LIST) into.bad[k] += d.bad[k];
  into.sessions += d.sessions;
  into.orders += d.orders;
}

function snapshot(s: GeneratorStats): StatsDelta {
  return {
    events: { ...s.events },
    bad: { ...s.bad },
    sessions: s.sessions,
    orders: s.orders,
  };
}

function diff(after: StatsDelta, before: StatsDelta): StatsDelta {
  const d = emptyDelta();
  for (const t of EVENT_TYPES) d.events[t] = after.events[t] - before.events[t];
  for (const k of BAD_KIND_LIST) d.bad[k] = after.bad[k] - before.bad[k];
  d.sessions = after.sessions - before.sessions;
  d.orders = after.orders - before.orders;
  return d;
}

/** Generates `n` records as a columnar batch. */
export function takeBatch(
  gen: ReturnType<typeof createGenerator>,
  n: number,
): RecordBatch {
  const before = snapshot(gen.stats);
  const keys: string[] = new Array(n);
  const values: (string | Uint8Array)[] = new Array(n);
  let lastTs = 0;
  for (let i = 0; i < n; i++) {
    const r = gen.next();
    keys[i] = r.key;
    values[i] = r.value;
    lastTs = r.ts;
  }
  return { keys, values, lastTs, delta: diff(snapshot(gen.stats), before) };
}

/** A source of record batches. */
export interface RecordSource {
  /** Resolves when the source can deliver (a worker has started). */
  ready(): Promise<void>;
  /** The next `n` records; `next` hints the size of the following request. */
  take(n: number, next?: number): Promise<RecordBatch>;
  close(): void;
}

/** The generator on the calling thread. */
export class InlineSource implements RecordSource {
  #gen: ReturnType<typeof createGenerator>;
  constructor(opts: GeneratorOptions) {
    this.#gen = createGenerator(opts);
  }
  ready(): Promise<void> {
    return Promise.resolve();
  }
  take(n: number): Promise<RecordBatch> {
    return Promise.resolve(takeBatch(this.#gen, n));
  }
  close(): void {}
}

/**
 * The generator in a worker. With a `next` hint the worker starts on the
 * following batch at once (one batch of read-ahead); records read ahead but
 * never taken are simply dropped and do not count in any total.
 */
export class WorkerSource implements RecordSource {
  #worker: Worker;
  #queue: { n: number; promise: Promise<RecordBatch> }[] = [];
  #waiting: {
    resolve: (b: RecordBatch) => void;
    reject: (e: Error) => void;
  }[] = [];
  #failed: Error | undefined;
  #ready: Promise<void>;

  constructor(opts: GeneratorOptions) {
    this.#worker = new Worker(new URL("./gen_worker.ts", import.meta.url), {
      type: "module",
    });
    let readyResolve!: () => void;
    let readyReject!: (e: Error) => void;
    this.#ready = new Promise((res, rej) => {
      readyResolve = res;
      readyReject = rej;
    });
    this.#ready.catch(() => {}); // also reported through take()
    this.#worker.onmessage = (
      e: MessageEvent<RecordBatch | { error: string } | { ready: true }>,
    ) => {
      if ("ready" in e.data) return readyResolve();
      const w = this.#waiting.shift();
      if (!w) return;
      if ("error" in e.data) w.reject(new Error(e.data.error));
      else w.resolve(e.data);
    };
    this.#worker.onerror = (e) => {
      e.preventDefault();
      this.#failed = new Error(`generator worker failed: ${e.message}`);
      readyReject(this.#failed);
      for (const w of this.#waiting.splice(0)) w.reject(this.#failed);
    };
    const startTime = typeof opts.startTime === "number"
      ? opts.startTime
      : opts.startTime.getTime();
    this.#worker.postMessage({ type: "init", opts: { ...opts, startTime } });
  }

  ready(): Promise<void> {
    return this.#ready;
  }

  #request(n: number): Promise<RecordBatch> {
    if (this.#failed) return Promise.reject(this.#failed);
    const promise = new Promise<RecordBatch>((resolve, reject) => {
      this.#waiting.push({ resolve, reject });
    });
    this.#worker.postMessage({ type: "take", n });
    return promise;
  }

  async take(n: number, next?: number): Promise<RecordBatch> {
    let batch: RecordBatch;
    const head = this.#queue.shift();
    if (head && head.n === n) {
      batch = await head.promise;
    } else if (head) {
      // A read-ahead of another size: it is part of the stream, so it must
      // be used first; take it and the rest in order.
      const first = await head.promise;
      const rest = await this.#request(n - Math.min(n, head.n));
      batch = concat(first, rest, n);
    } else {
      batch = await this.#request(n);
    }
    if (next !== undefined && next > 0) {
      this.#queue.push({ n: next, promise: this.#request(next) });
    }
    return batch;
  }

  close(): void {
    this.#worker.terminate();
  }
}

function concat(a: RecordBatch, b: RecordBatch, n: number): RecordBatch {
  if (a.keys.length >= n) {
    // Unreachable with the producer (it only shrinks the last request), kept
    // for safety: never split a batch, return it whole.
    return a;
  }
  const delta = emptyDelta();
  addDelta(delta, a.delta);
  addDelta(delta, b.delta);
  return {
    keys: a.keys.concat(b.keys),
    values: a.values.concat(b.values),
    lastTs: b.keys.length ? b.lastTs : a.lastTs,
    delta,
  };
}
