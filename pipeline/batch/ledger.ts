/**
 * The load ledger (raw.load_ledger) by Kafka coordinates.
 *
 * A ledger row stands for the rows of one raw-zone file: (topic, partition,
 * hour folder, [first_offset, last_offset]). Files of one topic + partition +
 * hour folder never overlap in offsets, so those coordinates name the rows
 * whatever the file is called: after a compaction merges loaded files, their
 * ledger rows are merged into one row for the merged file (same rows, new
 * name) and nothing is loaded again. Every row of a loaded file is accounted
 * for by its coordinates in exactly one of raw.events, raw.duplicates
 * (a copy of an event_id kept elsewhere) or raw.quarantine (set aside with a
 * reason); validate.ts checks that.
 *
 * Every lookup here is an index lookup (path primary key, or
 * load_ledger_coords_idx), never a read of the whole ledger.
 */
import type { Pool, PoolClient } from "../clients/postgres.ts";
import type { RawFile } from "../zones/raw_listing.ts";
import { partitionStart } from "../zones/raw_listing.ts";

/** A ledger row as the loader and the compaction see it. */
export interface LedgerRow {
  path: string;
  topic: string;
  partition: number;
  eventHour: Date;
  firstOffset: number;
  lastOffset: number;
  rowCount: number;
  status: "loaded" | "quarantined";
  validatedBy: string | null;
}

type Db = Pick<Pool, "query"> | PoolClient;

function toRow(r: Record<string, unknown>): LedgerRow {
  return {
    path: String(r.path),
    topic: String(r.kafka_topic),
    partition: Number(r.kafka_partition),
    eventHour: r.event_hour as Date,
    firstOffset: Number(r.first_offset),
    lastOffset: Number(r.last_offset),
    rowCount: Number(r.row_count),
    status: r.status as LedgerRow["status"],
    validatedBy: (r.validated_by as string | null) ?? null,
  };
}

const COLUMNS =
  "path, kafka_topic, kafka_partition, event_hour, first_offset, last_offset, row_count, status, validated_by";

/** Ledger rows of these paths (looked up by primary key, in chunks). */
export async function ledgerByPath(
  db: Db,
  paths: string[],
): Promise<Map<string, LedgerRow>> {
  const out = new Map<string, LedgerRow>();
  for (let i = 0; i < paths.length; i += 20_000) {
    const res = await db.query(
      `select ${COLUMNS} from raw.load_ledger where path = any($1::text[])`,
      [paths.slice(i, i + 20_000)],
    );
    for (const r of res.rows) out.set(r.path, toRow(r));
  }
  return out;
}

/**
 * Loaded ledger rows of the same topic, partition and hour folder as `file`
 * whose offset range overlaps the file's (the file itself excluded).
 */
export async function overlappingRows(
  db: Db,
  file: RawFile,
): Promise<LedgerRow[]> {
  const res = await db.query(
    `select ${COLUMNS} from raw.load_ledger
      where kafka_topic = $1 and kafka_partition = $2 and event_hour = $3
        and status = 'loaded' and first_offset <= $5 and last_offset >= $4
        and path <> $6
      order by first_offset`,
    [
      file.coords.topic,
      file.coords.partition,
      partitionStart(file),
      file.coords.firstOffset,
      file.coords.lastOffset,
      file.path,
    ],
  );
  return res.rows.map(toRow);
}

/** What a new ledger row records about a file. */
export interface LedgerEntry {
  file: RawFile;
  rowCount: number;
  byteSize: number;
  checksum: string;
  runId: string;
  status?: "loaded" | "quarantined";
  rowsLoaded?: number;
  rowsDuplicate?: number;
  rowsQuarantined?: number;
  rowsAlreadyLoaded?: number;
  mergedFiles?: number;
  validatedBy?: string | null;
}

/** Inserts a ledger row; false when the path is already there (someone else loaded it). */
export async function insertLedgerRow(
  client: PoolClient,
  e: LedgerEntry,
): Promise<boolean> {
  const res = await client.query(
    `insert into raw.load_ledger (path, kafka_topic, kafka_partition, event_hour,
       first_offset, last_offset, row_count, byte_size, checksum, run_id, status,
       rows_loaded, rows_duplicate, rows_quarantined, rows_already_loaded,
       merged_files, validated_by)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
     on conflict (path) do nothing`,
    [
      e.file.path,
      e.file.coords.topic,
      e.file.coords.partition,
      partitionStart(e.file),
      e.file.coords.firstOffset,
      e.file.coords.lastOffset,
      e.rowCount,
      e.byteSize,
      e.checksum,
      e.runId,
      e.status ?? "loaded",
      e.rowsLoaded ?? (e.status === "quarantined" ? 0 : e.rowCount),
      e.rowsDuplicate ?? 0,
      e.rowsQuarantined ?? 0,
      e.rowsAlreadyLoaded ?? 0,
      e.mergedFiles ?? 1,
      e.validatedBy ?? null,
    ],
  );
  return res.rowCount === 1;
}

/**
 * Replaces the ledger rows of merged files by one row for the merged file
 * (a compaction; the rows were loaded already, so nothing is copied). The
 * merged row is validated when every replaced row was. Returns false, having
 * changed nothing, when a replaced row is missing or the merged path is
 * already in the ledger; the caller then rolls back.
 */
export async function mergeLedgerRows(
  client: PoolClient,
  merged: Omit<LedgerEntry, "rowCount"> & { rowCount?: number },
  replaced: string[],
): Promise<boolean> {
  const old = await client.query(
    `select sum(row_count)::bigint as row_count, sum(rows_loaded)::bigint as loaded,
            sum(rows_duplicate)::bigint as dup, sum(rows_quarantined)::bigint as quarantined,
            sum(rows_already_loaded)::bigint as already, sum(merged_files)::bigint as files,
            count(*)::int as n,
            case when bool_and(validated_by is not null) then max(validated_by) end as validated_by
       from (select * from raw.load_ledger
              where path = any($1::text[]) and status = 'loaded' for update) r`,
    [replaced],
  );
  const o = old.rows[0];
  if (Number(o.n) !== new Set(replaced).size) return false;
  const inserted = await insertLedgerRow(client, {
    ...merged,
    rowCount: merged.rowCount ?? Number(o.row_count),
    rowsLoaded: Number(o.loaded),
    rowsDuplicate: Number(o.dup),
    rowsQuarantined: Number(o.quarantined),
    rowsAlreadyLoaded: Number(o.already),
    mergedFiles: Number(o.files),
    validatedBy: o.validated_by,
  });
  if (!inserted) return false;
  await client.query(
    "delete from raw.load_ledger where path = any($1::text[]) and status = 'loaded'",
    [replaced],
  );
  return true;
}

/**
 * The listing watermark: the newest hour folder the ledger holds, never
 * later than `now` (a far-future event must not hide the present hours from
 * the listing window). Undefined on an empty ledger.
 */
export async function ledgerWatermark(
  db: Db,
  now: Date,
): Promise<Date | undefined> {
  const res = await db.query(
    "select max(event_hour) as h from raw.load_ledger where event_hour <= $1",
    [now],
  );
  return res.rows[0]?.h ?? undefined;
}
