/**
 * The `check_services` task: Kafka, HDFS (the NameNode answers and at least
 * one DataNode is live, or writes would hang) and Postgres are healthy.
 * Every check runs with its own short timeout, all in parallel; a failure
 * names each service that is down and why.
 */
import pg from "pg";
import type { Config } from "../config.ts";
import { createKafka } from "../clients/kafka.ts";
import type { ServiceCheck } from "../notify/messages.ts";
import { errorText } from "./runner.ts";

/** The check failed for at least one service; `checks` has all results. */
export class ServicesDownError extends Error {
  override name = "ServicesDownError";
  constructor(readonly checks: ServiceCheck[]) {
    super(
      `services down: ${
        checks.filter((c) => !c.ok).map((c) => `${c.service} (${c.detail})`)
          .join("; ")
      }`,
    );
  }
  /** Names of the services that are down. */
  get down(): string[] {
    return this.checks.filter((c) => !c.ok).map((c) => c.service);
  }
}

function timeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      t = setTimeout(
        () => reject(new Error(`${what}: no answer in ${ms} ms`)),
        ms,
      );
    }),
  ]).finally(() => clearTimeout(t));
}

async function check(
  service: string,
  probe: () => Promise<string>,
): Promise<ServiceCheck> {
  try {
    return { service, ok: true, detail: await probe() };
  } catch (err) {
    return { service, ok: false, detail: errorText(err).slice(0, 300) };
  }
}

/** Kafka: a metadata request answered by the cluster. */
export async function probeKafka(config: Config, ms = 10_000): Promise<string> {
  const admin = createKafka(config, { quiet: true, retries: 0 }).admin();
  try {
    await timeout(admin.connect(), ms, "connect");
    const cluster = await timeout(
      admin.describeCluster(),
      ms,
      "describeCluster",
    );
    return `${cluster.brokers.length} broker(s), controller ${cluster.controller}`;
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

/** HDFS: NameNode answers WebHDFS, is out of safe mode, and has a live DataNode. */
export async function probeHdfs(config: Config, ms = 10_000): Promise<string> {
  const base = config.hdfs.webhdfsUrl.replace(/\/+$/, "");
  const status = await fetch(
    `${base}/webhdfs/v1/?op=GETFILESTATUS&user.name=${
      encodeURIComponent(config.hdfs.user)
    }`,
    { signal: AbortSignal.timeout(ms) },
  );
  await status.body?.cancel();
  if (!status.ok) throw new Error(`NameNode answered HTTP ${status.status}`);
  const jmx = await fetch(
    `${base}/jmx?qry=Hadoop:service=NameNode,name=FSNamesystemState`,
    { signal: AbortSignal.timeout(ms) },
  );
  if (!jmx.ok) {
    await jmx.body?.cancel();
    throw new Error(`NameNode JMX answered HTTP ${jmx.status}`);
  }
  const bean = (await jmx.json())?.beans?.[0] ?? {};
  const live = Number(bean.NumLiveDataNodes ?? 0);
  if (live < 1) throw new Error("NameNode is up but no DataNode is live");
  if (bean.FSState && bean.FSState !== "Operational") {
    throw new Error(`NameNode is in safe mode (${bean.FSState})`);
  }
  return `NameNode up, ${live} live DataNode(s)`;
}

/** Postgres: a fresh connection answers `select 1`. */
export async function probePostgres(
  config: Config,
  ms = 10_000,
): Promise<string> {
  const client = new pg.Client({
    connectionString: config.postgres.url,
    connectionTimeoutMillis: ms,
    application_name: "logpipe-batch-check",
  });
  client.on("error", () => {});
  try {
    await client.connect();
    const res: { rows: Array<{ server_version: string }> } = await timeout(
      client.query("show server_version"),
      ms,
      "query",
    );
    return `PostgreSQL ${res.rows[0].server_version}`;
  } finally {
    await client.end().catch(() => {});
  }
}

/** Checks all three; throws ServicesDownError naming those down. */
export async function checkServices(
  config: Config,
  ms = 10_000,
): Promise<ServiceCheck[]> {
  const checks = await Promise.all([
    check("Kafka", () => probeKafka(config, ms)),
    check("HDFS", () => probeHdfs(config, ms)),
    check("PostgreSQL", () => probePostgres(config, ms)),
  ]);
  if (checks.some((c) => !c.ok)) throw new ServicesDownError(checks);
  return checks;
}
