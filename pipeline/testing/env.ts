/**
 * Integration-test support: every test gets its own Kafka topic, HDFS root
 * and PostgreSQL database (migrated), on the REAL shared services, so tests
 * never see each other's data and can run beside a running pipeline.
 *
 *   const t = await createTestEnv("consumer_crash");
 *   try { ... spawn tasks with { env: t.env } ... } finally { await t.cleanup(); }
 */
import { retry } from "../async.ts";
import { type Config, loadConfig, setting } from "../config.ts";
import { deleteTopic, ensureTopic } from "../clients/kafka.ts";
import { createWebHdfs } from "../clients/webhdfs.ts";
import { withConnection } from "../clients/postgres.ts";
import { migrate } from "../postgres/migrate.ts";
import { servicesStatus } from "../services/manager.ts";

export interface TestEnv {
  /** Short unique id (lowercase letters, digits, _). */
  id: string;
  /** Configuration pointing at this test's topic, HDFS root and database. */
  config: Config;
  /** The LOGPIPE_* variables that give a subprocess the same configuration. */
  env: Record<string, string>;
  /** Deletes the topic, the HDFS root and the database. */
  cleanup(): Promise<void>;
}

export interface TestEnvOptions {
  partitions?: number;
  /** Skip creating the topic (a test of topic creation itself). */
  noTopic?: boolean;
  /**
   * Extra LOGPIPE_* variables for the environment's config and env, applied
   * after the topic, HDFS root and database are prepared (e.g. a WebHDFS URL
   * where nothing listens, to test an HDFS outage).
   */
  env?: Record<string, string>;
}

/** Throws a clear error when the shared services are not up. */
export async function requireServices(config = loadConfig()): Promise<void> {
  const down = (await servicesStatus(config)).filter((s) => !s.up);
  if (down.length) {
    throw new Error(
      `services not up: ${
        down.map((s) => s.label).join(", ")
      }; run \`deno task services up\` (deno task test does it for you)`,
    );
  }
}

/** Creates an isolated environment named after the test. */
export async function createTestEnv(
  name: string,
  opts: TestEnvOptions = {},
): Promise<TestEnv> {
  const base = loadConfig();
  const rand = crypto.randomUUID().replaceAll("-", "").slice(0, 8);
  const id = `${
    name.toLowerCase().replace(/[^a-z0-9]+/g, "_").slice(0, 30)
  }_${rand}`;
  const database = `lp_${id}`;
  const dbUrl = new URL(base.postgres.url);
  dbUrl.pathname = `/${database}`;
  const env: Record<string, string> = {
    LOGPIPE_HOME: base.localDir,
    LOGPIPE_TOPIC: `LogEvents_${id}`,
    LOGPIPE_TOPIC_PARTITIONS: String(opts.partitions ?? base.kafka.partitions),
    LOGPIPE_CONSUMER_GROUP: `logpipe-hdfs-sink-${id}`,
    LOGPIPE_HDFS_ROOT: `/logpipe-test/${id}`,
    LOGPIPE_DATABASE_URL: dbUrl.toString(),
    // A test's batch runs must not rebuild the project's site (dist/).
    LOGPIPE_SITE_PUBLISH: "false",
  };
  const prepared = loadConfig({ ...Deno.env.toObject(), ...env });

  await withConnection(base.postgres.url, async (c) => {
    await c.query(`create database "${database}"`);
  });
  await migrate(prepared);
  const hdfs = createWebHdfs(prepared);
  for (
    const dir of [
      prepared.hdfs.rawDir,
      prepared.hdfs.deadLetterDir,
      prepared.hdfs.exportsDir,
    ]
  ) {
    await hdfs.mkdirs(dir);
  }
  if (!opts.noTopic) await ensureTopic(prepared);
  // Overrides apply to what the test sees, not to the preparation above.
  Object.assign(env, opts.env ?? {});
  const config = opts.env
    ? loadConfig({ ...Deno.env.toObject(), ...env })
    : prepared;

  return {
    id,
    config,
    env,
    async cleanup() {
      if (setting("LOGPIPE_KEEP_TEST_DATA") === "1") return;
      const errors: string[] = [];
      await deleteTopic(prepared, prepared.kafka.topic).catch((e) =>
        errors.push(`topic: ${e}`)
      );
      await hdfs.delete(prepared.hdfs.root, { recursive: true }).catch((e) =>
        errors.push(`hdfs: ${e}`)
      );
      // FORCE cannot end an autovacuum worker (a superuser process) that
      // happens to be on the database: wait a moment and try again.
      await retry(
        () =>
          withConnection(base.postgres.url, async (c) => {
            await c.query(`drop database if exists "${database}" with (force)`);
          }),
        { maxAttempts: 5, minTimeout: 1_000, maxTimeout: 4_000 },
      ).catch((e) => errors.push(`postgres: ${e}`));
      if (errors.length) {
        console.error(`test env ${id} cleanup: ${errors.join("; ")}`);
      }
    },
  };
}

/** Runs a deno task entry point (tasks/<file>) with the test env; returns code and output. */
export async function runTask(
  t: Pick<TestEnv, "env">,
  file: string,
  args: string[] = [],
  opts: { stdin?: Uint8Array; extraEnv?: Record<string, string> } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const root = new URL("../..", import.meta.url).pathname; // the project root
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${root}tasks/${file}`, ...args],
    cwd: root,
    env: { ...t.env, ...opts.extraEnv },
    stdin: opts.stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (opts.stdin) {
    const w = child.stdin.getWriter();
    await w.write(opts.stdin);
    await w.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}
