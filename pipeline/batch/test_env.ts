/**
 * Isolated integration-test environment for the batch tests: its own
 * Postgres database (migrated), HDFS root and Kafka topic name, plus the
 * LOGPIPE_* variables for subprocesses. Stand-in with the same shape as the
 * lead's `pipeline/testing.ts` `createTestEnv` (switch to it once it lands).
 */
import pg from "pg";
import { type Config, loadConfig } from "../config.ts";
import { createWebHdfs } from "../clients/webhdfs.ts";
import { migrate } from "../postgres/migrate.ts";

/** One test's private slice of the real services. */
export interface BatchTestEnv {
  config: Config;
  env: Record<string, string>;
  cleanup(): Promise<void>;
}

/** Creates database `logpipe_t_<name>_<rand>` and HDFS root `/logpipe-test/<same>`. */
export async function createBatchTestEnv(
  name: string,
  extra: Record<string, string> = {},
): Promise<BatchTestEnv> {
  const base = loadConfig();
  const id = `${name.replace(/[^a-z0-9_]/gi, "_").toLowerCase()}_${
    crypto.randomUUID().slice(0, 8)
  }`;
  const db = `logpipe_t_${id}`.slice(0, 60);
  const admin = new pg.Client({ connectionString: base.postgres.url });
  await admin.connect();
  try {
    await admin.query(`create database "${db}"`);
  } finally {
    await admin.end();
  }
  const url = new URL(base.postgres.url);
  url.pathname = `/${db}`;
  const env: Record<string, string> = {
    LOGPIPE_DATABASE_URL: url.toString(),
    LOGPIPE_HDFS_ROOT: `/logpipe-test/${id}`,
    LOGPIPE_TOPIC: `t_${id}`,
    LOGPIPE_WEBHDFS_URL: base.hdfs.webhdfsUrl,
    LOGPIPE_KAFKA_BROKERS: base.kafka.brokers.join(","),
    LOGPIPE_HOME: base.localDir,
    ...extra,
  };
  const config = loadConfig({ ...Deno.env.toObject(), ...env });
  await migrate(config);
  return {
    config,
    env,
    async cleanup() {
      await createWebHdfs(config).delete(config.hdfs.root, { recursive: true })
        .catch(() => {});
      const c = new pg.Client({ connectionString: base.postgres.url });
      await c.connect();
      try {
        await c.query(`drop database if exists "${db}" with (force)`);
      } finally {
        await c.end();
      }
    },
  };
}
