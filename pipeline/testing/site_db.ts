/**
 * An isolated, migrated database for the API and site tests (with its own
 * topic and HDFS root, from `createTestEnv` in pipeline/testing/env.ts), and a
 * small pool on it.
 */
import pg from "pg";
import type { Config } from "../config.ts";
import { createTestEnv } from "./env.ts";

export interface TestDb {
  config: Config;
  env: Record<string, string>;
  pool: pg.Pool;
  cleanup(): Promise<void>;
}

/** Creates the test database; call cleanup() in a finally block. */
export async function createTestDb(name: string): Promise<TestDb> {
  const t = await createTestEnv(name);
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
}
