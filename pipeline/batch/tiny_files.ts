/**
 * Test helper: many tiny, valid raw-zone files, fast (the listing test puts
 * 200,000 of them in the zone).
 *
 * DuckDB writes ONE template file (one `error` event, every column of
 * FLAT_COLUMNS, uncompressed so values are stored literally); each file is
 * the template with its event_id, Kafka partition and offset and event time
 * patched in place, everywhere they occur (data pages and statistics), with
 * values of the same width. The template is checked to hold each marker the
 * expected way, and a patched file is read back by DuckDB before any is
 * written, so a file that would not read right is never produced. Writing
 * is then one WebHDFS CREATE per file, `concurrency` in flight.
 *
 * `recordAsLoaded` makes files history: their ledger rows (validated) and
 * their raw.events rows, inserted by SQL as the loader would have, so a run
 * sees them as loaded long ago.
 */
import { DuckDBInstance } from "@duckdb/node-api";
import type { Pool } from "../clients/postgres.ts";
import type { WebHdfs } from "../clients/webhdfs.ts";
import { FLAT_COLUMNS, NO_DETAILS } from "../events/flatten.ts";
import { readJsonColumns } from "../zones/parquet_writer.ts";
import { formatDataFileName, rawPartitionDir } from "../zones/names.ts";

const ID_MARK = "tiny-AAAAAAAAAAAAAAAAAAAA";
const OFFSET_MARK = 7_777_777_777_777n;
const PARTITION_MARK = 987_654;
const TS_MARK = "2001-02-03T04:05:06.789Z";

/** One tiny file to write: its partition, offset (one row) and event time. */
export interface TinySpec {
  partition: number;
  offset: number;
  /** Event time (ms); the file goes to this hour's folder. */
  ts: number;
}

/** The event_id of the tiny file at (partition, offset). */
export function tinyEventId(partition: number, offset: number): string {
  return `tiny-${
    String(partition * 1_000_000_000_000 + offset).padStart(20, "0")
  }`;
}

function le64(n: bigint): Uint8Array {
  const a = new Uint8Array(8);
  new DataView(a.buffer).setBigInt64(0, n, true);
  return a;
}

function le32(n: number): Uint8Array {
  const a = new Uint8Array(4);
  new DataView(a.buffer).setInt32(0, n, true);
  return a;
}

function positions(buf: Uint8Array, needle: Uint8Array): number[] {
  const out: number[] = [];
  outer: for (let i = 0; i <= buf.length - needle.length; i++) {
    for (let j = 0; j < needle.length; j++) {
      if (buf[i + j] !== needle[j]) continue outer;
    }
    out.push(i);
  }
  return out;
}

/** The template row (every value a marker or a constant). */
function templateRow(topic: string) {
  return {
    event_id: ID_MARK,
    schema_version: 1,
    event_type: "error",
    event_ts: TS_MARK,
    level: "ERROR",
    service: "checkout",
    user_id: "u_000001",
    session_id: "s_0000000000000001",
    device_type: "desktop",
    geo_country: "US",
    geo_city: "New York",
    response_time_ms: 12,
    ...NO_DETAILS,
    error_code: "E500",
    error_message: "tiny file",
    error_at: TS_MARK,
    http_status: 500,
    details_json: "{}",
    kafka_topic: topic,
    kafka_partition: PARTITION_MARK,
    kafka_offset: Number(OFFSET_MARK),
    kafka_timestamp: TS_MARK,
  };
}

/** Makes and writes tiny raw files of one topic. */
export class TinyRawFiles {
  private constructor(
    readonly topic: string,
    readonly template: Uint8Array,
    readonly marks: {
      id: number[];
      offset: number[];
      partition: number[];
      ts: number[];
    },
  ) {}

  /** Builds and checks the template. */
  static async create(topic: string): Promise<TinyRawFiles> {
    const dir = await Deno.makeTempDir({ prefix: "logpipe-tiny-" });
    const db = await DuckDBInstance.create(":memory:");
    const con = await db.connect();
    try {
      await Deno.writeTextFile(
        `${dir}/t.ndjson`,
        JSON.stringify(templateRow(topic)) + "\n",
      );
      const cols = FLAT_COLUMNS.map((c) => `"${c.name}"`).join(", ");
      await con.run(
        `copy (select ${cols} from read_json('${dir}/t.ndjson',
           format = 'newline_delimited', columns = ${readJsonColumns()}))
         to '${dir}/t.parquet' (format parquet, compression uncompressed)`,
      );
      const template = await Deno.readFile(`${dir}/t.parquet`);
      const marks = {
        id: positions(template, new TextEncoder().encode(ID_MARK)),
        offset: positions(template, le64(OFFSET_MARK)),
        partition: positions(template, le32(PARTITION_MARK)),
        ts: positions(template, le64(BigInt(Date.parse(TS_MARK)) * 1000n)),
      };
      for (const [k, v] of Object.entries(marks)) {
        if (v.length === 0) throw new Error(`tiny template: no ${k} marker`);
      }
      const tiny = new TinyRawFiles(topic, template, marks);
      // A patched file must read back as exactly its values.
      const probe = {
        partition: 3,
        offset: 42,
        ts: Date.parse("2026-01-01T05:06:07.008Z"),
      };
      await Deno.writeFile(`${dir}/p.parquet`, tiny.bytes(probe));
      const back = (await con.runAndReadAll(
        `select event_id, kafka_partition, kafka_offset::bigint,
                epoch_ms(event_ts), epoch_ms(kafka_timestamp), count(*) over ()
           from read_parquet('${dir}/p.parquet')`,
      )).getRows()[0].map(String);
      const want = [
        tinyEventId(3, 42),
        "3",
        "42",
        String(probe.ts),
        String(probe.ts),
        "1",
      ];
      if (back.join("|") !== want.join("|")) {
        throw new Error(`tiny template does not patch right: ${back}`);
      }
      return tiny;
    } finally {
      con.closeSync();
      db.closeSync();
      await Deno.remove(dir, { recursive: true });
    }
  }

  /** The bytes of one file. */
  bytes(s: TinySpec): Uint8Array {
    const b = new Uint8Array(this.template);
    const id = new TextEncoder().encode(tinyEventId(s.partition, s.offset));
    for (const at of this.marks.id) b.set(id, at);
    for (const at of this.marks.offset) b.set(le64(BigInt(s.offset)), at);
    for (const at of this.marks.partition) b.set(le32(s.partition), at);
    for (const at of this.marks.ts) b.set(le64(BigInt(s.ts) * 1000n), at);
    return b;
  }

  /** The file's path below `rawDir`. */
  path(rawDir: string, s: TinySpec): string {
    const iso = new Date(s.ts).toISOString();
    return `${rawDir}/${rawPartitionDir(iso.slice(0, 10), iso.slice(11, 13))}/${
      formatDataFileName({
        topic: this.topic,
        partition: s.partition,
        firstOffset: s.offset,
        lastOffset: s.offset,
        extension: "parquet",
      })
    }`;
  }

  /**
   * Writes the files (folders first, then `concurrency` CREATEs in
   * flight). Files appear whole: written to `${rawDir}/_tmp_tiny/` then
   * renamed, like the consumer's. Returns their paths.
   */
  async write(
    hdfs: WebHdfs,
    rawDir: string,
    specs: TinySpec[],
    opts: { concurrency?: number; onProgress?: (done: number) => void } = {},
  ): Promise<string[]> {
    const paths = specs.map((s) => this.path(rawDir, s));
    for (
      const dir of new Set(paths.map((p) => p.slice(0, p.lastIndexOf("/"))))
    ) {
      await hdfs.mkdirs(dir);
    }
    const tmp = `${rawDir}/_tmp_tiny`;
    await hdfs.mkdirs(tmp);
    let next = 0, done = 0;
    const worker = async () => {
      while (next < specs.length) {
        const i = next++;
        const t = `${tmp}/${crypto.randomUUID()}`;
        await hdfs.create(t, this.bytes(specs[i]), { overwrite: true });
        if (!(await hdfs.rename(t, paths[i]))) {
          throw new Error(`rename failed: ${paths[i]}`);
        }
        if (++done % 5000 === 0) opts.onProgress?.(done);
      }
    };
    await Promise.all(
      Array.from({ length: opts.concurrency ?? 16 }, worker),
    );
    await hdfs.delete(tmp, { recursive: true });
    return paths;
  }

  /**
   * Writes many files through Hadoop's own client (FsShell -put, many
   * threads) instead of WebHDFS: a local HDFS only (its jars and conf in
   * the state folder), into day folders that do not exist yet. WebHDFS
   * writes one small file in ~0.5 s (the close waits for the block report);
   * this client is told not to wait long between its completion checks.
   */
  async writeWithFsShell(
    config: { localDir: string; hdfs: { external: boolean } },
    rawDir: string,
    specs: TinySpec[],
    opts: { threads?: number } = {},
  ): Promise<string[]> {
    if (config.hdfs.external) {
      throw new Error(
        "writeWithFsShell needs the local HDFS (its client jars)",
      );
    }
    const local = await Deno.makeTempDir({ prefix: "logpipe-tiny-put-" });
    try {
      const paths = specs.map((s) => this.path(rawDir, s));
      const days = new Set<string>();
      const made = new Set<string>();
      for (const [i, s] of specs.entries()) {
        const rel = paths[i].slice(rawDir.length + 1);
        const dir = `${local}/${rel.slice(0, rel.lastIndexOf("/"))}`;
        if (!made.has(dir)) {
          await Deno.mkdir(dir, { recursive: true });
          made.add(dir);
        }
        days.add(rel.split("/")[0]);
        await Deno.writeFile(`${local}/${rel}`, this.bytes(s));
      }
      const out = await new Deno.Command("java", {
        args: [
          "-Xmx512m",
          "-cp",
          `${config.localDir}/hadoop/conf:${config.localDir}/jars/hadoop/*`,
          `-Dhadoop.home.dir=${local}`,
          "org.apache.hadoop.fs.FsShell",
          "-D",
          "dfs.client.block.write.locateFollowingBlock.initial.delay.ms=5",
          "-put",
          "-t",
          String(opts.threads ?? 8),
          ...[...days].sort().map((d) => `${local}/${d}`),
          `${rawDir}/`,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      if (!out.success) {
        throw new Error(
          `FsShell -put failed: ${
            new TextDecoder().decode(out.stderr).slice(-2000)
          }`,
        );
      }
      return paths;
    } finally {
      await Deno.remove(local, { recursive: true }).catch(() => {});
    }
  }

  /**
   * Records files as loaded and validated long ago: their ledger rows and
   * raw.events rows (the values the files hold).
   */
  async recordAsLoaded(
    pool: Pool,
    rawDir: string,
    specs: TinySpec[],
    runId = "history",
  ): Promise<void> {
    for (let i = 0; i < specs.length; i += 20_000) {
      const chunk = specs.slice(i, i + 20_000);
      const cols = [
        chunk.map((s) => this.path(rawDir, s)),
        chunk.map((s) => s.partition),
        chunk.map((s) => s.offset),
        chunk.map((s) => new Date(s.ts).toISOString()),
      ];
      await pool.query(
        `insert into raw.load_ledger (path, kafka_topic, kafka_partition, event_hour,
           first_offset, last_offset, row_count, byte_size, checksum, run_id,
           rows_loaded, validated_by)
         select p, $5, part, date_trunc('hour', ts::timestamptz, 'UTC'), o, o, 1, $7,
                'tiny', $6, 1, $6
           from unnest($1::text[], $2::int[], $3::bigint[], $4::text[])
                as u(p, part, o, ts)`,
        [...cols, this.topic, runId, this.template.length],
      );
      await pool.query(
        `insert into raw.events (event_id, schema_version, event_type, event_ts,
           level, service, user_id, session_id, device_type, geo_country, geo_city,
           response_time_ms, error_code, error_message, error_at, http_status,
           details_json, kafka_topic, kafka_partition, kafka_offset,
           kafka_timestamp, source_file)
         select 'tiny-' || lpad((part::bigint * 1000000000000 + o)::text, 20, '0'),
                1, 'error', ts::timestamptz, 'ERROR', 'checkout', 'u_000001',
                's_0000000000000001', 'desktop', 'US', 'New York', 12, 'E500',
                'tiny file', ts::timestamptz, 500, '{}', $5, part, o,
                ts::timestamptz, p
           from unnest($1::text[], $2::int[], $3::bigint[], $4::text[])
                as u(p, part, o, ts)`,
        [...cols, this.topic],
      );
    }
  }
}
