/**
 * The export step: the dbt star schema and report marts (analytics.dim_*,
 * fact_*, mart_*) → Parquet (zstd, DuckDB) → the HDFS exports zone, for the
 * site's DuckDB data loaders.
 *
 * Rows are read from Postgres with COPY TO STDOUT (CSV, one pass, no row
 * objects in JS) and typed by DuckDB from information_schema, since DuckDB's
 * postgres_scanner cannot be downloaded here.
 *
 * Atomic replacement, with WebHDFS renames only:
 *   1. write every table to `${exportsDir}/_tmp_<run>/` (invisible to readers);
 *   2. rename that folder to `${exportsDir}/versions/<run>/` (one NameNode
 *      operation: the version appears complete or not at all);
 *   3. write `${exportsDir}/_LATEST._tmp_<run>` holding the version path, and
 *      rename it onto `${exportsDir}/${EXPORT_POINTER}` with renameoptions=OVERWRITE
 *      (HDFS rename2: atomic replace of the pointer file).
 * Readers read `_LATEST`, then the files of that version ({@link
 * latestExportDir}); they see the old export or the new one, never a mix. The
 * last KEEP_VERSIONS versions are kept so a reader that resolved the
 * pointer just before a swap can finish reading; older ones and leftover
 * `_tmp_*` folders of dead runs are deleted (runs never overlap, so any
 * other run's temp folder is a dead run's).
 */
import { DuckDBInstance } from "@duckdb/node-api";
import pg from "pg";
import { createWriteStream } from "node:fs";
import { pipeline } from "node:stream/promises";
import { copyTo } from "./copy_to.ts";
import type { Pool } from "../clients/postgres.ts";
import { type WebHdfs, WebHdfsError } from "../clients/webhdfs.ts";
import type { Logger } from "../log.ts";
import { EXPORT_POINTER } from "../zones/exports.ts";

/** How many export versions stay in HDFS. */
export const KEEP_VERSIONS = 3;

/** Name prefixes of the analytics tables that are exported. */
export const EXPORT_PREFIXES = ["dim_", "fact_", "mart_"];

/**
 * Tables exported as a folder of Hive-style partitions
 * (`<table>/event_type=search/data_0.parquet`) instead of one file, so a
 * reader that needs one event type (the site's Search and Errors loaders)
 * downloads that partition only. The partition column is in the folder
 * name, not in the files (read with `hive_partitioning`).
 */
export const PARTITIONED_EXPORTS: Record<string, string[]> = {
  fact_event: ["event_type"],
};

/** A column as information_schema describes it. */
export interface PgColumn {
  name: string;
  dataType: string;
  numericPrecision: number | null;
  numericScale: number | null;
}

/** The DuckDB type that holds a Postgres column's values exactly. */
export function duckTypeFor(c: PgColumn): string {
  switch (c.dataType) {
    case "smallint":
      return "SMALLINT";
    case "integer":
      return "INTEGER";
    case "bigint":
      return "BIGINT";
    case "real":
      return "FLOAT";
    case "double precision":
      return "DOUBLE";
    case "numeric":
      // Money in the marts is always numeric(p,s): exact DECIMAL. An
      // unconstrained numeric is a rate, an average or a sum of counts; as
      // text it would be useless to the DuckDB loaders (avg() of VARCHAR), so
      // it becomes DOUBLE, exact for counts below 2^53.
      if (c.numericPrecision && c.numericPrecision <= 38) {
        return `DECIMAL(${c.numericPrecision},${c.numericScale ?? 0})`;
      }
      return "DOUBLE";
    case "boolean":
      return "BOOLEAN";
    case "date":
      return "DATE";
    case "timestamp with time zone":
      return "TIMESTAMPTZ";
    case "timestamp without time zone":
      return "TIMESTAMP";
    case "time without time zone":
      return "TIME";
    case "uuid":
      return "UUID";
    default:
      // text, varchar, json(b), arrays, intervals: their text form.
      return "VARCHAR";
  }
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

function quoteLiteral(s: string): string {
  return `'${s.replaceAll("'", "''")}'`;
}

/** The analytics tables to export, with their columns. */
export async function exportTables(
  pool: Pool,
  schema = "analytics",
): Promise<Map<string, PgColumn[]>> {
  const res = await pool.query(
    `select c.table_name, c.column_name, c.data_type, c.numeric_precision, c.numeric_scale
     from information_schema.columns c
     join information_schema.tables t on t.table_schema = c.table_schema and t.table_name = c.table_name
     where c.table_schema = $1 and t.table_type in ('BASE TABLE', 'VIEW')
       and (${
      EXPORT_PREFIXES.map((_, i) => `starts_with(c.table_name, $${i + 2})`)
        .join(" or ")
    })
     order by c.table_name, c.ordinal_position`,
    [schema, ...EXPORT_PREFIXES],
  );
  const out = new Map<string, PgColumn[]>();
  for (const r of res.rows) {
    const cols = out.get(r.table_name) ?? [];
    cols.push({
      name: r.column_name,
      dataType: r.data_type,
      numericPrecision: r.numeric_precision,
      numericScale: r.numeric_scale,
    });
    out.set(r.table_name, cols);
  }
  return out;
}

/** Renames src onto dst, replacing dst atomically (HDFS rename2 OVERWRITE). */
export async function renameOverwrite(
  hdfs: WebHdfs,
  src: string,
  dst: string,
): Promise<void> {
  const res = await fetch(
    hdfs.url(src, "RENAME", { destination: dst, renameoptions: "OVERWRITE" }),
    { method: "PUT", signal: AbortSignal.timeout(hdfs.timeoutMs) },
  );
  const text = await res.text();
  if (!res.ok) {
    let exception: string | undefined;
    try {
      exception = JSON.parse(text)?.RemoteException?.exception;
    } catch { /* not JSON */ }
    throw new WebHdfsError(
      `WebHDFS RENAME(OVERWRITE) ${src} -> ${dst}: HTTP ${res.status}: ${
        text.slice(0, 300)
      }`,
      res.status,
      exception,
      "RENAME",
      src,
    );
  }
}

/** What an export wrote. */
export interface ExportResult {
  dir: string;
  tables: Record<string, number>;
  bytes: number;
  removedVersions: string[];
}

/** Exports every analytics dim/fact/mart table as one new version. */
export async function exportMarts(opts: {
  pool: Pool;
  hdfs: WebHdfs;
  exportsDir: string;
  runId: string;
  log: Logger;
  signal?: AbortSignal;
  schema?: string;
}): Promise<ExportResult> {
  const { pool, hdfs, exportsDir, runId, log, signal } = opts;
  const tables = await exportTables(pool, opts.schema);
  const tmpDir = `${exportsDir}/_tmp_${runId}`;
  const versionDir = `${exportsDir}/versions/${runId}`;
  const work = await Deno.makeTempDir({ prefix: "logpipe-export-" });
  const duck = await DuckDBInstance.create(":memory:", { threads: "2" });
  const conn = await duck.connect();
  await conn.run("SET TimeZone = 'UTC'");
  const counts: Record<string, number> = {};
  const files: Record<string, string[]> = {};
  let bytes = 0;
  try {
    await hdfs.delete(tmpDir, { recursive: true });
    await hdfs.mkdirs(tmpDir);
    for (const [table, cols] of tables) {
      if (signal?.aborted) throw signal.reason;
      log.debug("exporting table", { table });
      const csv = `${work}/${table}.csv`;
      const parquet = `${work}/${table}.parquet`;
      const source = `${quoteIdent(opts.schema ?? "analytics")}.${
        quoteIdent(table)
      }`;
      // A fresh connection per COPY TO: pg-copy-streams 7's COPY TO never
      // ended under Deno on a pooled connection that had run a query before.
      const client = new pg.Client({
        connectionString: pool.options.connectionString,
      });
      client.on("error", () => {});
      await client.connect();
      try {
        const stream = client.query(copyTo(
          `copy (select ${
            cols.map((c) => quoteIdent(c.name)).join(", ")
          } from ${source}) to stdout with (format csv)`,
        ));
        await pipeline(stream, createWriteStream(csv));
      } finally {
        await client.end().catch(() => {});
      }
      const columns = `{${
        cols.map((c) =>
          `${quoteLiteral(c.name)}: ${quoteLiteral(duckTypeFor(c))}`
        ).join(", ")
      }}`;
      const partitionBy = PARTITIONED_EXPORTS[table];
      const copied = await conn.runAndReadAll(
        `copy (select * from read_csv(${
          quoteLiteral(csv)
        }, columns = ${columns},
            header = false, auto_detect = false, allow_quoted_nulls = false,
            quote = '"', escape = '"', delim = ','))
         to ${quoteLiteral(partitionBy ? `${work}/${table}` : parquet)}
         (format parquet, compression zstd${
          partitionBy
            ? `, partition_by (${partitionBy.map(quoteIdent).join(", ")})`
            : ""
        })`,
      );
      counts[table] = Number(copied.getRows()[0]?.[0] ?? 0);
      // Relative paths of the files written: one, or one per partition.
      const written = partitionBy
        ? await localFiles(`${work}/${table}`, table)
        : [`${table}.parquet`];
      files[table] = written;
      for (const rel of written) {
        const data = await Deno.readFile(`${work}/${rel}`);
        bytes += data.length;
        await hdfs.create(`${tmpDir}/${rel}`, data, { overwrite: true });
      }
      await Deno.remove(csv).catch(() => {});
      await Deno.remove(partitionBy ? `${work}/${table}` : parquet, {
        recursive: true,
      }).catch(() => {});
    }
    const manifest = {
      run_id: runId,
      exported_at: new Date().toISOString(),
      format: "parquet",
      compression: "zstd",
      tables: Object.fromEntries(
        [...tables].map(([t, cols]) => [t, {
          ...(PARTITIONED_EXPORTS[t]
            ? { dir: t, partitioned_by: PARTITIONED_EXPORTS[t] }
            : { file: `${t}.parquet` }),
          files: files[t],
          rows: counts[t],
          columns: cols.map((c) => ({ name: c.name, type: duckTypeFor(c) })),
        }]),
      ),
    };
    await hdfs.create(
      `${tmpDir}/_manifest.json`,
      JSON.stringify(manifest, null, 2),
      {
        overwrite: true,
      },
    );
    await hdfs.mkdirs(`${exportsDir}/versions`);
    await hdfs.delete(versionDir, { recursive: true }); // a failed earlier try of this run
    if (!(await hdfs.rename(tmpDir, versionDir))) {
      throw new Error(`could not rename ${tmpDir} to ${versionDir}`);
    }
    const pointerTmp = `${exportsDir}/${EXPORT_POINTER}._tmp_${runId}`;
    await hdfs.create(pointerTmp, versionDir + "\n", { overwrite: true });
    await renameOverwrite(hdfs, pointerTmp, `${exportsDir}/${EXPORT_POINTER}`);
    log.info("export published", { dir: versionDir, tables: counts });
  } finally {
    conn.closeSync();
    duck.closeSync();
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
  const removedVersions = await pruneExports(hdfs, exportsDir, versionDir, log);
  return { dir: versionDir, tables: counts, bytes, removedVersions };
}

/** Files below `dir`, as paths relative to its parent ("fact_event/event_type=search/data_0.parquet"). */
async function localFiles(dir: string, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isDirectory) {
      out.push(...await localFiles(`${dir}/${e.name}`, `${prefix}/${e.name}`));
    } else if (e.isFile) out.push(`${prefix}/${e.name}`);
  }
  return out.sort();
}

/**
 * Deletes versions beyond the newest KEEP_VERSIONS (never the current one)
 * and `_tmp_*` leftovers of other runs. Failures are logged, not thrown.
 */
export async function pruneExports(
  hdfs: WebHdfs,
  exportsDir: string,
  currentDir: string,
  log: Logger,
): Promise<string[]> {
  const removed: string[] = [];
  try {
    const versions = (await hdfs.listOrEmpty(`${exportsDir}/versions`))
      .filter((s) => s.type === "DIRECTORY")
      .sort((a, b) => b.modificationTime - a.modificationTime);
    for (const v of versions.slice(KEEP_VERSIONS)) {
      const p = `${exportsDir}/versions/${v.pathSuffix}`;
      if (p === currentDir) continue;
      await hdfs.delete(p, { recursive: true });
      removed.push(p);
    }
    const currentRun = currentDir.split("/").pop();
    for (const s of await hdfs.listOrEmpty(exportsDir)) {
      if (
        !s.pathSuffix.startsWith("_tmp_") &&
        !s.pathSuffix.startsWith(`${EXPORT_POINTER}._tmp_`)
      ) continue;
      if (currentRun && s.pathSuffix.endsWith(currentRun)) continue;
      // Runs never overlap (run lock), so another run's temp is a dead run's.
      await hdfs.delete(`${exportsDir}/${s.pathSuffix}`, { recursive: true });
      removed.push(`${exportsDir}/${s.pathSuffix}`);
    }
  } catch (err) {
    log.warn("pruning old exports failed (ignored)", {
      error: err instanceof Error ? err.message : String(err),
    });
  }
  return removed;
}
