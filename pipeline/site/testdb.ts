/**
 * An isolated, migrated database for the API and site tests: the lead's
 * `createTestEnv` (pipeline/testing.ts) when it exists, otherwise a fresh
 * database created on the configured Postgres server and dropped afterwards.
 */
import pg from "pg";
import { type Config, loadConfig } from "../config.ts";
import { withConnection } from "../clients/postgres.ts";
import { migrate } from "../postgres/migrate.ts";

export interface TestDb {
  config: Config;
  env: Record<string, string>;
  pool: pg.Pool;
  cleanup(): Promise<void>;
}

/** Creates the test database; call cleanup() in a finally block. */
export async function createTestDb(name: string): Promise<TestDb> {
  try {
    const testing = await import("../testing.ts");
    const t = await testing.createTestEnv(name);
    const pool = new pg.Pool({
      connectionString: t.config.postgres.url,
      max: 4,
    });
    return {
      config: t.config,
      env: t.env,
      pool,
      async cleanup() {
        await pool.end();
        await t.cleanup();
      },
    };
  } catch (err) {
    if (
      !(err instanceof TypeError) && !String(err).includes("Module not found")
    ) throw err;
  }
  const base = loadConfig();
  const db = `logpipe_test_${name.replace(/\W/g, "_")}_${
    Date.now().toString(36)
  }`;
  await withConnection(
    base.postgres.url,
    (c) => c.query(`create database ${db}`),
  );
  const url = new URL(base.postgres.url);
  url.pathname = `/${db}`;
  const env = { LOGPIPE_DATABASE_URL: url.toString() };
  const config = loadConfig({ ...Deno.env.toObject(), ...env });
  await migrate(config);
  const pool = new pg.Pool({ connectionString: config.postgres.url, max: 4 });
  return {
    config,
    env,
    pool,
    async cleanup() {
      await pool.end();
      await withConnection(
        base.postgres.url,
        (c) => c.query(`drop database if exists ${db} with (force)`),
      );
    },
  };
}
