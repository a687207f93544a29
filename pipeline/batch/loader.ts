/**
 * The load step: raw-zone Parquet files → Postgres `raw.events`, exactly once.
 *
 * Per file: download over WebHDFS, convert with DuckDB to Postgres-ready CSV
 * (DuckDB's native writer; typed, quoted, NULL vs "" kept apart), stream it
 * with COPY FROM STDIN, and insert the file's ledger row (path, offsets, row
 * count, checksum, run id) in the SAME transaction. A crash at any moment
 * leaves either the file's rows and its ledger row, or neither; the next run
 * loads what the ledger lacks. The next file is downloaded and converted
 * while the current one is copied, so the network, DuckDB and Postgres
 * overlap.
 *
 * Duplicate event_ids are not papered over with `on conflict do nothing`:
 * if the protocol holds they cannot happen, so the primary key is the check.
 * A file that would duplicate an event is rejected (rolled back, named in
 * the error, the task fails without useless retries) and the other files
 * still load.
 */
import { DuckDBInstance } from "@duckdb/node-api";
import { createReadStream } from "node:fs";
import { pipeline } from "node:stream/promises";
import { from as copyFrom } from "pg-copy-streams";
import type { Pool, PoolClient } from "../clients/postgres.ts";
import type { WebHdfs } from "../clients/webhdfs.ts";
import type { Logger } from "../log.ts";
import type { RawFile } from "../zones/raw_listing.ts";
import { NonRetryableError } from "./retry.ts";
import { errorText } from "./runner.ts";

/** A column of raw.events as Postgres declares it. */
export interface TargetColumn {
  name: string;
  dataType: string;
  nullable: boolean;
}

/** Columns the loader fills itself rather than from the file. */
const LOADER_COLUMNS = new Set(["source_file", "loaded_at"]);

/** raw.events' columns in table order (the contract with the consumer's Parquet). */
export async function targetColumns(pool: Pool): Promise<TargetColumn[]> {
  const res = await pool.query(
    `select column_name, data_type, is_nullable from information_schema.columns
     where table_schema = 'raw' and table_name = 'events' order by ordinal_position`,
  );
  if (res.rows.length === 0) {
    throw new Error("table raw.events does not exist (migrate first)");
  }
  return res.rows.map((
    r: { column_name: string; data_type: string; is_nullable: string },
  ) => ({
    name: r.column_name,
    dataType: r.data_type,
    nullable: r.is_nullable === "YES",
  }));
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

function quoteLiteral(s: string): string {
  return `'${s.replaceAll("'", "''")}'`;
}

/**
 * The DuckDB select list that turns a Parquet file's columns (name → DuckDB
 * type) into raw.events' columns, in order. Missing nullable columns become
 * NULL (files written before a column was added); a missing NOT NULL column
 * is an error. Returns the list and the file's columns nobody reads.
 */
export function selectList(
  target: TargetColumn[],
  fileColumns: Map<string, string>,
  sourceFile: string,
): { columns: string[]; exprs: string[]; unused: string[] } {
  const columns: string[] = [];
  const exprs: string[] = [];
  for (const col of target) {
    if (col.name === "loaded_at") continue;
    columns.push(col.name);
    if (col.name === "source_file") {
      exprs.push(quoteLiteral(sourceFile));
      continue;
    }
    const type = fileColumns.get(col.name);
    if (type === undefined) {
      if (!col.nullable) {
        throw new NonRetryableError(
          `${sourceFile}: required column ${col.name} is missing from the file`,
        );
      }
      exprs.push("NULL");
      continue;
    }
    const q = quoteIdent(col.name);
    const t = type.toUpperCase();
    if (
      col.dataType === "timestamp with time zone" && t.startsWith("TIMESTAMP")
    ) {
      // Naive timestamps in the files are UTC; the session runs in UTC.
      exprs.push(`${q}::TIMESTAMPTZ`);
    } else if (
      (col.dataType === "jsonb" || col.dataType === "json") && t !== "VARCHAR"
    ) {
      exprs.push(`to_json(${q})::VARCHAR`);
    } else {
      exprs.push(q);
    }
  }
  const used = new Set(columns);
  const unused = [...fileColumns.keys()].filter((c) =>
    !used.has(c) && !LOADER_COLUMNS.has(c)
  );
  return { columns, exprs, unused };
}

/** A file made ready to COPY. */
interface PreparedFile {
  file: RawFile;
  csvPath: string;
  rows: number;
  bytes: number;
  checksum: string;
  columns: string[];
}

/** Outcome of one file. */
export interface FileLoad {
  path: string;
  rows: number;
  bytes: number;
}

/** Outcome of a load. */
export interface LoadResult {
  files: FileLoad[];
  rows: number;
  bytes: number;
  /** Files refused (duplicate events, unreadable), with why. */
  rejected: Array<{ path: string; error: string }>;
  /** Files another loader recorded first (should not happen under the run lock). */
  alreadyLoaded: string[];
  /** File columns that raw.events has no column for. */
  unusedColumns: string[];
}

export interface LoadOptions {
  pool: Pool;
  hdfs: WebHdfs;
  files: RawFile[];
  runId: string;
  log: Logger;
  signal?: AbortSignal;
  /**
   * Replace mode (backfill): inside each file's transaction, first delete
   * the rows and the ledger row an earlier load of the same file left, so
   * the file is swapped atomically and never doubled.
   */
  replace?: boolean;
  /** Runs inside a file's transaction after its rows are copied (tests inject faults here). */
  afterCopy?: (client: PoolClient, file: RawFile) => Promise<void>;
  /** Called after each committed file (progress). */
  onProgress?: (done: number, total: number, rows: number) => void;
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    bytes as Uint8Array<ArrayBuffer>,
  );
  return Array.from(
    new Uint8Array(digest),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

/** A raised Postgres error's SQLSTATE and constraint, if any. */
function pgError(
  err: unknown,
): { code?: string; constraint?: string; detail?: string } {
  const e = err as { code?: string; constraint?: string; detail?: string };
  return { code: e?.code, constraint: e?.constraint, detail: e?.detail };
}

/**
 * Loads `files` (each in its own transaction with its ledger row). Files
 * already in the ledger are skipped by the ledger's primary key.
 */
export async function loadFiles(opts: LoadOptions): Promise<LoadResult> {
  const { pool, hdfs, files, runId, log, signal } = opts;
  const result: LoadResult = {
    files: [],
    rows: 0,
    bytes: 0,
    rejected: [],
    alreadyLoaded: [],
    unusedColumns: [],
  };
  if (files.length === 0) return result;
  const target = await targetColumns(pool);
  const work = await Deno.makeTempDir({ prefix: "logpipe-load-" });
  const duck = await DuckDBInstance.create(":memory:", { threads: "2" });
  const conn = await duck.connect();
  await conn.run("SET TimeZone = 'UTC'");
  const unused = new Set<string>();
  let seq = 0;

  // Downloads, checksums and converts one file; DuckDB does its work in its
  // own threads, so this overlaps the previous file's COPY.
  const prepare = async (file: RawFile): Promise<PreparedFile> => {
    const n = seq++;
    const bytes = await hdfs.read(file.path);
    const checksum = `sha256:${await sha256Hex(bytes)}`;
    const parquetPath = `${work}/${n}.parquet`;
    const csvPath = `${work}/${n}.csv`;
    await Deno.writeFile(parquetPath, bytes);
    const described = await conn.runAndReadAll(
      `describe select * from read_parquet(${quoteLiteral(parquetPath)})`,
    );
    const fileColumns = new Map<string, string>(
      described.getRowObjects().map((
        r,
      ) => [String(r.column_name), String(r.column_type)]),
    );
    const sel = selectList(target, fileColumns, file.path);
    sel.unused.forEach((c) => unused.add(c));
    const copied = await conn.runAndReadAll(
      `copy (select ${
        sel.exprs.map((e, i) => `${e} as ${quoteIdent(sel.columns[i])}`).join(
          ", ",
        )
      }
        from read_parquet(${quoteLiteral(parquetPath)}))
       to ${quoteLiteral(csvPath)} (format csv, header false)`,
    );
    const rows = Number(copied.getRows()[0]?.[0] ?? copied.rowsChanged);
    await Deno.remove(parquetPath).catch(() => {});
    return {
      file,
      csvPath,
      rows,
      bytes: bytes.length,
      checksum,
      columns: sel.columns,
    };
  };

  const copyOne = async (p: PreparedFile): Promise<"loaded" | "already"> => {
    const client = await pool.connect();
    let destroy = false;
    const onAbort = () => {
      destroy = true;
      // Ends the connection: the server rolls the open transaction back.
      (client as unknown as { connection?: { stream?: { destroy(): void } } })
        .connection?.stream?.destroy();
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      await client.query("begin");
      if (opts.replace) {
        await client.query("delete from raw.events where source_file = $1", [
          p.file.path,
        ]);
        await client.query("delete from raw.load_ledger where path = $1", [
          p.file.path,
        ]);
      }
      const copy = client.query(
        copyFrom(
          `copy raw.events (${
            p.columns.map(quoteIdent).join(", ")
          }) from stdin with (format csv)`,
        ),
      );
      await pipeline(createReadStream(p.csvPath), copy);
      const copiedRows = Number(
        (copy as unknown as { rowCount: number }).rowCount,
      );
      if (copiedRows !== p.rows) {
        throw new Error(
          `${p.file.path}: Postgres copied ${copiedRows} rows but the file has ${p.rows}`,
        );
      }
      await opts.afterCopy?.(client, p.file);
      const ledger = await client.query(
        `insert into raw.load_ledger (path, kafka_topic, kafka_partition, first_offset,
           last_offset, row_count, byte_size, checksum, run_id)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         on conflict (path) do nothing`,
        [
          p.file.path,
          p.file.coords.topic,
          p.file.coords.partition,
          p.file.coords.firstOffset,
          p.file.coords.lastOffset,
          p.rows,
          p.bytes,
          p.checksum,
          runId,
        ],
      );
      if (ledger.rowCount === 0) {
        // Recorded by someone else since we listed: our copy must not stay.
        await client.query("rollback");
        return "already";
      }
      await client.query("commit");
      return "loaded";
    } catch (err) {
      await client.query("rollback").catch(() => {});
      destroy = true;
      throw err;
    } finally {
      signal?.removeEventListener("abort", onAbort);
      client.release(destroy ? true : undefined);
      await Deno.remove(p.csvPath).catch(() => {});
    }
  };

  try {
    let next: Promise<PreparedFile> | undefined = prepare(files[0]);
    for (let i = 0; i < files.length; i++) {
      if (signal?.aborted) throw signal.reason;
      const current = next!;
      next = i + 1 < files.length ? prepare(files[i + 1]) : undefined;
      next?.catch(() => {}); // handled when awaited
      let prepared: PreparedFile;
      try {
        prepared = await current;
      } catch (err) {
        if (err instanceof NonRetryableError) {
          result.rejected.push({ path: files[i].path, error: errorText(err) });
          continue;
        }
        throw err;
      }
      try {
        const state = await copyOne(prepared);
        if (state === "already") {
          result.alreadyLoaded.push(prepared.file.path);
          continue;
        }
      } catch (err) {
        const e = pgError(err);
        if (e.code === "23505" && e.constraint === "events_pkey") {
          const dup = /\(event_id\)=\((.*)\)/.exec(e.detail ?? "")?.[1];
          const holder = dup === undefined ? undefined : (await pool.query(
            "select source_file from raw.events where event_id = $1",
            [dup],
          ).catch(() => ({ rows: [] }))).rows[0]?.source_file;
          result.rejected.push({
            path: prepared.file.path,
            error: `duplicate event_id ${dup ?? "?"}${
              holder ? ` (already loaded from ${holder})` : ""
            }`,
          });
          log.error("file rejected: duplicate event_id", {
            path: prepared.file.path,
            event_id: dup,
            loaded_from: holder,
          });
          continue;
        }
        throw err;
      }
      result.files.push({
        path: prepared.file.path,
        rows: prepared.rows,
        bytes: prepared.bytes,
      });
      result.rows += prepared.rows;
      result.bytes += prepared.bytes;
      opts.onProgress?.(result.files.length, files.length, result.rows);
    }
    await next?.catch(() => {});
  } finally {
    conn.closeSync();
    duck.closeSync();
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
  result.unusedColumns = [...unused];
  if (unused.size) {
    log.warn(
      "raw files carry columns raw.events lacks (kept in details_json only)",
      {
        columns: result.unusedColumns,
      },
    );
  }
  return result;
}

/** Paths of the ledger below `rawDir`. */
export async function ledgerPaths(
  pool: Pool,
  rawDir: string,
): Promise<Set<string>> {
  const res = await pool.query(
    "select path from raw.load_ledger where starts_with(path, $1)",
    [rawDir.replace(/\/+$/, "") + "/"],
  );
  return new Set(res.rows.map((r: { path: string }) => r.path));
}

/** Throws when a load rejected files (after the others were loaded). */
export function assertNoRejects(result: LoadResult): void {
  if (result.rejected.length) {
    throw new NonRetryableError(
      `${result.rejected.length} file(s) refused: ${
        result.rejected.map((r) => `${r.path}: ${r.error}`).join("; ")
      }`,
    );
  }
}
