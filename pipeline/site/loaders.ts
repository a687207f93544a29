/**
 * Helpers of the site's data loaders (docs/data/*.ts): run named SQL queries
 * over the marts, either in Postgres (`analytics.*`, for the BI pages) or in
 * DuckDB over the latest Parquet export in HDFS (for the analytics pages),
 * and print one JSON envelope. A loader never fails the build: a missing
 * table, an empty export or an unreachable service becomes a status and a
 * message that the page shows as "no data yet", with an "as of" time.
 */
import { DuckDBInstance } from "@duckdb/node-api";
import type { Config } from "../config.ts";
import { createPool } from "../clients/postgres.ts";
import { createWebHdfs } from "../clients/webhdfs.ts";
import { latestExportDir } from "../zones/exports.ts";
import { fetchColumns } from "./parquet_ranges.ts";
import { arrowFile, tarArchive } from "./arrow_archive.ts";

/** What every loader prints. */
export interface LoaderEnvelope {
  /** ok: data present · empty: tables exist, no rows · missing: not built/exported yet · error */
  status: "ok" | "empty" | "missing" | "error";
  /** When the data was produced (export time / last successful batch), ISO. */
  asOf: string | null;
  /** When this loader ran, ISO. */
  builtAt: string;
  source: string;
  message?: string;
  data: Record<string, Record<string, unknown>[]>;
}

function envelope(
  source: string,
  data: Record<string, Record<string, unknown>[]>,
  asOf: string | null,
  errors: string[],
  missing: boolean,
): LoaderEnvelope {
  // A `totals` query returns one row even over empty tables: not data.
  const rows = Object.entries(data).filter(([k]) => k !== "totals")
    .reduce((n, [, r]) => n + r.length, 0);
  const status = missing && rows === 0
    ? "missing"
    : errors.length && rows === 0
    ? "error"
    : rows === 0
    ? "empty"
    : "ok";
  return {
    status,
    asOf,
    builtAt: new Date().toISOString(),
    source,
    ...(errors.length ? { message: errors.join("; ").slice(0, 500) } : {}),
    data,
  };
}

const toJson = (v: unknown): unknown =>
  typeof v === "bigint"
    ? Number(v)
    : v instanceof Date
    ? v.toISOString()
    : v !== null && typeof v === "object" && !Array.isArray(v) &&
        v.constructor !== Object
    ? String(v) // DuckDB decimal/date/timestamp values
    : v;

/**
 * Runs each query in `queries` against `analytics` in Postgres. Numeric
 * columns should be cast to float8 in the SQL (pg returns numeric as text).
 */
export async function queryMarts(
  config: Config,
  queries: Record<string, string>,
): Promise<LoaderEnvelope> {
  const pool = createPool(config, { max: 1, applicationName: "logpipe-site" });
  const data: Record<string, Record<string, unknown>[]> = {};
  const errors: string[] = [];
  let missing = false;
  let asOf: string | null = null;
  try {
    try {
      const r = await pool.query<{ t: Date | null }>(
        `select max(ended_at) as t from ops.dag_runs where state in ('success', 'success_with_warnings')`,
      );
      asOf = r.rows[0]?.t?.toISOString() ?? null;
    } catch {
      // ops schema not migrated yet: no "as of" time
    }
    for (const [name, sql] of Object.entries(queries)) {
      try {
        const { rows } = await pool.query<Record<string, unknown>>(sql);
        data[name] = rows.map((row: Record<string, unknown>) =>
          Object.fromEntries(
            Object.entries(row).map(([k, v]) => [k, toJson(v)]),
          )
        );
      } catch (err) {
        data[name] = [];
        const msg = err instanceof Error ? err.message : String(err);
        if (/does not exist/.test(msg)) missing = true;
        errors.push(`${name}: ${msg}`);
      }
    }
  } finally {
    await pool.end().catch(() => {});
  }
  return envelope(
    `PostgreSQL ${config.postgres.host}:${config.postgres.port}/${config.postgres.database} (analytics.*)`,
    data,
    asOf,
    errors,
    missing,
  );
}

/** The columns (and, for a partitioned export, the partitions) a loader reads of one exported table. */
export interface ExportSource {
  columns: string[];
  /** Partition values to read, e.g. {event_type: ["search", "purchase"]}. */
  partitions?: Record<string, string[]>;
}

/** What the exports-reading loaders transferred from HDFS, against the files' sizes. */
export interface ReadStats {
  bytesRead: number;
  /** Total size of the files touched (what reading them whole would cost). */
  fileBytes: number;
  /** Size of the whole export version. */
  exportBytes: number;
  files: number;
  requests: number;
}

interface ManifestTable {
  file?: string;
  dir?: string;
  partitioned_by?: string[];
  files?: string[];
  columns?: Array<{ name: string; type: string }>;
}

const IDENT = /^[a-z_][a-z0-9_]*$/;
const sqlString = (s: string) => `'${s.replaceAll("'", "''")}'`;

/**
 * Reads `sources` of the latest export (HDFS, via WebHDFS) and runs each
 * query in DuckDB, where each source is a view `analytics.<table>`, so the
 * same SQL runs here and in PostgreSQL. Only the listed columns are
 * fetched (byte ranges of their column chunks, see parquet_ranges.ts), and
 * of a partitioned table only the listed partitions; an export written
 * before the table was partitioned is read whole-file but still by column,
 * the partition applied as a filter. `stats` receives the bytes moved.
 */
export async function queryExports(
  config: Config,
  sources: Record<string, ExportSource>,
  queries: Record<string, string>,
  stats?: ReadStats,
): Promise<LoaderEnvelope> {
  const hdfs = createWebHdfs(config, { timeoutMs: 30_000 });
  const data: Record<string, Record<string, unknown>[]> = {};
  for (const name of Object.keys(queries)) data[name] = [];
  const errors: string[] = [];
  let source = `HDFS ${config.hdfs.exportsDir} (Parquet, DuckDB)`;
  let dir: string | undefined;
  try {
    dir = await latestExportDir(hdfs, config.hdfs.exportsDir);
  } catch (err) {
    errors.push(`HDFS: ${err instanceof Error ? err.message : err}`);
    return envelope(source, data, null, errors, false);
  }
  if (!dir) {
    return envelope(
      source,
      data,
      null,
      ["no export yet (run deno task batch)"],
      true,
    );
  }
  source = `HDFS ${dir} (Parquet, DuckDB)`;
  let asOf: string | null = null;
  let manifest: { tables?: Record<string, ManifestTable> } = {};
  try {
    manifest = JSON.parse(await hdfs.readText(`${dir}/_manifest.json`));
    asOf = (manifest as { exported_at?: string }).exported_at ?? null;
  } catch {
    // an export without manifest: no "as of" time, every table one file
  }
  const work = await Deno.makeTempDir({ prefix: "logpipe-site-" });
  const duck = await DuckDBInstance.create(":memory:", { threads: "2" });
  const conn = await duck.connect();
  let missing = false;
  const sizes = new Map(
    (await hdfs.walk(dir).catch(() => [])).map((f) => [f.path, f.length]),
  );
  if (stats) {
    stats.exportBytes = [...sizes.values()].reduce((a, b) => a + b, 0);
  }
  try {
    await conn.run("SET TimeZone = 'UTC'");
    await conn.run("create schema analytics");
    for (const [table, want] of Object.entries(sources)) {
      for (const c of [table, ...want.columns]) {
        if (!IDENT.test(c)) throw new Error(`bad identifier ${c}`);
      }
      try {
        const entry = manifest.tables?.[table] ?? {};
        const partitionKeys = entry.partitioned_by ?? [];
        // HDFS paths (relative to the version folder) of the files to read.
        let rels: string[];
        let where = "";
        if (partitionKeys.length) {
          const files = entry.files ??
            [...sizes.keys()].filter((p) => p.startsWith(`${dir}/${table}/`))
              .map((p) => p.slice(dir!.length + 1));
          rels = files.filter((rel) =>
            Object.entries(want.partitions ?? {}).every(([k, values]) =>
              values.some((v) => rel.includes(`/${k}=${v}/`))
            )
          );
        } else {
          rels = [entry.file ?? `${table}.parquet`];
          const filters = Object.entries(want.partitions ?? {}).map((
            [k, values],
          ) => `${k} in (${values.map(sqlString).join(", ")})`);
          if (filters.length) where = ` where ${filters.join(" and ")}`;
        }
        const fileColumns = want.columns.filter((c) =>
          !partitionKeys.includes(c)
        );
        // Partition columns a table needs but lacks (no file): typed nulls.
        const locals: string[] = [];
        for (const rel of rels) {
          const path = `${dir}/${rel}`;
          const size = sizes.get(path) ?? (await hdfs.stat(path))?.length;
          if (size === undefined) throw new Error(`${path} not found`);
          const local = `${work}/${rel}`;
          await Deno.mkdir(local.slice(0, local.lastIndexOf("/")), {
            recursive: true,
          });
          const read = await fetchColumns(
            hdfs,
            conn,
            path,
            size,
            // a filter on an unpartitioned file needs its column too
            [
              ...new Set([
                ...fileColumns,
                ...(partitionKeys.length
                  ? []
                  : Object.keys(want.partitions ?? {})),
              ]),
            ],
            local,
          );
          locals.push(local);
          if (stats) {
            stats.bytesRead += read.bytesRead;
            stats.fileBytes += read.fileBytes;
            stats.files++;
            stats.requests += read.requests;
          }
        }
        const select = want.columns.join(", ");
        if (locals.length) {
          await conn.run(
            `create view analytics.${table} as select ${select} from read_parquet([${
              locals.map(sqlString).join(", ")
            }], hive_partitioning = ${partitionKeys.length > 0})${where}`,
          );
        } else {
          // No partition holds rows (e.g. no search event yet): an empty
          // view of the right types, from the manifest.
          const types = new Map(
            (entry.columns ?? []).map((c) => [c.name, c.type]),
          );
          await conn.run(
            `create view analytics.${table} as select ${
              want.columns.map((c) =>
                `cast(null as ${types.get(c) ?? "VARCHAR"}) as ${c}`
              ).join(", ")
            } where false`,
          );
        }
      } catch (err) {
        missing = true;
        errors.push(`${table}: ${err instanceof Error ? err.message : err}`);
      }
    }
    for (const [name, sql] of Object.entries(queries)) {
      try {
        const reader = await conn.runAndReadAll(sql);
        data[name] = reader.getRowObjects().map((row) =>
          Object.fromEntries(
            Object.entries(row).map(([k, v]) => [k, toJson(v)]),
          )
        );
      } catch (err) {
        errors.push(`${name}: ${err instanceof Error ? err.message : err}`);
      }
    }
  } finally {
    conn.closeSync();
    duck.closeSync();
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
  return envelope(source, data, asOf, errors, missing);
}

/** What `meta.json` of a page's archive holds. */
export interface ArchiveMeta extends Omit<LoaderEnvelope, "data"> {
  /** Rows per table. */
  rows: Record<string, number>;
  /** Bytes per table's Arrow file. */
  bytes: Record<string, number>;
  /** For exports: what was transferred from HDFS. */
  read?: ReadStats;
  /** Constants the page needs to read the tables (e.g. histogram bin widths). */
  params?: Record<string, unknown>;
}

/**
 * Runs a dataset loader and writes its tar archive to stdout: `meta.json`
 * and `<table>.arrow` for every name in `tables` (always all of them, empty
 * when the data is missing, so the page's attachments exist in every
 * build). Any exception becomes status "error".
 */
export async function runArchiveLoader(
  source: string,
  tables: string[],
  run: (stats: ReadStats) => Promise<LoaderEnvelope>,
  params?: Record<string, unknown>,
): Promise<void> {
  const stats: ReadStats = {
    bytesRead: 0,
    fileBytes: 0,
    exportBytes: 0,
    files: 0,
    requests: 0,
  };
  let env: LoaderEnvelope;
  try {
    env = await run(stats);
  } catch (err) {
    env = {
      status: "error",
      asOf: null,
      builtAt: new Date().toISOString(),
      source,
      message: err instanceof Error ? err.message : String(err),
      data: {},
    };
  }
  const files: Array<{ name: string; bytes: Uint8Array }> = [];
  const meta: ArchiveMeta = {
    status: env.status,
    asOf: env.asOf,
    builtAt: env.builtAt,
    source: env.source,
    ...(env.message ? { message: env.message } : {}),
    rows: {},
    bytes: {},
    ...(stats.files ? { read: stats } : {}),
    ...(params ? { params } : {}),
  };
  for (const name of tables) {
    const rows = env.data[name] ?? [];
    const bytes = arrowFile(rows);
    meta.rows[name] = rows.length;
    meta.bytes[name] = bytes.length;
    files.push({ name: `${name}.arrow`, bytes });
  }
  files.unshift({
    name: "meta.json",
    bytes: new TextEncoder().encode(JSON.stringify(meta, null, 2)),
  });
  const out = tarArchive(files);
  let done = 0;
  while (done < out.length) done += await Deno.stdout.write(out.subarray(done));
}

/** Prints the envelope of `run` as JSON; any exception becomes status "error". */
export async function runLoader(
  source: string,
  run: () => Promise<LoaderEnvelope>,
): Promise<void> {
  let out: LoaderEnvelope;
  try {
    out = await run();
  } catch (err) {
    out = {
      status: "error",
      asOf: null,
      builtAt: new Date().toISOString(),
      source,
      message: err instanceof Error ? err.message : String(err),
      data: {},
    };
  }
  console.log(JSON.stringify(out));
}
