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
        `select max(ended_at) as t from ops.dag_runs where state = 'success'`,
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

/**
 * Downloads `tables` of the latest export (HDFS, via WebHDFS) and runs each
 * query in DuckDB, where each table is a view of its Parquet file.
 */
export async function queryExports(
  config: Config,
  tables: string[],
  queries: Record<string, string>,
): Promise<LoaderEnvelope> {
  const hdfs = createWebHdfs(config, { timeoutMs: 15_000 });
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
  try {
    const manifest = JSON.parse(await hdfs.readText(`${dir}/_manifest.json`));
    asOf = manifest.exported_at ?? null;
  } catch {
    // an export without manifest: no "as of" time
  }
  const work = await Deno.makeTempDir({ prefix: "logpipe-site-" });
  const duck = await DuckDBInstance.create(":memory:", { threads: "2" });
  const conn = await duck.connect();
  let missing = false;
  try {
    await conn.run("SET TimeZone = 'UTC'");
    for (const table of tables) {
      if (!/^[a-z_][a-z0-9_]*$/.test(table)) {
        throw new Error(`bad table name ${table}`);
      }
      try {
        const bytes = await hdfs.read(`${dir}/${table}.parquet`);
        await Deno.writeFile(`${work}/${table}.parquet`, bytes);
        await conn.run(
          `create view ${table} as select * from read_parquet('${work}/${table}.parquet')`,
        );
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
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
  return envelope(source, data, asOf, errors, missing);
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
