/**
 * node-postgres wiring: one pool factory and the two helpers every module
 * uses (borrow a client; run a function in a transaction).
 *
 * TLS: a URL's `sslmode` (LOGPIPE_POSTGRES_SSLMODE puts it there) is read
 * with libpq's meaning, as psql and dbt read it: `require` encrypts without
 * checking the certificate (with `sslrootcert`: checks the chain, as
 * verify-ca), `verify-ca` checks the chain, `verify-full` the chain and the
 * host name. node-postgres on its own would read `require` as verify-full.
 * One difference stays: `prefer` encrypts but cannot fall back to plain
 * text as libpq does.
 */
import pg from "pg";
import type { Config } from "../config.ts";
import { logger } from "../log.ts";

const log = logger("postgres");

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;

// Return bigint columns (count(*), offsets) as JS numbers when safe: our
// counts stay far below 2^53; numeric stays a string so money is exact.
pg.types.setTypeParser(20, (v: string) => {
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : v;
});

/**
 * The connection string node-postgres gets for `url`: with `sslmode` set,
 * libpq's meaning is asked for (pg-connection-string's `uselibpqcompat`).
 */
export function pgConnectionString(url: string): string {
  const u = new URL(url);
  if (u.searchParams.has("sslmode") && !u.searchParams.has("uselibpqcompat")) {
    u.searchParams.set("uselibpqcompat", "true");
  }
  return u.toString();
}

/** A pool on the configured database (owner role). */
export function createPool(
  config: Pick<Config, "postgres">,
  opts: { max?: number; applicationName?: string; url?: string } = {},
): Pool {
  const pool = new pg.Pool({
    connectionString: pgConnectionString(opts.url ?? config.postgres.url),
    max: opts.max ?? 5,
    application_name: opts.applicationName ?? "logpipe",
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 10_000,
  });
  // An idle pooled connection that the server drops (a restart, a crash,
  // an admin's terminate) is reported as an 'error' event on the pool; with
  // no listener that is an uncaught error and the whole process dies. The
  // pool has already discarded the client and the next query reconnects, so
  // log it and carry on: callers see errors of their own queries as usual.
  pool.on("error", (err) => {
    log.warn("idle PostgreSQL connection lost; the pool reconnects", {
      error: err.message,
    });
  });
  // The pool listens only to its idle clients. A client checked out but
  // between two queries when the server goes away (a crash mid-load) emits
  // the loss on itself, and with no listener that killed the batch process
  // at the end of a run that had retried and succeeded. Its next query
  // fails and the caller handles that; the event itself needs no action.
  pool.on("connect", (client) => {
    client.on("error", (err) => {
      log.debug("PostgreSQL connection lost while checked out", {
        error: err.message,
      });
    });
  });
  return pool;
}

/** Borrows a client for `fn` and always gives it back. */
export async function withClient<T>(
  pool: Pool,
  fn: (client: PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  try {
    return await fn(client);
  } finally {
    client.release();
  }
}

/** Runs `fn` in a transaction: commit on success, rollback on any error. */
export async function withTransaction<T>(
  pool: Pool,
  fn: (client: PoolClient) => Promise<T>,
): Promise<T> {
  return await withClient(pool, async (client) => {
    await client.query("begin");
    try {
      const out = await fn(client);
      await client.query("commit");
      return out;
    } catch (err) {
      await client.query("rollback").catch(() => {});
      throw err;
    }
  });
}

/** Opens one connection to `url`, runs `fn`, closes it. */
export async function withConnection<T>(
  url: string,
  fn: (client: pg.Client) => Promise<T>,
): Promise<T> {
  const client = new pg.Client({
    connectionString: pgConnectionString(url),
    connectionTimeoutMillis: 5_000,
  });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => {});
  }
}
