/**
 * Loading quarantined data again after a fix (`deno task batch
 * --reload-quarantine [--reason R] [--id N] [--dry-run]`).
 *
 * Rows: the selected rows' JSON (raw.quarantine.row_json, which an
 * operator may have corrected) goes through exactly the loader's careful
 * path (loader.ts stageAndResolve: what Postgres refuses stays, duplicates
 * and offsets are resolved the same way) plus validate's row checks, in one
 * transaction. A row that loads is marked `reloaded` with its resolution
 * (loaded, a duplicate, already in raw.events); one that still fails stays
 * quarantined with one more attempt and the new error. Every row stays
 * accounted for by its Kafka coordinates (ledger.ts) either way.
 *
 * Files: a file set aside whole is released (its `quarantined` ledger row
 * removed) and loaded again by the same run like a new file; if it is
 * refused again, its quarantine entry counts one more attempt.
 */
import { DuckDBInstance } from "@duckdb/node-api";
import type { Pool } from "../clients/postgres.ts";
import { withTransaction } from "../clients/postgres.ts";
import type { WebHdfs } from "../clients/webhdfs.ts";
import { FLAT_COLUMNS } from "../events/flatten.ts";
import type { Logger } from "../log.ts";
import { parseDataFileName, parseRawPartition } from "../zones/names.ts";
import type { RawFile } from "../zones/raw_listing.ts";
import { stageAndResolve, targetColumns } from "./loader.ts";
import { FUTURE_TOLERANCE_MS } from "./validate.ts";

/** Which quarantined items to retry (none given: all). */
export interface ReloadFilter {
  reasons?: string[];
  ids?: number[];
}

/** A quarantined item as --dry-run lists it. */
export interface QuarantineItem {
  id: number;
  scope: "row" | "file";
  reason: string;
  source_path: string;
  kafka_partition: number;
  first_offset: number;
  event_id: string | null;
  detail: string;
  attempts: number;
}

/** What a reload did. */
export interface ReloadResult {
  rowsSelected: number;
  loaded: number;
  duplicates: number;
  alreadyLoaded: number;
  stillQuarantined: number;
  /** Files released to be loaded again by this run. */
  filesReleased: number;
  /** Files whose source is gone from the raw zone (left quarantined). */
  filesMissing: number;
}

const FILTER_SQL = `status = 'quarantined'
  and ($1::text[] is null or reason = any($1))
  and ($2::bigint[] is null or id = any($2))`;

/** The quarantined items a filter selects (oldest first). */
export async function selectQuarantine(
  pool: Pool,
  filter: ReloadFilter,
  limit = 100_000,
): Promise<QuarantineItem[]> {
  const res = await pool.query(
    `select id, scope, reason, source_path, kafka_partition, first_offset,
            event_id, detail, attempts
       from raw.quarantine where ${FILTER_SQL}
      order by id limit $3`,
    [filter.reasons ?? null, filter.ids ?? null, limit],
  );
  return res.rows as QuarantineItem[];
}

function sqlString(s: string): string {
  return `'${s.replaceAll("'", "''")}'`;
}

/** Retries the selected quarantined rows (see the module comment). */
export async function reloadQuarantinedRows(opts: {
  pool: Pool;
  runId: string;
  log: Logger;
  filter: ReloadFilter;
  now?: Date;
}): Promise<Omit<ReloadResult, "filesReleased" | "filesMissing">> {
  const { pool, runId, log } = opts;
  const result = {
    rowsSelected: 0,
    loaded: 0,
    duplicates: 0,
    alreadyLoaded: 0,
    stillQuarantined: 0,
  };
  const res = await pool.query(
    `select id, source_path, row_json from raw.quarantine
      where scope = 'row' and row_json is not null and ${FILTER_SQL}
      order by id`,
    [opts.filter.reasons ?? null, opts.filter.ids ?? null],
  );
  const items = res.rows as {
    id: number;
    source_path: string;
    row_json: string;
  }[];
  result.rowsSelected = items.length;
  if (items.length === 0) return result;

  const target = (await targetColumns(pool)).filter((c) =>
    c.name !== "loaded_at"
  );
  const duckType = new Map(FLAT_COLUMNS.map((c) => [c.name, c.duckdbType]));
  const columns = target.map((c) => c.name);
  const work = await Deno.makeTempDir({ prefix: "logpipe-reload-" });
  const db = await DuckDBInstance.create(":memory:", { threads: "1" });
  const conn = await db.connect();
  try {
    await conn.run("SET TimeZone = 'UTC'");
    // The rows as NDJSON, in selection order (_rn = position).
    const lines = items.map((q, i) => {
      let row: Record<string, unknown>;
      try {
        row = JSON.parse(q.row_json);
      } catch {
        row = {};
      }
      return JSON.stringify({
        ...row,
        source_file: q.source_path,
        _rn: i + 1,
      });
    });
    await Deno.writeTextFile(`${work}/rows.ndjson`, lines.join("\n") + "\n");
    const types = [
      ...columns.map((c) =>
        `${sqlString(c)}: ${sqlString(duckType.get(c) ?? "VARCHAR")}`
      ),
      "'_rn': 'BIGINT'",
    ].join(", ");
    await conn.run(
      `create table r as select * from read_json(${
        sqlString(`${work}/rows.ndjson`)
      }, format = 'newline_delimited', columns = {${types}},
        maximum_object_size = 16777216)`,
    );
    await withTransaction(pool, async (client) => {
      const ids = items.map((q) => q.id);
      // Their own entries must not count as "already accounted for".
      await client.query(
        `update raw.quarantine set status = 'reloaded' where id = any($1)`,
        [ids],
      );
      const staged = await stageAndResolve(client, {
        conn,
        table: "r",
        columns,
        rows: items.length,
        work,
        runId,
        rowChecksUntil: new Date(
          (opts.now ?? new Date()).getTime() + FUTURE_TOLERANCE_MS,
        ),
      }, { fates: true });
      const byFate = new Map<string, number[]>();
      items.forEach((q, i) => {
        const fate = staged.tooMany
          ? "data_error"
          : staged.fates?.get(i + 1) ?? "data_error";
        const list = byFate.get(fate) ?? [];
        list.push(q.id);
        byFate.set(fate, list);
      });
      const resolutions: Record<string, string> = {
        loaded: "loaded into raw.events",
        duplicate: "a copy of an event kept in raw.events (see raw.duplicates)",
        already_loaded: "already in raw.events",
      };
      for (const [fate, fateIds] of byFate) {
        if (fate in resolutions) {
          await client.query(
            `update raw.quarantine set status = 'reloaded', resolution = $2,
                    reloaded_by = $3, reloaded_at = now(),
                    attempts = attempts + 1, last_attempt_at = now()
              where id = any($1)`,
            [fateIds, resolutions[fate], runId],
          );
          if (fate === "loaded") result.loaded += fateIds.length;
          if (fate === "duplicate") result.duplicates += fateIds.length;
          if (fate === "already_loaded") result.alreadyLoaded += fateIds.length;
          continue;
        }
        // Still failing: back to quarantined, one more attempt, why.
        const details = fateIds.map((id) => {
          const rn = items.findIndex((q) => q.id === id) + 1;
          const q = staged.quarantine.get(rn);
          return `${fate}: ${q?.detail ?? "refused"}`.slice(0, 2000);
        });
        await client.query(
          `update raw.quarantine q set status = 'quarantined',
                  attempts = attempts + 1, last_attempt_at = now(),
                  last_attempt_error = d.detail
             from unnest($1::bigint[], $2::text[]) as d(id, detail)
            where q.id = d.id`,
          [fateIds, details.map((d) => d.replaceAll("\u0000", "\\u0000"))],
        );
        result.stillQuarantined += fateIds.length;
      }
    });
  } finally {
    conn.closeSync();
    db.closeSync();
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
  log.info("quarantined rows reloaded", { run_id: runId, ...result });
  return result;
}

/**
 * Releases the selected quarantined files that are still in the raw zone
 * (their `quarantined` ledger rows go), to be loaded by the same run.
 */
export async function releaseQuarantinedFiles(opts: {
  pool: Pool;
  hdfs: WebHdfs;
  runId: string;
  filter: ReloadFilter;
}): Promise<{ files: RawFile[]; missing: number }> {
  const res = await opts.pool.query(
    `select id, source_path from raw.quarantine
      where scope = 'file' and ${FILTER_SQL} order by id`,
    [opts.filter.reasons ?? null, opts.filter.ids ?? null],
  );
  const files: RawFile[] = [];
  let missing = 0;
  for (const q of res.rows as { id: number; source_path: string }[]) {
    const stat = await opts.hdfs.stat(q.source_path);
    const name = parseDataFileName(q.source_path.split("/").pop()!);
    const part = parseRawPartition(q.source_path);
    if (!stat || !name || !part) {
      await opts.pool.query(
        `update raw.quarantine set attempts = attempts + 1, last_attempt_at = now(),
                last_attempt_error = 'the file is no longer in the raw zone'
          where id = $1`,
        [q.id],
      );
      missing++;
      continue;
    }
    await withTransaction(opts.pool, async (client) => {
      await client.query(
        "delete from raw.load_ledger where path = $1 and status = 'quarantined'",
        [q.source_path],
      );
      // Loaded by this run; refused again, it is set back to quarantined.
      await client.query(
        `update raw.quarantine set status = 'reloaded', reloaded_by = $2,
                reloaded_at = now(), resolution = 'file loaded again'
          where id = $1`,
        [q.id, opts.runId],
      );
    });
    files.push({
      path: q.source_path,
      coords: name,
      eventDate: part.eventDate,
      eventHour: part.eventHour,
      length: stat.length,
      modificationTime: stat.modificationTime,
    });
  }
  return { files, missing };
}
