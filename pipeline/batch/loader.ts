/**
 * The load step: raw-zone Parquet files → Postgres `raw.events`, each Kafka
 * record once, and no record can stop the load.
 *
 * Per file: download over WebHDFS, convert with DuckDB to Postgres-ready CSV
 * (DuckDB's native writer; typed, quoted, NULL vs "" kept apart) and, in ONE
 * transaction, account for every row of the file and insert the file's
 * ledger row (ledger.ts). A crash at any moment leaves either all of the
 * file's outcome or none of it; the next run loads what the ledger lacks.
 * The next file is downloaded and converted while the current one is copied.
 *
 * Fast path (almost every file): COPY straight into raw.events inside a
 * savepoint. The primary key on event_id and the unique index on the Kafka
 * coordinates are the checks: if the COPY is refused for data (SQLSTATE
 * class 22 or 23: a duplicate, text Postgres cannot store, a missing
 * required value…), the savepoint is rolled back and the file takes the
 * careful path:
 *
 *   1. COPY into a temporary stage table shaped like raw.events, bisecting
 *      the file's rows on refusal until every refused row is isolated: those
 *      go to the quarantine (reason data_error, with the SQLSTATE);
 *   2. a row whose Kafka coordinates are already accounted for (in
 *      raw.events, raw.duplicates or the quarantine) is the same record seen
 *      again (a compacted file): skipped and counted (already_loaded); the
 *      same coordinates holding a different event_id → quarantine
 *      (offset_conflict): never both;
 *   3. rows sharing an event_id with each other or with raw.events keep the
 *      first by Kafka coordinates (topic, partition, offset) in raw.events
 *      (replacing a later copy loaded before); every other copy goes to
 *      raw.duplicates, `exact` (same payload) or `conflicting` (both payloads
 *      kept);
 *   4. the rest goes into raw.events.
 *
 * A file is refused whole into the quarantine when it cannot be read
 * (unreadable_file) or when its offsets overlap a file of the same partition
 * and hour that is still in the zone (overlapping_offsets: two writers
 * committed the same records; the first one loaded wins). A file whose
 * overlapping ledger rows belong to files no longer in the zone is the
 * product of a compaction: its rows were loaded already, so its ledger rows
 * are merged and nothing is copied.
 */
import { DuckDBConnection, DuckDBInstance } from "@duckdb/node-api";
import { createReadStream } from "node:fs";
import { pipeline } from "node:stream/promises";
import { from as copyFrom } from "pg-copy-streams";
import type { Pool, PoolClient } from "../clients/postgres.ts";
import type { WebHdfs } from "../clients/webhdfs.ts";
import type { Logger } from "../log.ts";
import { fileChecksum } from "../zones/compaction.ts";
import { partitionStart, type RawFile } from "../zones/raw_listing.ts";
import {
  insertLedgerRow,
  type LedgerRow,
  mergeLedgerRows,
  overlappingRows,
} from "./ledger.ts";
import {
  addToSummary,
  emptySummary,
  quarantineFile,
  type QuarantineReason,
  quarantineRows,
  type QuarantineSummary,
  type RowQuarantine,
  writeQuarantineCopies,
} from "./quarantine.ts";
import { NonRetryableError } from "./retry.ts";
import { rowCheckSql } from "./validate.ts";
import { errorText } from "./runner.ts";

/** A column of raw.events as Postgres declares it. */
export interface TargetColumn {
  name: string;
  dataType: string;
  nullable: boolean;
}

/** Columns the loader fills itself rather than from the file. */
const LOADER_COLUMNS = new Set(["source_file", "loaded_at"]);

/** Keys left out when two copies of an event are compared (where and when it was sent or loaded). */
export const NON_PAYLOAD_KEYS = [
  "kafka_topic",
  "kafka_partition",
  "kafka_offset",
  "kafka_timestamp",
  "source_file",
  "loaded_at",
  "_rn",
  "_fate",
  "_detail",
];

/** Most refused rows isolated one by one in a file; beyond, the file is set aside whole. */
export const MAX_BAD_ROWS_PER_FILE = 200;

/** Where a test may crash the loader on purpose (batch --failpoint). */
export type LoadPhase =
  | "quarantine-rows" // a file's quarantine rows written, its transaction not committed
  | "quarantine-committed"; // committed, HDFS copy not written yet

/** Every loader phase a failpoint may name. */
export const LOAD_PHASES: readonly LoadPhase[] = [
  "quarantine-rows",
  "quarantine-committed",
];

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

/** A file made ready to COPY (or found unreadable). */
interface PreparedFile {
  file: RawFile;
  seq: number;
  parquetPath: string;
  csvPath: string;
  rows: number;
  bytes: number;
  checksum: string;
  columns: string[];
  exprs: string[];
  /** Set when the file cannot be read: it is quarantined whole. */
  unreadable?: string;
}

/** Outcome of one loaded file. */
export interface FileLoad {
  path: string;
  rows: number;
  bytes: number;
}

/** Outcome of a load. */
export interface LoadResult {
  /** Files whose rows were accounted for (copied, or adopted after a compaction). */
  files: FileLoad[];
  /** Rows inserted into raw.events. */
  rows: number;
  bytes: number;
  /** Copies of an event_id not loaded (another copy is kept). */
  duplicates: { exact: number; conflicting: number };
  /** Rows whose Kafka coordinates were accounted for by an earlier load. */
  alreadyLoadedRows: number;
  /** Compacted files whose rows were all loaded before (ledger merged, nothing copied). */
  adopted: number;
  /** Files that took the careful (row by row) path. */
  carefulFiles: number;
  quarantine: QuarantineSummary;
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
  /** HDFS root (quarantine copies go below it). */
  root: string;
  /**
   * Paths present in the listed hour folders: an overlapping ledger row
   * whose file is still present is a second writer, one that is gone was
   * compacted. Default: `files`.
   */
  present?: Set<string>;
  signal?: AbortSignal;
  /**
   * Replace mode (backfill): files are loaded one hour folder per
   * transaction, after deleting everything the ledger and the tables hold
   * for that hour, so the hour is swapped atomically and never doubled.
   */
  replace?: boolean;
  /** Runs inside a file's transaction after its rows are copied (tests inject faults here). */
  afterCopy?: (client: PoolClient, file: RawFile) => Promise<void>;
  /** Testing failpoints (see LoadPhase). */
  onPhase?: (phase: LoadPhase) => Promise<void>;
  /** Called after each committed file (progress). */
  onProgress?: (done: number, total: number, rows: number) => void;
}

/** A raised Postgres error's SQLSTATE, message and constraint, if any. */
function pgError(
  err: unknown,
): { code?: string; message: string; constraint?: string } {
  const e = err as { code?: string; constraint?: string };
  return { code: e?.code, constraint: e?.constraint, message: errorText(err) };
}

/** A refusal caused by the data itself (SQLSTATE class 22 data exception, 23 integrity). */
export function isDataError(err: unknown): boolean {
  const code = pgError(err).code;
  return typeof code === "string" && /^2[23]/.test(code);
}

/** What happened to one file inside its transaction. */
interface FileOutcome {
  state: "loaded" | "adopted" | "quarantined" | "already";
  rows: number;
  careful: boolean;
  exact: number;
  conflicting: number;
  alreadyLoadedRows: number;
  quarantineIds: number[];
}

/**
 * Loads `files`: one transaction per file (per hour folder in replace
 * mode). Never throws for data: what cannot be loaded is quarantined.
 * Throws for infrastructure (HDFS, Postgres unreachable…), so the task
 * retries; committed files stay committed.
 */
export async function loadFiles(opts: LoadOptions): Promise<LoadResult> {
  const { pool, hdfs, files, log } = opts;
  const result = emptyLoadResult();
  // Copies a crash left unwritten (see quarantine.ts).
  await writeQuarantineCopies(pool, hdfs, opts.root, log);
  if (files.length === 0) return result;
  const target = await targetColumns(pool);
  const work = await Deno.makeTempDir({ prefix: "logpipe-load-" });
  // One DuckDB thread: the conversion of the next file then leaves a core
  // to the Postgres backend copying the current one. With two threads the
  // two fought over both cores and the load took 2–4 % longer (1M events).
  const duck = await DuckDBInstance.create(":memory:", { threads: "1" });
  const conn = await duck.connect();
  await conn.run("SET TimeZone = 'UTC'");
  const unused = new Set<string>();
  const ctx: FileContext = {
    conn,
    work,
    runId: opts.runId,
    present: opts.present ?? new Set(files.map((f) => f.path)),
    log,
    afterCopy: opts.afterCopy,
  };
  try {
    await loadUnits(opts, ctx, { hdfs, conn, work, target, unused }, result);
  } finally {
    conn.closeSync();
    duck.closeSync();
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
  result.unusedColumns = [...unused];
  if (unused.size) {
    log.warn(
      "raw files carry columns raw.events lacks (kept in details_json only)",
      { columns: result.unusedColumns },
    );
  }
  return result;
}

/** A LoadResult with nothing loaded yet. */
function emptyLoadResult(): LoadResult {
  return {
    files: [],
    rows: 0,
    bytes: 0,
    duplicates: { exact: 0, conflicting: 0 },
    alreadyLoadedRows: 0,
    adopted: 0,
    carefulFiles: 0,
    quarantine: emptySummary(),
    alreadyLoaded: [],
    unusedColumns: [],
  };
}

/** Transaction units: one file each, or (replace mode) one hour folder each. */
function transactionUnits(files: RawFile[], replace?: boolean): RawFile[][] {
  if (!replace) return files.map((f) => [f]);
  const byHour = new Map<string, RawFile[]>();
  for (const f of files) {
    const k = `${f.eventDate}|${f.eventHour}`;
    const g = byHour.get(k);
    if (g) g.push(f);
    else byHour.set(k, [f]);
  }
  return [...byHour.values()];
}

/**
 * Loads the files unit by unit (one transaction each), preparing the next
 * file while the current one is copied.
 */
async function loadUnits(
  opts: LoadOptions,
  ctx: FileContext,
  prep: PrepareEnv,
  result: LoadResult,
): Promise<void> {
  const { signal } = opts;
  const units = transactionUnits(opts.files, opts.replace);
  const flat = units.flat();
  let seq = 0;
  const prepare = (file: RawFile) => prepareFile(prep, file, seq++);
  let next: Promise<PreparedFile> | undefined = prepare(flat[0]);
  let i = 0;
  for (const [u, unit] of units.entries()) {
    const prepared: PreparedFile[] = [];
    for (let k = 0; k < unit.length; k++, i++) {
      if (signal?.aborted) throw signal.reason;
      const current = next!;
      next = i + 1 < flat.length ? prepare(flat[i + 1]) : undefined;
      next?.catch(() => {}); // handled when awaited
      prepared.push(await current);
    }
    try {
      const outcomes = await inLoadTransaction(
        opts.pool,
        signal,
        (client) =>
          loadUnit(client, unit, prepared, ctx, opts, u === units.length - 1),
      );
      prepared.forEach((p, k) => recordOutcome(result, p, outcomes[k]));
      await summarizeQuarantined(opts, outcomes, result);
    } finally {
      for (const p of prepared) await removePrepared(p);
    }
    opts.onProgress?.(i, flat.length, result.rows);
  }
  await next?.catch(() => {});
}

/**
 * One unit's transaction: (replace mode) clears its hour, loads each file,
 * commits, or rolls back when every file was already loaded.
 *
 * Units commit without waiting for the WAL flush (inLoadTransaction), except
 * the load's last unit and any unit that quarantined rows: the quarantine's
 * HDFS copies are written after the commit and must not outlive it, and the
 * last unit's flush makes every earlier commit of the load durable with it
 * (the WAL is flushed in order; when the last unit has nothing to commit,
 * the WAL writer flushes them within 3 × wal_writer_delay).
 */
async function loadUnit(
  client: PoolClient,
  unit: RawFile[],
  prepared: PreparedFile[],
  ctx: FileContext,
  opts: LoadOptions,
  last: boolean,
): Promise<FileOutcome[]> {
  if (opts.replace) {
    await clearHourRows(client, partitionStart(unit[0]));
  }
  const outs: FileOutcome[] = [];
  for (const p of prepared) outs.push(await loadOne(client, p, ctx));
  const quarantined = outs.some((o) => o.quarantineIds.length);
  if (quarantined) await opts.onPhase?.("quarantine-rows");
  if (last || quarantined) {
    await client.query("set local synchronous_commit = on");
  }
  if (outs.every((o) => o.state === "already")) {
    await client.query("rollback");
  } else await client.query("commit");
  return outs;
}

/** What prepareFile needs: where to read, convert and write. */
interface PrepareEnv {
  hdfs: WebHdfs;
  conn: DuckDBConnection;
  /** Temporary directory of this load. */
  work: string;
  target: TargetColumn[];
  /** Collects file columns raw.events lacks. */
  unused: Set<string>;
}

/**
 * Downloads, checksums and converts one file (number `n` of this load);
 * DuckDB does its work in its own threads, so this overlaps the previous
 * file's COPY.
 */
async function prepareFile(
  env: PrepareEnv,
  file: RawFile,
  n: number,
): Promise<PreparedFile> {
  const { conn, work } = env;
  const bytes = await env.hdfs.read(file.path);
  const checksum = await fileChecksum(bytes);
  const parquetPath = `${work}/${n}.parquet`;
  const csvPath = `${work}/${n}.csv`;
  await Deno.writeFile(parquetPath, bytes);
  const base = {
    file,
    seq: n,
    parquetPath,
    csvPath,
    bytes: bytes.length,
    checksum,
  };
  try {
    const described = await conn.runAndReadAll(
      `describe select * from read_parquet(${quoteLiteral(parquetPath)})`,
    );
    const fileColumns = new Map<string, string>(
      described.getRowObjects().map((
        r,
      ) => [String(r.column_name), String(r.column_type)]),
    );
    const sel = selectList(env.target, fileColumns, file.path);
    sel.unused.forEach((c) => env.unused.add(c));
    const copied = await conn.runAndReadAll(
      `copy (select ${
        sel.exprs.map((e, i) => `${e} as ${quoteIdent(sel.columns[i])}`)
          .join(", ")
      }
        from read_parquet(${quoteLiteral(parquetPath)}))
       to ${quoteLiteral(csvPath)} (format csv, header false)`,
    );
    const rows = Number(copied.getRows()[0]?.[0] ?? copied.rowsChanged);
    return { ...base, rows, columns: sel.columns, exprs: sel.exprs };
  } catch (err) {
    // A complete download DuckDB cannot read as our Parquet: the file's
    // content is the problem, not the network.
    return {
      ...base,
      rows: 0,
      columns: [],
      exprs: [],
      unreadable: errorText(err),
    };
  }
}

/** Removes a prepared file's local Parquet and CSV copies. */
async function removePrepared(p: PreparedFile): Promise<void> {
  await Deno.remove(p.csvPath).catch(() => {});
  await Deno.remove(p.parquetPath).catch(() => {});
}

/**
 * One transaction: runs `fn` on a client after `begin` (`fn` commits); the
 * abort signal ends the connection (the server rolls back).
 *
 * The transaction commits asynchronously (synchronous_commit off) unless
 * `fn` turns it back on. That is safe here, and it is what brings the load
 * to the pace of one `psql \copy` (per-file commits each waited for a WAL
 * flush, ~10 ms each: 78 % of psql's rate before, 95 % after, on 1M events
 * in 300 files): a crash of Postgres can lose only the last few
 * hundred milliseconds of commits, each one whole (its rows with its ledger
 * row, never one without the other), and the files are still in the raw
 * zone, so the next run loads them again. Nothing outside Postgres acts on
 * such a commit before a synchronous one follows (loadUnit).
 */
async function inLoadTransaction<T>(
  pool: Pool,
  signal: AbortSignal | undefined,
  fn: (client: PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  let destroy = false;
  const onAbort = () => {
    destroy = true;
    (client as unknown as { connection?: { stream?: { destroy(): void } } })
      .connection?.stream?.destroy();
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    await client.query("begin");
    await client.query("set local synchronous_commit = off");
    const out = await fn(client);
    return out;
  } catch (err) {
    await client.query("rollback").catch(() => {});
    destroy = true;
    throw err;
  } finally {
    signal?.removeEventListener("abort", onAbort);
    client.release(destroy ? true : undefined);
  }
}

/** Adds a committed file's outcome to the load's totals. */
function recordOutcome(
  result: LoadResult,
  p: PreparedFile,
  o: FileOutcome,
): void {
  if (o.state === "already") {
    result.alreadyLoaded.push(p.file.path);
    return;
  }
  if (o.careful) result.carefulFiles++;
  result.duplicates.exact += o.exact;
  result.duplicates.conflicting += o.conflicting;
  result.alreadyLoadedRows += o.alreadyLoadedRows;
  if (o.state === "adopted") result.adopted++;
  if (o.state !== "quarantined") {
    result.files.push({ path: p.file.path, rows: o.rows, bytes: p.bytes });
    result.rows += o.rows;
    result.bytes += p.bytes;
  }
}

/**
 * After a commit: writes the HDFS copies of what the unit quarantined and
 * adds each item to the load's quarantine summary.
 */
async function summarizeQuarantined(
  opts: LoadOptions,
  outcomes: FileOutcome[],
  result: LoadResult,
): Promise<void> {
  const ids = outcomes.flatMap((o) => o.quarantineIds);
  if (ids.length === 0) return;
  await opts.onPhase?.("quarantine-committed");
  await writeQuarantineCopies(opts.pool, opts.hdfs, opts.root, opts.log, ids);
  const res = await opts.pool.query(
    `select scope, reason, source_path, kafka_partition, first_offset, detail
       from raw.quarantine where id = any($1) order by id`,
    [ids],
  );
  for (const q of res.rows) {
    addToSummary(
      result.quarantine,
      q.scope,
      q.reason,
      `${
        q.source_path.split("/").pop()
      } @ ${q.kafka_partition}/${q.first_offset} (${
        String(q.detail).slice(0, 160)
      })`,
    );
  }
}

/** What loadOne needs besides the file. */
interface FileContext {
  conn: DuckDBConnection;
  work: string;
  runId: string;
  present: Set<string>;
  log: Logger;
  afterCopy?: (client: PoolClient, file: RawFile) => Promise<void>;
}

function emptyOutcome(state: FileOutcome["state"]): FileOutcome {
  return {
    state,
    rows: 0,
    careful: false,
    exact: 0,
    conflicting: 0,
    alreadyLoadedRows: 0,
    quarantineIds: [],
  };
}

/**
 * Backfill: removes what the ledger, raw.events, raw.duplicates and the
 * quarantine hold for the hour folder starting at `hour` (inside the
 * caller's transaction), so the hour's files load as new.
 */
export async function clearHourRows(
  client: PoolClient,
  hour: Date,
): Promise<void> {
  const inRanges = (alias: string, offset: string, hourCond: string) =>
    `exists (select 1 from raw.load_ledger l
              where l.event_hour = $1 and l.kafka_topic = ${alias}.kafka_topic
                and l.kafka_partition = ${alias}.kafka_partition
                and ${alias}.${offset} between l.first_offset and l.last_offset)
       and ${hourCond}`;
  await client.query(
    `delete from raw.events e where ${
      inRanges(
        "e",
        "kafka_offset",
        "e.event_ts >= $1 and e.event_ts < $1 + interval '1 hour'",
      )
    }`,
    [hour],
  );
  await client.query(
    `delete from raw.duplicates d where ${
      inRanges("d", "kafka_offset", "d.event_hour = $1")
    }`,
    [hour],
  );
  await client.query(
    `delete from raw.quarantine q where ${
      inRanges("q", "first_offset", "q.event_hour = $1")
    }`,
    [hour],
  );
  await client.query("delete from raw.load_ledger where event_hour = $1", [
    hour,
  ]);
}

/** Refuses a whole file into the quarantine (ledger row status quarantined). */
async function refuseFile(
  client: PoolClient,
  p: PreparedFile,
  ctx: FileContext,
  reason: QuarantineReason,
  detail: string,
  sqlstate?: string,
): Promise<FileOutcome> {
  const id = await quarantineFile(client, {
    reason,
    detail,
    sqlstate,
    file: p.file,
    runId: ctx.runId,
  });
  const inserted = await insertLedgerRow(client, {
    file: p.file,
    rowCount: p.rows,
    byteSize: p.bytes,
    checksum: p.checksum,
    runId: ctx.runId,
    status: "quarantined",
  });
  if (!inserted) return emptyOutcome("already");
  ctx.log.warn("file quarantined", { path: p.file.path, reason, detail });
  return { ...emptyOutcome("quarantined"), quarantineIds: [id] };
}

/** Loads one prepared file inside the caller's open transaction. */
async function loadOne(
  client: PoolClient,
  p: PreparedFile,
  ctx: FileContext,
): Promise<FileOutcome> {
  if (p.unreadable !== undefined) {
    return await refuseFile(client, p, ctx, "unreadable_file", p.unreadable);
  }
  const overlaps = await overlappingRows(client, p.file);
  let replaced: LedgerRow[] = [];
  if (overlaps.length) {
    const live = overlaps.filter((r) => ctx.present.has(r.path));
    const inside = overlaps.every((r) =>
      r.firstOffset >= p.file.coords.firstOffset &&
      r.lastOffset <= p.file.coords.lastOffset
    );
    if (live.length || !inside) {
      return await refuseFile(
        client,
        p,
        ctx,
        "overlapping_offsets",
        `offsets ${p.file.coords.firstOffset}–${p.file.coords.lastOffset} overlap ${
          (live.length ? live : overlaps).map((r) =>
            `${r.path.split("/").pop()} (loaded)`
          ).join(", ")
        }`,
      );
    }
    // A compaction merged these files: same rows, new name.
    const before = overlaps.reduce((a, r) => a + r.rowCount, 0);
    if (before === p.rows) {
      const merged = await mergeLedgerRows(client, {
        file: p.file,
        byteSize: p.bytes,
        checksum: p.checksum,
        runId: ctx.runId,
      }, overlaps.map((r) => r.path));
      return merged
        ? { ...emptyOutcome("adopted"), alreadyLoadedRows: p.rows }
        : emptyOutcome("already");
    }
    // It also holds rows never loaded (late files merged before a load).
    replaced = overlaps;
  }

  if (replaced.length === 0) {
    await client.query("savepoint fast_copy");
    try {
      await copyCsv(client, "raw.events", p.columns, p.csvPath, p.rows);
      await ctx.afterCopy?.(client, p.file);
      await client.query("release savepoint fast_copy");
      const inserted = await insertLedgerRow(client, {
        file: p.file,
        rowCount: p.rows,
        byteSize: p.bytes,
        checksum: p.checksum,
        runId: ctx.runId,
      });
      return inserted
        ? { ...emptyOutcome("loaded"), rows: p.rows }
        : emptyOutcome("already");
    } catch (err) {
      if (!isDataError(err)) throw err;
      await client.query("rollback to savepoint fast_copy");
      await client.query("release savepoint fast_copy");
      ctx.log.info("file takes the careful path", {
        path: p.file.path,
        sqlstate: pgError(err).code,
        error: pgError(err).message.slice(0, 300),
      });
    }
  }
  return await loadCarefully(client, p, ctx, replaced);
}

/** COPY of a CSV file into `table` (columns in order); checks the row count. */
async function copyCsv(
  client: PoolClient,
  table: string,
  columns: string[],
  csvPath: string,
  expectRows: number,
): Promise<void> {
  const copy = client.query(
    copyFrom(
      `copy ${table} (${
        columns.map(quoteIdent).join(", ")
      }) from stdin with (format csv)`,
    ),
  );
  await pipeline(createReadStream(csvPath), copy);
  const copiedRows = Number((copy as unknown as { rowCount: number }).rowCount);
  if (copiedRows !== expectRows) {
    throw new Error(
      `${table}: Postgres copied ${copiedRows} rows but the file has ${expectRows}`,
    );
  }
}

/** Rows of a DuckDB table to stage: `_rn` (1..rows) plus raw.events' columns. */
export interface StageSource {
  conn: DuckDBConnection;
  /** DuckDB table name. */
  table: string;
  /** raw.events columns the table holds (source_file included). */
  columns: string[];
  rows: number;
  /** Local scratch folder for the CSV parts. */
  work: string;
  runId: string;
  /** Also apply validate's row checks (blank ids, required fields, future times). */
  rowChecksUntil?: Date;
}

/** What staging and resolving the rows did (steps 1–4). */
export interface StageOutcome {
  /** More refused rows than MAX_BAD_ROWS_PER_FILE: nothing was resolved. */
  tooMany: boolean;
  inserted: number;
  /** Copies from the source that went to raw.duplicates. */
  duplicatesFromSource: number;
  /** Kinds of every raw.duplicates row written (incl. earlier copies replaced). */
  duplicateKinds: string[];
  alreadyLoaded: number;
  /** Rows to quarantine: refused by Postgres, offset conflicts, row checks. */
  quarantine: Map<
    number,
    { reason: QuarantineReason; code?: string; detail: string }
  >;
  /** Each row's fate (when asked): loaded, duplicate, already_loaded or the quarantine reason. */
  fates?: Map<number, string>;
}

/** A row Postgres refused (step 1), isolated by bisection. */
interface RefusedRow {
  rn: number;
  code?: string;
  message: string;
}

/**
 * Step 1: copies `src`'s rows into load_stage, bisecting a refused range
 * until every refused row is isolated; stops (tooMany) past
 * MAX_BAD_ROWS_PER_FILE refused rows.
 */
async function stageRows(
  client: PoolClient,
  src: StageSource,
): Promise<{ refused: RefusedRow[]; tooMany: boolean }> {
  const { conn, table } = src;
  const refused: RefusedRow[] = [];
  let tooMany = false;
  let part = 0;
  const cols = [...src.columns, "_rn"];
  const copyRange = async (a: number, b: number): Promise<void> => {
    if (tooMany) return;
    const csv = `${src.work}/${table}.part${part++}.csv`;
    await conn.run(
      `copy (select ${
        cols.map(quoteIdent).join(", ")
      } from ${table} where _rn between ${a} and ${b})
         to ${quoteLiteral(csv)} (format csv, header false)`,
    );
    await client.query("savepoint stage_copy");
    try {
      await copyCsv(client, "load_stage", cols, csv, b - a + 1);
      await client.query("release savepoint stage_copy");
    } catch (err) {
      if (!isDataError(err)) throw err;
      await client.query("rollback to savepoint stage_copy");
      await client.query("release savepoint stage_copy");
      if (a === b) {
        const e = pgError(err);
        refused.push({ rn: a, code: e.code, message: e.message });
        if (refused.length > MAX_BAD_ROWS_PER_FILE) tooMany = true;
        return;
      }
      const mid = Math.floor((a + b) / 2);
      await copyRange(a, mid);
      await copyRange(mid + 1, b);
    } finally {
      await Deno.remove(csv).catch(() => {});
    }
  };
  if (src.rows > 0) await copyRange(1, src.rows);
  return { refused, tooMany };
}

/** Quarantines each refused row as a data_error. */
function quarantineRefused(out: StageOutcome, refused: RefusedRow[]): void {
  for (const r of refused) {
    out.quarantine.set(r.rn, {
      reason: "data_error",
      code: r.code,
      detail: r.message,
    });
  }
}

/**
 * Step 2: rows whose Kafka coordinates were seen before: already loaded
 * when they hold the same event, an offset conflict otherwise.
 */
async function markSeenCoordinates(client: PoolClient): Promise<void> {
  const coordsEq = (a: string, b: string, off = "kafka_offset") =>
    `${a}.kafka_topic = ${b}.kafka_topic and ${a}.kafka_partition = ${b}.kafka_partition and ${a}.${off} = ${b}.kafka_offset`;
  await client.query(
    `update load_stage s set _fate = 'offset_conflict',
            _detail = 'the source holds this offset more than once'
      where _fate is null and exists (select 1 from load_stage t where ${
      coordsEq("t", "s")
    } and t._rn < s._rn)`,
  );
  for (
    const [source, cond, same, label] of [
      [
        "raw.events x",
        coordsEq("s", "x"),
        "x.event_id = s.event_id",
        "raw.events",
      ],
      [
        "raw.duplicates x",
        coordsEq("s", "x"),
        "x.event_id = s.event_id",
        "raw.duplicates",
      ],
      [
        "raw.quarantine x",
        `x.scope = 'row' and x.status = 'quarantined' and ${
          coordsEq("x", "s", "first_offset")
        }`,
        "true",
        "the quarantine",
      ],
    ]
  ) {
    await client.query(
      `update load_stage s
          set _fate = case when ${same} then 'already_loaded' else 'offset_conflict' end,
              _detail = case when ${same} then null
                else 'this Kafka offset already holds event ' || x.event_id || ' in ${label}' end
         from ${source}
        where s._fate is null and ${cond}`,
    );
  }
}

/**
 * Step 3: one event_id, one row: the first by Kafka coordinates stays (in
 * the stage or in raw.events); every other copy goes to raw.duplicates.
 * Returns the kinds written: copies from the stage, then earlier copies
 * replaced.
 */
async function keepFirstCopies(
  client: PoolClient,
  runId: string,
): Promise<
  { fromSource: string[]; fromSourceCount: number; replaced: string[] }
> {
  const strip = `$1::text[]`;
  await client.query(
    `create temp table load_winner on commit drop as
     select distinct on (event_id) event_id, kafka_topic, kafka_partition,
            kafka_offset, in_stage, payload, full_row
       from (select event_id, kafka_topic, kafka_partition, kafka_offset,
                    true as in_stage, to_jsonb(s) - ${strip} as payload,
                    to_jsonb(s) - array['_rn', '_fate', '_detail'] as full_row
               from load_stage s where _fate is null
             union all
             select e.event_id, e.kafka_topic, e.kafka_partition, e.kafka_offset,
                    false, to_jsonb(e) - ${strip}, to_jsonb(e)
               from raw.events e
              where e.event_id in (select event_id from load_stage where _fate is null)
            ) c
      order by event_id, kafka_topic, kafka_partition, kafka_offset`,
    [NON_PAYLOAD_KEYS],
  );
  const W_KEYS =
    "array['w_topic', 'w_partition', 'w_offset', 'w_payload', 'w_row']";
  /**
   * Moves the rows a data-modifying statement takes out (`change`, whose
   * rows are aliased `alias`) into raw.duplicates, beside the winner they
   * lost to; `payload` is the loser's own row as stored.
   */
  const recordLosers = (change: string, alias: string, payload: string) =>
    client.query(
      `with losers as (
         ${change}
         returning ${alias}.*, w.kafka_topic as w_topic,
                   w.kafka_partition as w_partition, w.kafka_offset as w_offset,
                   w.payload as w_payload, w.full_row as w_row)
       insert into raw.duplicates (kafka_topic, kafka_partition, kafka_offset,
         event_id, kind, kept_topic, kept_partition, kept_offset, event_hour,
         source_file, payload, kept_payload, run_id)
       select l.kafka_topic, l.kafka_partition, l.kafka_offset, l.event_id,
              case when (to_jsonb(l) - ${strip} - ${W_KEYS}) = l.w_payload
                   then 'exact' else 'conflicting' end,
              l.w_topic, l.w_partition, l.w_offset,
              date_trunc('hour', l.event_ts, 'UTC'), l.source_file,
              ${payload}, l.w_row, $2
         from losers l
       returning kind`,
      [NON_PAYLOAD_KEYS, runId],
    );
  // Copies in the source that lose.
  const dupStage = await recordLosers(
    `update load_stage s set _fate = 'duplicate'
       from load_winner w
      where s._fate is null and s.event_id = w.event_id
        and (s.kafka_topic, s.kafka_partition, s.kafka_offset)
            <> (w.kafka_topic, w.kafka_partition, w.kafka_offset)`,
    "s",
    `to_jsonb(l) - array['_rn', '_fate', '_detail'] - ${W_KEYS}`,
  );
  // Copies loaded before that lose to a row of the source (it comes first).
  const dupOld = await recordLosers(
    `delete from raw.events e using load_winner w
      where w.in_stage and e.event_id = w.event_id`,
    "e",
    `to_jsonb(l) - ${W_KEYS}`,
  );
  if (dupOld.rowCount) {
    // Older records of those events now point at the new first copy.
    await client.query(
      `update raw.duplicates d set kept_topic = w.kafka_topic,
              kept_partition = w.kafka_partition, kept_offset = w.kafka_offset,
              kept_payload = w.full_row
         from load_winner w
        where w.in_stage and d.event_id = w.event_id`,
    );
  }
  await client.query("drop table load_winner");
  return {
    fromSource: dupStage.rows.map((r) => r.kind),
    fromSourceCount: dupStage.rowCount ?? 0,
    replaced: dupOld.rows.map((r) => r.kind),
  };
}

/**
 * After step 4: the rows set aside in the stage (quarantine reasons), the
 * count already loaded and, when asked, every row's fate.
 */
async function collectFates(
  client: PoolClient,
  refused: RefusedRow[],
  out: StageOutcome,
  withFates: boolean,
): Promise<void> {
  const fated = await client.query(
    `select _rn, _fate, _detail from load_stage
      where _fate is not null and _fate not in ('duplicate', 'already_loaded')`,
  );
  quarantineRefused(out, refused);
  for (const r of fated.rows) {
    out.quarantine.set(Number(r._rn), {
      reason: r._fate as QuarantineReason,
      detail: String(r._detail),
    });
  }
  out.alreadyLoaded = Number(
    (await client.query(
      "select count(*)::int as n from load_stage where _fate = 'already_loaded'",
    )).rows[0].n,
  );
  if (withFates) {
    out.fates = new Map();
    const all = await client.query("select _rn, _fate from load_stage");
    for (const r of all.rows) {
      out.fates.set(Number(r._rn), r._fate ?? "loaded");
    }
    for (const r of refused) out.fates.set(r.rn, "data_error");
  }
}

/**
 * Steps 1–4 of the module comment for `src`'s rows, in the caller's open
 * transaction: stage them (isolating what Postgres refuses), resolve
 * coordinates and event_ids, insert the rest into raw.events.
 */
export async function stageAndResolve(
  client: PoolClient,
  src: StageSource,
  opts: { fates?: boolean } = {},
): Promise<StageOutcome> {
  const out: StageOutcome = {
    tooMany: false,
    inserted: 0,
    duplicatesFromSource: 0,
    duplicateKinds: [],
    alreadyLoaded: 0,
    quarantine: new Map(),
  };
  await client.query(
    `create temp table load_stage (like raw.events including defaults,
       _rn bigint, _fate text, _detail text) on commit drop`,
  );
  try {
    // 1. copy, isolating refused rows
    const { refused, tooMany } = await stageRows(client, src);
    if (tooMany) {
      out.tooMany = true;
      quarantineRefused(out, refused);
      return out;
    }
    if (src.rowChecksUntil) {
      const check = rowCheckSql("s", "$1::timestamptz");
      await client.query(
        `update load_stage s set _fate = ${check.reason}, _detail = ${check.detail}
          where ${check.failing}`,
        [src.rowChecksUntil],
      );
    }
    // 2. coordinates seen before
    await markSeenCoordinates(client);
    // 3. one event_id, one row: the first by Kafka coordinates stays
    const dups = await keepFirstCopies(client, src.runId);
    // 4. the rest into raw.events
    const insertCols = src.columns.map(quoteIdent).join(", ");
    const inserted = await client.query(
      `insert into raw.events (${insertCols})
       select ${insertCols} from load_stage where _fate is null`,
    );
    out.inserted = Number(inserted.rowCount);
    out.duplicatesFromSource = dups.fromSourceCount;
    out.duplicateKinds = [...dups.fromSource, ...dups.replaced];
    await collectFates(client, refused, out, opts.fates ?? false);
    return out;
  } finally {
    await client.query("drop table if exists load_stage");
    await client.query("drop table if exists load_winner");
  }
}

/**
 * A carefully loaded file's rows to quarantine, read back from DuckDB as the
 * file has them; `noCoordinates` names the first row without its Kafka
 * coordinates (the whole file is refused then).
 */
async function rowQuarantineItems(
  conn: DuckDBConnection,
  table: string,
  staged: StageOutcome,
  p: PreparedFile,
  runId: string,
): Promise<{ rows: RowQuarantine[] } | { noCoordinates: string }> {
  const rows = await duckRows(conn, table, [...staged.quarantine.keys()]);
  const items: RowQuarantine[] = [];
  for (const [rn, q] of staged.quarantine) {
    const json = rows.get(rn)!;
    const row = JSON.parse(json) as Record<string, unknown>;
    const offset = Number(row.kafka_offset);
    if (
      typeof row.kafka_topic !== "string" ||
      !Number.isSafeInteger(Number(row.kafka_partition)) ||
      !Number.isSafeInteger(offset)
    ) {
      return {
        noCoordinates: `row ${rn} has no Kafka coordinates (${q.detail})`,
      };
    }
    items.push({
      reason: q.reason,
      sqlstate: q.code ?? null,
      detail: q.detail,
      sourcePath: p.file.path,
      topic: row.kafka_topic,
      partition: Number(row.kafka_partition),
      offset,
      eventHour: partitionStart(p.file),
      eventId: typeof row.event_id === "string" ? row.event_id : null,
      rowJson: json,
      runId,
    });
  }
  return { rows: items };
}

/** The careful path for a file (stageAndResolve), then its quarantine and ledger rows. */
async function loadCarefully(
  client: PoolClient,
  p: PreparedFile,
  ctx: FileContext,
  replaced: LedgerRow[],
): Promise<FileOutcome> {
  const { conn } = ctx;
  const table = `f${p.seq}`;
  await conn.run(
    `create or replace table ${table} as select row_number() over () as _rn, ${
      p.exprs.map((e, i) => `${e} as ${quoteIdent(p.columns[i])}`).join(", ")
    } from read_parquet(${quoteLiteral(p.parquetPath)})`,
  );
  try {
    const staged = await stageAndResolve(client, {
      conn,
      table,
      columns: p.columns,
      rows: p.rows,
      work: ctx.work,
      runId: ctx.runId,
    });
    if (staged.tooMany) {
      const first = [...staged.quarantine.values()][0];
      return await refuseFile(
        client,
        p,
        ctx,
        "too_many_bad_rows",
        `more than ${MAX_BAD_ROWS_PER_FILE} rows refused by Postgres, e.g. ${first.detail}`,
        first.code,
      );
    }
    await ctx.afterCopy?.(client, p.file);

    // The quarantine: refused rows and offset conflicts, as the file has them.
    let quarantineIds: number[] = [];
    if (staged.quarantine.size) {
      const items = await rowQuarantineItems(conn, table, staged, p, ctx.runId);
      if ("noCoordinates" in items) {
        // Without its Kafka coordinates a row cannot be told apart: the
        // whole file is set aside instead.
        return await refuseFile(
          client,
          p,
          ctx,
          "unreadable_file",
          items.noCoordinates,
        );
      }
      quarantineIds = await quarantineRows(client, items.rows);
    }

    const exact = staged.duplicateKinds.filter((k) => k === "exact").length;
    const outcome: FileOutcome = {
      state: "loaded",
      rows: staged.inserted,
      careful: true,
      exact,
      conflicting: staged.duplicateKinds.length - exact,
      alreadyLoadedRows: staged.alreadyLoaded,
      quarantineIds,
    };
    if (replaced.length) {
      await client.query(
        "delete from raw.load_ledger where path = any($1::text[])",
        [replaced.map((r) => r.path)],
      );
    }
    const inserted = await insertLedgerRow(client, {
      file: p.file,
      rowCount: p.rows,
      byteSize: p.bytes,
      checksum: p.checksum,
      runId: ctx.runId,
      rowsLoaded: outcome.rows,
      rowsDuplicate: staged.duplicatesFromSource,
      rowsQuarantined: staged.quarantine.size,
      rowsAlreadyLoaded: outcome.alreadyLoadedRows,
    });
    if (!inserted) return emptyOutcome("already");
    ctx.log.info("file loaded carefully", {
      path: p.file.path,
      rows: outcome.rows,
      exact_duplicates: outcome.exact,
      conflicting_duplicates: outcome.conflicting,
      already_loaded: outcome.alreadyLoadedRows,
      quarantined: staged.quarantine.size,
    });
    return outcome;
  } finally {
    await conn.run(`drop table if exists ${table}`);
  }
}

/** The rows `rns` of a DuckDB table as JSON text (U+0000 escaped by JSON). */
export async function duckRows(
  conn: DuckDBConnection,
  table: string,
  rns: number[],
): Promise<Map<number, string>> {
  const out = new Map<number, string>();
  for (let i = 0; i < rns.length; i += 1000) {
    const chunk = rns.slice(i, i + 1000);
    const res = await conn.runAndReadAll(
      `select _rn, to_json(${table})::varchar from ${table} where _rn in (${
        chunk.join(", ")
      })`,
    );
    for (const [rn, json] of res.getRows()) {
      const row = JSON.parse(String(json));
      delete row._rn;
      out.set(Number(rn), JSON.stringify(row));
    }
  }
  return out;
}
