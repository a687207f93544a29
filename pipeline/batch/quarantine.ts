/**
 * The quarantine: what the batch sets aside instead of failing. A row or a
 * whole file goes into raw.quarantine (reason, SQLSTATE, Kafka coordinates,
 * the row as escaped JSON text) in the same transaction as the rest of its
 * file's load, so a kill -9 leaves either all of the file's outcome or none
 * of it. The HDFS copy (`${root}/quarantine/…`, see names.ts) is written
 * after that commit from the table itself; rows whose copy is not written
 * yet (hdfs_path null) are copied by the next load, so a crash between the
 * two only delays the copy.
 */
import type { Pool, PoolClient } from "../clients/postgres.ts";
import type { WebHdfs } from "../clients/webhdfs.ts";
import { WebHdfsError } from "../clients/webhdfs.ts";
import type { Logger } from "../log.ts";
import { quarantineDir } from "../zones/names.ts";
import { partitionStart, type RawFile } from "../zones/raw_listing.ts";

/** Why something was set aside. */
export type QuarantineReason =
  /** Postgres refused the row (SQLSTATE class 22 or 23). */
  | "data_error"
  /** The row's Kafka offset already holds a different event. */
  | "offset_conflict"
  /** The file's offsets overlap another file of the same partition and hour. */
  | "overlapping_offsets"
  /** The file cannot be read as a raw-zone Parquet file. */
  | "unreadable_file"
  /** More rows of the file were refused than are worth isolating one by one. */
  | "too_many_bad_rows"
  /** validate: event or Kafka time beyond the allowed clock skew. */
  | "future_timestamp"
  /** validate: a field its event type requires is missing. */
  | "missing_required_field"
  /** validate: an identifier is the empty string. */
  | "blank_identifier";

/** Every reason, as --reason and the API accept them. */
export const QUARANTINE_REASONS: readonly QuarantineReason[] = [
  "data_error",
  "offset_conflict",
  "overlapping_offsets",
  "unreadable_file",
  "too_many_bad_rows",
  "future_timestamp",
  "missing_required_field",
  "blank_identifier",
];

/** One row to set aside. */
export interface RowQuarantine {
  reason: QuarantineReason;
  sqlstate?: string | null;
  detail: string;
  sourcePath: string;
  topic: string;
  partition: number;
  offset: number;
  /** Start of the hour folder the row's file is in. */
  eventHour: Date;
  eventId: string | null;
  /** The flat row as JSON text. */
  rowJson: string;
  runId: string;
}

/** A whole file to set aside. */
export interface FileQuarantine {
  reason: QuarantineReason;
  sqlstate?: string | null;
  detail: string;
  file: RawFile;
  runId: string;
}

/** Text Postgres can store: U+0000 spelled out, lone surrogates replaced. */
export function storableText(s: string): string {
  return s.replaceAll("\u0000", "\\u0000").toWellFormed();
}

/** Inserts rows (a Kafka record at most once); returns the new ids. */
export async function quarantineRows(
  client: PoolClient,
  rows: RowQuarantine[],
): Promise<number[]> {
  if (rows.length === 0) return [];
  const res = await client.query(
    `insert into raw.quarantine (scope, reason, sqlstate, detail, source_path,
       kafka_topic, kafka_partition, first_offset, last_offset, event_hour,
       event_id, row_json, run_id)
     select 'row', r->>'reason', r->>'sqlstate', r->>'detail', r->>'source_path',
            r->>'topic', (r->>'partition')::int, (r->>'offset')::bigint,
            (r->>'offset')::bigint, (r->>'event_hour')::timestamptz,
            r->>'event_id', r->>'row_json', r->>'run_id'
       from jsonb_array_elements($1::jsonb) r
     on conflict (kafka_topic, kafka_partition, first_offset) where scope = 'row'
     do nothing
     returning id`,
    [JSON.stringify(rows.map((r) => ({
      reason: r.reason,
      sqlstate: r.sqlstate ?? null,
      detail: storableText(r.detail.slice(0, 2000)),
      source_path: r.sourcePath,
      topic: r.topic,
      partition: r.partition,
      offset: r.offset,
      event_hour: r.eventHour.toISOString(),
      event_id: r.eventId === null ? null : storableText(r.eventId),
      row_json: storableText(r.rowJson),
      run_id: r.runId,
    })))],
  );
  return res.rows.map((r: { id: number }) => Number(r.id));
}

/** Records a refused file (again: one more attempt); returns its id. */
export async function quarantineFile(
  client: PoolClient,
  q: FileQuarantine,
): Promise<number> {
  const res = await client.query(
    `insert into raw.quarantine (scope, reason, sqlstate, detail, source_path,
       kafka_topic, kafka_partition, first_offset, last_offset, event_hour, run_id)
     values ('file', $1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
     on conflict (source_path) where scope = 'file' do update set
       status = 'quarantined', reason = excluded.reason, sqlstate = excluded.sqlstate,
       detail = excluded.detail, run_id = excluded.run_id,
       attempts = raw.quarantine.attempts + 1, last_attempt_at = now(),
       last_attempt_error = excluded.detail, resolution = null
     returning id`,
    [
      q.reason,
      q.sqlstate ?? null,
      storableText(q.detail.slice(0, 2000)),
      q.file.path,
      q.file.coords.topic,
      q.file.coords.partition,
      q.file.coords.firstOffset,
      q.file.coords.lastOffset,
      partitionStart(q.file),
      q.runId,
    ],
  );
  return Number(res.rows[0].id);
}

/** Quarantine entries by reason, for the run's warnings and notification. */
export interface QuarantineSummary {
  rows: number;
  files: number;
  byReason: Record<string, number>;
  /** A few examples: "reason: source file @ partition/offset (detail)". */
  examples: string[];
}

/** Adds one entry to a summary. */
export function addToSummary(
  s: QuarantineSummary,
  scope: "row" | "file",
  reason: string,
  example: string,
): void {
  if (scope === "row") s.rows++;
  else s.files++;
  s.byReason[reason] = (s.byReason[reason] ?? 0) + 1;
  if (s.examples.length < 10) s.examples.push(`${reason}: ${example}`);
}

/** An empty summary. */
export function emptySummary(): QuarantineSummary {
  return { rows: 0, files: 0, byReason: {}, examples: [] };
}

/** One line: "3 rows, 1 file (data_error 2, offset_conflict 1, …)". */
export function formatSummaryLine(s: QuarantineSummary): string {
  const parts = Object.entries(s.byReason).sort((a, b) => b[1] - a[1]).map((
    [r, n],
  ) => `${r} ${n}`);
  return `${s.rows} row(s), ${s.files} file(s) quarantined (${
    parts.join(", ")
  })`;
}

interface PendingRow {
  id: number;
  scope: "row" | "file";
  reason: string;
  sqlstate: string | null;
  detail: string;
  source_path: string;
  kafka_topic: string;
  kafka_partition: number;
  first_offset: number;
  last_offset: number;
  event_id: string | null;
  row_json: string | null;
  run_id: string;
  quarantined_at: Date;
}

/**
 * Writes the HDFS copy of every quarantine entry that has none yet (or of
 * `ids` only) and records where it went. Entries set aside together (same
 * scope, source file, run and transaction) share one file whose name is
 * fixed by them, so writing it again after a crash gives the same file.
 */
export async function writeQuarantineCopies(
  pool: Pool,
  hdfs: WebHdfs,
  root: string,
  log: Logger,
  ids?: number[],
): Promise<{ files: number; entries: number }> {
  const res = await pool.query(
    `select id, scope, reason, sqlstate, detail, source_path, kafka_topic,
            kafka_partition, first_offset, last_offset, event_id, row_json,
            run_id, quarantined_at
       from raw.quarantine
      where hdfs_path is null and ($1::bigint[] is null or id = any($1))
      order by id limit 100000`,
    [ids ?? null],
  );
  const groups = new Map<string, PendingRow[]>();
  for (const r of res.rows as PendingRow[]) {
    const key = [
      r.scope,
      r.source_path,
      r.run_id,
      r.quarantined_at.toISOString(),
    ].join("|");
    const g = groups.get(key);
    if (g) g.push(r);
    else groups.set(key, [r]);
  }
  const dir = quarantineDir(root);
  let files = 0, entries = 0;
  for (const rows of groups.values()) {
    const first = rows[0];
    const base = first.source_path.split("/").pop()!.replace(
      /\.parquet$/,
      "",
    );
    const day = first.quarantined_at.toISOString().slice(0, 10);
    let path: string;
    if (first.scope === "file") {
      path = `${dir}/date=${day}/${base}+${first.run_id}+q${first.id}.parquet`;
      let bytes: Uint8Array;
      try {
        bytes = await hdfs.read(first.source_path);
      } catch (err) {
        if (err instanceof WebHdfsError && err.notFound) {
          log.warn("quarantined file is gone from the raw zone; no copy", {
            path: first.source_path,
            id: first.id,
          });
          continue;
        }
        throw err;
      }
      await hdfs.create(path, bytes, { overwrite: true });
    } else {
      path = `${dir}/date=${day}/${base}+${first.run_id}+q${first.id}.ndjson`;
      const text = rows.map((r) =>
        JSON.stringify({
          quarantine_id: r.id,
          reason: r.reason,
          sqlstate: r.sqlstate,
          detail: r.detail,
          source_path: r.source_path,
          topic: r.kafka_topic,
          partition: r.kafka_partition,
          offset: r.first_offset,
          event_id: r.event_id,
          run_id: r.run_id,
          quarantined_at: r.quarantined_at.toISOString(),
          row_json: r.row_json,
        })
      ).join("\n") + "\n";
      await hdfs.create(path, text, { overwrite: true });
    }
    await pool.query(
      "update raw.quarantine set hdfs_path = $2 where id = any($1)",
      [rows.map((r) => r.id), path],
    );
    files++;
    entries += rows.length;
  }
  return { files, entries };
}
