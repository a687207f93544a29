/**
 * The micro-batch of one Kafka partition: records accumulate here until a
 * rotation bound (records, bytes or the rotate interval, the way Kafka
 * Connect's HDFS sink rotates), then the batch is turned into files and
 * committed. A partition that receives nothing has no batch and writes
 * nothing.
 *
 * Valid events are flattened and kept as NDJSON lines grouped by event
 * hour (one raw-zone Parquet file per hour); rejected records become
 * dead-letter lines grouped by day. Lines are spilled to a local scratch
 * file per group, and the lines a batch holds in memory are bounded in
 * bytes over all its groups (SPILL_CHARS), so a batch of any size or any
 * spread of event hours costs disk, not heap; DuckDB later reads the NDJSON
 * directly to write Parquet.
 */
import { deadLetterPartitionDir, rawPartitionDir } from "../zones/names.ts";

/** Rotation bounds of a micro-batch (one set of files per partition). */
export interface BatchLimits {
  /** Rotate when the batch holds this many records. */
  maxRecords: number;
  /** Rotate when the records' bytes (Kafka values) reach this. */
  maxBytes: number;
  /** Rotate when the oldest record has waited this long (--rotate-interval). */
  rotateIntervalMs: number;
}

/**
 * Defaults. Live metrics come from consumed records (metrics.ts), so files
 * no longer have to be cut every second for freshness: a partition's batch
 * rotates after 5 minutes, half the batch schedule's 10-minute interval, so
 * every batch run finds data at most ~5 minutes old while a trickle of
 * 50 events/s over 6 partitions makes 12 files per partition-hour instead
 * of ~3,600. 100,000 records or 128 MB of Kafka bytes bound a file under
 * heavy load (~5 MB of Parquet; at 2,000 events/s over 6 partitions a
 * partition's 5 minutes): the NDJSON scratch stays on disk and the Parquet
 * conversion streams with small row groups, so neither bound costs heap.
 * A full batch is converted and committed in the background while the next
 * one fills (flush.ts): 1,000,000 events over 6 partitions took 40.0 s
 * instead of 46.6 s at 500,000 records (the conversions had all waited for
 * the end), and 42.2 s at 50,000 (more, smaller commits), peak RSS 246 MB.
 */
export const DEFAULT_LIMITS: BatchLimits = {
  maxRecords: 100_000,
  maxBytes: 128 * 1024 * 1024,
  rotateIntervalMs: 5 * 60_000,
};

/** Spill pending lines to disk past this many UTF-16 units (over all groups). */
const SPILL_CHARS = 1024 * 1024;

/** Records of one output file (one hour of raw events, or one day of dead letters). */
export interface LineGroup {
  kind: "raw" | "dead_letter";
  /** Folder below the zone (event_date=…/event_hour=… or date=…). */
  dir: string;
  firstOffset: number;
  lastOffset: number;
  count: number;
  /** Local NDJSON scratch file. */
  path: string;
  pending: string[];
  pendingChars: number;
}

let seq = 0;

const utf8 = new TextEncoder();
/** Reused by encodeLines; grows to the largest spill (~SPILL_CHARS × 3 bytes at most). */
let encodeBuffer = new Uint8Array(2 * SPILL_CHARS);

/**
 * The lines as UTF-8, each followed by "\n". Encoding line by line into one
 * reused buffer is ~3× faster than joining them into one string and encoding
 * that (the joined string is a rope V8 must flatten first), and makes one
 * right-sized copy for the write.
 */
function encodeLines(lines: string[]): Uint8Array {
  let n = 0;
  for (const line of lines) {
    // Worst case 3 bytes per UTF-16 unit, plus the newline.
    const need = n + line.length * 3 + 1;
    if (need > encodeBuffer.length) {
      const bigger = new Uint8Array(Math.max(need, encodeBuffer.length * 2));
      bigger.set(encodeBuffer.subarray(0, n));
      encodeBuffer = bigger;
    }
    n += utf8.encodeInto(line, encodeBuffer.subarray(n)).written;
    encodeBuffer[n++] = 10;
  }
  const out = encodeBuffer.slice(0, n);
  // A buffer grown for one huge spill is not kept.
  if (encodeBuffer.length > 4 * SPILL_CHARS) {
    encodeBuffer = new Uint8Array(2 * SPILL_CHARS);
  }
  return out;
}

/** The open micro-batch of one partition. */
export class MicroBatch {
  firstOffset = -1;
  lastOffset = -1;
  records = 0;
  bytes = 0;
  /** Valid events and dead letters in the batch (what reaches HDFS). */
  events = 0;
  deadLetters = 0;
  /** When the first record was added (ms). */
  readonly startedAt: number;
  /** Kafka timestamp (ms) of the first record, for lag in seconds. */
  firstKafkaTs: number | undefined;
  readonly groups = new Map<string, LineGroup>();
  /** Chars held in memory over all groups' pending lines. */
  #pendingChars = 0;
  #spills: Promise<void>[] = [];
  /** The raw group of the last event and its hour ("YYYY-MM-DDTHH"): events come mostly in hour order, so most skip the lookup. */
  #lastHour = "";
  #lastRaw: LineGroup | undefined;

  constructor(
    readonly topic: string,
    readonly partition: number,
    readonly scratchDir: string,
    now = Date.now(),
  ) {
    this.startedAt = now;
  }

  #group(kind: LineGroup["kind"], dir: string): LineGroup {
    const key = kind + "/" + dir;
    let g = this.groups.get(key);
    if (!g) {
      g = {
        kind,
        dir,
        firstOffset: -1,
        lastOffset: -1,
        count: 0,
        path:
          `${this.scratchDir}/${this.topic}+${this.partition}+${++seq}.ndjson`,
        pending: [],
        pendingChars: 0,
      };
      this.groups.set(key, g);
    }
    return g;
  }

  #note(offset: number, bytes: number, kafkaTsMs: number | undefined): void {
    if (offset <= this.lastOffset) {
      throw new RangeError(
        `offset ${offset} not after ${this.lastOffset} in ${this.topic}/${this.partition}`,
      );
    }
    if (this.firstOffset < 0) {
      this.firstOffset = offset;
      this.firstKafkaTs = kafkaTsMs;
    }
    this.lastOffset = offset;
    this.records++;
    this.bytes += bytes;
  }

  #push(g: LineGroup, offset: number, line: string): void {
    if (g.firstOffset < 0) g.firstOffset = offset;
    g.lastOffset = offset;
    g.count++;
    g.pending.push(line);
    g.pendingChars += line.length;
    this.#pendingChars += line.length;
    if (this.#pendingChars >= SPILL_CHARS) {
      for (const each of this.groups.values()) this.#spill(each);
    }
  }

  #spill(g: LineGroup): void {
    if (g.pending.length === 0) return;
    const bytes = encodeLines(g.pending);
    this.#pendingChars -= g.pendingChars;
    g.pending = [];
    g.pendingChars = 0;
    const prev = this.#spills.at(-1) ?? Promise.resolve();
    // Appends to one file stay ordered: each waits for the previous one.
    this.#spills.push(
      prev.then(() => Deno.writeFile(g.path, bytes, { append: true })),
    );
  }

  /** Adds a valid, flattened event (line = its FlatRow as JSON). */
  addEvent(
    offset: number,
    valueBytes: number,
    kafkaTsMs: number | undefined,
    eventTs: string,
    line: string,
  ): void {
    this.#note(offset, valueBytes, kafkaTsMs);
    this.events++;
    // event_ts is validated ISO-8601 UTC ("YYYY-MM-DDTHH:…Z").
    const hour = eventTs.slice(0, 13);
    let g = this.#lastRaw;
    if (hour !== this.#lastHour || !g) {
      const dir = rawPartitionDir(eventTs.slice(0, 10), eventTs.slice(11, 13));
      g = this.#lastRaw = this.#group("raw", dir);
      this.#lastHour = hour;
    }
    this.#push(g, offset, line);
  }

  /** Adds a rejected record's dead-letter line, filed under `date` (YYYY-MM-DD). */
  addDeadLetter(
    offset: number,
    valueBytes: number,
    kafkaTsMs: number | undefined,
    date: string,
    line: string,
  ): void {
    this.#note(offset, valueBytes, kafkaTsMs);
    this.deadLetters++;
    this.#push(
      this.#group("dead_letter", deadLetterPartitionDir(date)),
      offset,
      line,
    );
  }

  /** True when the batch reached its record or byte bound. */
  full(limits: BatchLimits): boolean {
    return this.records >= limits.maxRecords || this.bytes >= limits.maxBytes;
  }

  /** True when a rotation bound is reached (size, or the rotate interval). */
  due(limits: BatchLimits, now = Date.now()): boolean {
    return this.full(limits) ||
      (this.records > 0 && now - this.startedAt >= limits.rotateIntervalMs);
  }

  /** Writes every pending line to the scratch files and waits for them. */
  async finish(): Promise<LineGroup[]> {
    for (const g of this.groups.values()) this.#spill(g);
    await Promise.all(this.#spills);
    this.#spills = [];
    return [...this.groups.values()];
  }

  /** Removes the scratch files. */
  async discard(): Promise<void> {
    await Promise.allSettled(this.#spills);
    await Promise.all(
      [...this.groups.values()].map((g) => Deno.remove(g.path).catch(() => {})),
    );
  }
}
