/**
 * Reads back what the HDFS raw and dead-letter zones hold, record by record:
 * every committed Parquet file (downloaded, then read with DuckDB) and every
 * dead-letter NDJSON line, each with its Kafka coordinates. Used by the audit
 * and by the exactly-once tests; anything that is not a committed data file
 * is reported as foreign, anything left in the staging area as a leftover.
 */
import { DuckDBInstance } from "@duckdb/node-api";
import type { Config } from "../config.ts";
import { createWebHdfs, type FileStatus } from "../clients/webhdfs.ts";
import {
  type DataFileName,
  parseDataFileName,
  parseRawPartition,
} from "./names.ts";
import type { DeadLetterRecord } from "./dead_letter.ts";
import { parseEpochFolderName } from "./markers.ts";
import { pendingCompactionInputs } from "./compaction.ts";

/** A row of the raw zone as read back. */
export interface RawZoneRow {
  event_id: string;
  event_type: string;
  geo_country: string;
  kafka_partition: number;
  kafka_offset: number;
  /** File name @ the row's event date and hour (YYYY-MM-DD HH). */
  file: string;
  /** HDFS path of the file. */
  path: string;
}

export type DeadLetterRow = DeadLetterRecord & { file: string; path: string };

/** Everything both zones hold. */
export interface ZoneContents {
  raw: RawZoneRow[];
  deadLetters: DeadLetterRow[];
  /** Files whose names are not committed-file names (must be none). */
  foreign: string[];
  /** Entries left in the consumer's staging folders. */
  leftovers: string[];
  rawFiles: number;
  rawBytes: number;
  deadLetterFiles: number;
}

/**
 * Runs DuckDB queries over the raw zone's committed Parquet files, exposed as
 * the view `raw_zone` (downloaded to a temporary folder first: DuckDB's httpfs
 * cannot be installed here). Returns each query's rows as objects.
 */
export async function queryRawZone(
  config: Config,
  queries: Record<string, string>,
): Promise<Record<string, Record<string, unknown>[]>> {
  const hdfs = createWebHdfs(config, { timeoutMs: 120_000 });
  const tmp = await Deno.makeTempDir({ prefix: "logpipe-rawzone-" });
  try {
    let n = 0;
    const replaced = await pendingCompactionInputs(hdfs, config.hdfs);
    for (const f of await hdfs.walk(config.hdfs.rawDir)) {
      if (replaced.has(f.path)) continue;
      const name = parseDataFileName(f.pathSuffix);
      if (!name || name.extension !== "parquet" || !parseRawPartition(f.path)) {
        continue;
      }
      await Deno.writeFile(`${tmp}/${++n}.parquet`, await hdfs.read(f.path));
    }
    const db = await DuckDBInstance.create(":memory:");
    const con = await db.connect();
    try {
      await con.run(
        n
          ? `create view raw_zone as select * from read_parquet('${tmp}/*.parquet')`
          : "create view raw_zone as select null::varchar as event_id where false",
      );
      const out: Record<string, Record<string, unknown>[]> = {};
      for (const [k, sql] of Object.entries(queries)) {
        out[k] = (await con.runAndReadAll(sql)).getRowObjectsJson() as Record<
          string,
          unknown
        >[];
      }
      return out;
    } finally {
      con.closeSync();
      db.closeSync();
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

/** Downloads and reads both zones (8 downloads in flight). */
export async function readZones(config: Config): Promise<ZoneContents> {
  const hdfs = createWebHdfs(config, { timeoutMs: 120_000 });
  const tmp = await Deno.makeTempDir({ prefix: "logpipe-zones-" });
  try {
    const foreign: string[] = [];
    // Inputs a committed compaction replaced (rolled forward by the next
    // batch): their rows are in the merged file already.
    const replaced = await pendingCompactionInputs(hdfs, config.hdfs);
    const queue = (await hdfs.walk(config.hdfs.rawDir)).filter((f) =>
      !replaced.has(f.path)
    );
    const localToPath = new Map<string, string>();
    let rawBytes = 0;
    let n = 0;
    const worker = async () => {
      for (let f = queue.shift(); f; f = queue.shift()) {
        const name = parseDataFileName(f.pathSuffix);
        if (
          !name || name.extension !== "parquet" || !parseRawPartition(f.path)
        ) {
          foreign.push(f.path);
          continue;
        }
        const local = `${tmp}/${++n}__${f.pathSuffix}`;
        const bytes = await hdfs.read(f.path);
        rawBytes += bytes.byteLength;
        await Deno.writeFile(local, bytes);
        localToPath.set(local, f.path);
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));

    const raw: RawZoneRow[] = [];
    if (localToPath.size) {
      const db = await DuckDBInstance.create(":memory:");
      const con = await db.connect();
      try {
        const res = await con.runAndReadAll(
          `select event_id, event_type, geo_country, kafka_partition,
                  kafka_offset::bigint, filename,
                  strftime(event_ts at time zone 'UTC', '%Y-%m-%d %H')
             from read_parquet('${tmp}/*.parquet', filename = true)`,
        );
        for (const r of res.getRows()) {
          const local = String(r[5]);
          const path = localToPath.get(local) ?? local;
          raw.push({
            event_id: String(r[0]),
            event_type: String(r[1]),
            geo_country: String(r[2]),
            kafka_partition: Number(r[3]),
            kafka_offset: Number(r[4]),
            file: `${path.split("/").pop()}@${String(r[6])}`,
            path,
          });
        }
      } finally {
        con.closeSync();
        db.closeSync();
      }
    }

    const deadLetters: DeadLetterRow[] = [];
    let deadLetterFiles = 0;
    for (const f of await hdfs.walk(config.hdfs.deadLetterDir)) {
      const name = parseDataFileName(f.pathSuffix);
      if (
        !name || name.extension !== "ndjson" ||
        !/\/date=\d{4}-\d{2}-\d{2}\//.test(f.path)
      ) {
        foreign.push(f.path);
        continue;
      }
      deadLetterFiles++;
      deadLetters.push(
        ...parseDeadLetterLines(
          await hdfs.readText(f.path),
          f.pathSuffix,
          f.path,
        ),
      );
    }

    // Batch folders still in staging or committed (the consumer's epoch
    // folders below committed/ stay, empty, while their owner lives).
    const leftovers: string[] = [];
    const tmpRoot = `${config.hdfs.root}/_tmp`;
    for (const s of await hdfs.listOrEmpty(`${tmpRoot}/staging`)) {
      leftovers.push(`staging/${s.pathSuffix}`);
    }
    for (const c of await hdfs.listOrEmpty(`${tmpRoot}/committed`)) {
      if (!parseEpochFolderName(c.pathSuffix)) {
        leftovers.push(`committed/${c.pathSuffix}`);
        continue;
      }
      const dir = `${tmpRoot}/committed/${c.pathSuffix}`;
      for (const b of await hdfs.listOrEmpty(dir)) {
        leftovers.push(`committed/${c.pathSuffix}/${b.pathSuffix}`);
      }
    }
    return {
      raw,
      deadLetters,
      foreign,
      leftovers,
      rawFiles: localToPath.size,
      rawBytes,
      deadLetterFiles,
    };
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

/** The records of one dead-letter file (one JSON object per line). */
export function parseDeadLetterLines(
  text: string,
  file: string,
  path: string,
): DeadLetterRow[] {
  const rows: DeadLetterRow[] = [];
  for (const line of text.split("\n")) {
    if (line) rows.push({ ...JSON.parse(line), file, path });
  }
  return rows;
}

/** A committed dead-letter file, with the date of its folder. */
export interface DeadLetterFile extends FileStatus {
  path: string;
  /** YYYY-MM-DD of its `date=` folder (the records' Kafka timestamp date). */
  date: string;
  name: DataFileName;
}

/**
 * The dead-letter zone's committed files (`date=YYYY-MM-DD/<name>.ndjson`),
 * only the date folders within [fromDate, toDate] when given (inclusive,
 * YYYY-MM-DD), newest first (by modification time: every record of a file
 * was dead-lettered before the file was written). Anything else in the zone
 * is skipped (the audit reports it as foreign).
 */
export async function listDeadLetterFiles(
  config: Config,
  opts: { fromDate?: string; toDate?: string } = {},
): Promise<DeadLetterFile[]> {
  const hdfs = createWebHdfs(config, { timeoutMs: 120_000 });
  const root = config.hdfs.deadLetterDir;
  const files: DeadLetterFile[] = [];
  for (const dir of await hdfs.listOrEmpty(root)) {
    const date = /^date=(\d{4}-\d{2}-\d{2})$/.exec(dir.pathSuffix)?.[1];
    if (dir.type !== "DIRECTORY" || !date) continue;
    if (opts.fromDate && date < opts.fromDate) continue;
    if (opts.toDate && date > opts.toDate) continue;
    for (const f of await hdfs.listOrEmpty(`${root}/${dir.pathSuffix}`)) {
      const name = parseDataFileName(f.pathSuffix);
      if (f.type !== "FILE" || name?.extension !== "ndjson") continue;
      files.push({
        ...f,
        path: `${root}/${dir.pathSuffix}/${f.pathSuffix}`,
        date,
        name,
      });
    }
  }
  return files.sort((a, b) =>
    b.modificationTime - a.modificationTime || (a.path < b.path ? 1 : -1)
  );
}
