/**
 * Test and benchmark input: writes raw-zone Parquet files into HDFS exactly
 * as the stream consumer commits them (events generator → flatten → the
 * consumer's ParquetWriter → temp path → atomic rename to
 * `event_date=/event_hour=/<topic>+<partition>+<first>+<last>.parquet`).
 * Growing data comes from calling `writeBatch` again: the generator and
 * the per-partition offsets continue where they stopped.
 */
import type { WebHdfs } from "../clients/webhdfs.ts";
import {
  formatDataFileName,
  rawPartitionDir,
  utcDateHour,
} from "../zones/names.ts";
import { ParquetWriter } from "../zones/parquet_writer.ts";
import { type FlatRow, flattenEvent } from "../events/flatten.ts";
import { createGenerator, type EventGenerator } from "../events/generator.ts";

/** What one `writeBatch` committed. */
export interface FixtureBatch {
  files: string[];
  events: number;
  /** Events per `YYYY-MM-DD HH` hour. */
  perHour: Map<string, number>;
  firstTs: number;
  lastTs: number;
}

/** FNV-1a of the key: a stable Kafka-like partitioner. */
function partitionOf(key: string, partitions: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % partitions;
}

/** Writes consumer-shaped raw files for a topic. */
export class RawZoneFixture {
  readonly #gen: EventGenerator;
  readonly #iter: Iterator<import("../events/generator.ts").GeneratedRecord>;
  readonly #offsets: number[];
  #writer: ParquetWriter | undefined;
  #work: string | undefined;

  constructor(
    readonly hdfs: WebHdfs,
    readonly rawDir: string,
    readonly topic: string,
    opts: {
      seed?: string;
      startTime?: Date;
      rate?: number;
      partitions?: number;
    } = {},
  ) {
    this.#gen = createGenerator({
      seed: opts.seed ?? "batch-fixture",
      startTime: opts.startTime ?? new Date("2026-01-05T10:00:00Z"),
      rate: opts.rate ?? 50,
      badRate: 0,
    });
    this.#iter = this.#gen[Symbol.iterator]();
    this.#offsets = new Array(opts.partitions ?? 3).fill(0);
  }

  /**
   * Generates the next `count` events and commits them as one micro-batch:
   * one file per (Kafka partition, event hour), like the consumer.
   */
  async writeBatch(count: number): Promise<FixtureBatch> {
    this.#writer ??= await ParquetWriter.create();
    this.#work ??= await Deno.makeTempDir({ prefix: "logpipe-fixture-" });
    const groups = new Map<
      string,
      { partition: number; date: string; hour: string; rows: FlatRow[] }
    >();
    const perHour = new Map<string, number>();
    let firstTs = Infinity;
    let lastTs = -Infinity;
    let n = 0;
    while (n < count) {
      const rec = this.#iter.next().value!;
      if (!rec.event) continue;
      const partition = partitionOf(rec.key, this.#offsets.length);
      const offset = this.#offsets[partition]++;
      const row = flattenEvent(rec.event, {
        topic: this.topic,
        partition,
        offset,
        timestamp: rec.ts,
      });
      const { date, hour } = utcDateHour(Date.parse(row.event_ts));
      const key = `${partition}|${date}|${hour}`;
      let g = groups.get(key);
      if (!g) groups.set(key, g = { partition, date, hour, rows: [] });
      g.rows.push(row);
      perHour.set(`${date} ${hour}`, (perHour.get(`${date} ${hour}`) ?? 0) + 1);
      firstTs = Math.min(firstTs, rec.ts);
      lastTs = Math.max(lastTs, rec.ts);
      n++;
    }
    const files: string[] = [];
    for (const g of groups.values()) {
      const ndjson = `${this.#work}/batch.ndjson`;
      const parquet = `${this.#work}/batch.parquet`;
      await Deno.writeTextFile(
        ndjson,
        g.rows.map((r) => JSON.stringify(r)).join("\n") + "\n",
      );
      const written = await this.#writer.convert(ndjson, parquet);
      if (written !== g.rows.length) {
        throw new Error(`fixture wrote ${written} of ${g.rows.length}`);
      }
      const name = formatDataFileName({
        topic: this.topic,
        partition: g.partition,
        firstOffset: g.rows[0].kafka_offset,
        lastOffset: g.rows.at(-1)!.kafka_offset,
        extension: "parquet",
      });
      const dir = `${this.rawDir}/${rawPartitionDir(g.date, g.hour)}`;
      const tmp = `${this.rawDir}/_tmp/${name}`;
      await this.hdfs.mkdirs(`${this.rawDir}/_tmp`);
      await this.hdfs.mkdirs(dir);
      await this.hdfs.create(tmp, await Deno.readFile(parquet), {
        overwrite: true,
      });
      if (!(await this.hdfs.rename(tmp, `${dir}/${name}`))) {
        throw new Error(`rename failed: ${name}`);
      }
      files.push(`${dir}/${name}`);
    }
    return { files, events: n, perHour, firstTs, lastTs };
  }

  /** Frees DuckDB and the scratch folder. */
  async close(): Promise<void> {
    this.#writer?.close();
    if (this.#work) {
      await Deno.remove(this.#work, { recursive: true }).catch(() => {});
    }
  }
}

/**
 * Commits one raw-zone file holding exactly `rows` (one topic and Kafka
 * partition; any content, e.g. hostile), in the hour folder of `hourOf`
 * (default: the first row's event_ts), named from the rows' offsets. For
 * tests that need precise files: duplicates, overlaps, bad text.
 */
export async function writeRawRows(
  hdfs: WebHdfs,
  rawDir: string,
  rows: FlatRow[],
  opts: { hourOf?: string; name?: string } = {},
): Promise<string> {
  const work = await Deno.makeTempDir({ prefix: "logpipe-rows-" });
  const writer = await ParquetWriter.create();
  try {
    const ndjson = `${work}/rows.ndjson`;
    const parquet = `${work}/rows.parquet`;
    await Deno.writeTextFile(
      ndjson,
      rows.map((r) => JSON.stringify(r)).join("\n") + "\n",
    );
    const written = await writer.convert(ndjson, parquet);
    if (written !== rows.length) {
      throw new Error(`wrote ${written} of ${rows.length} rows`);
    }
    const offsets = rows.map((r) => r.kafka_offset);
    const name = opts.name ?? formatDataFileName({
      topic: rows[0].kafka_topic,
      partition: rows[0].kafka_partition,
      firstOffset: Math.min(...offsets),
      lastOffset: Math.max(...offsets),
      extension: "parquet",
    });
    const { date, hour } = utcDateHour(
      Date.parse(opts.hourOf ?? rows[0].event_ts),
    );
    const dir = `${rawDir}/${rawPartitionDir(date, hour)}`;
    await hdfs.mkdirs(dir);
    await hdfs.create(`${rawDir}/_tmp/${name}`, await Deno.readFile(parquet), {
      overwrite: true,
    });
    if (!(await hdfs.rename(`${rawDir}/_tmp/${name}`, `${dir}/${name}`))) {
      throw new Error(`rename failed: ${name}`);
    }
    return `${dir}/${name}`;
  } finally {
    writer.close();
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}
