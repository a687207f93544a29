/**
 * The service probes: Kafka, HDFS and PostgreSQL, checked for real, in two
 * profiles. Verdicts on what a service answered are in verdicts.ts.
 *
 * - `quick` (the API's health page, polled every few seconds): a TCP
 *   connect to each broker, the NameNode's WebHDFS and JMX (safe mode, a
 *   DataNode that takes writes), `select 1` on a pool the caller already
 *   has; 1.5 s per probe.
 * - `strict` (the batch's `check_services`): Kafka's describeCluster must
 *   register the configured brokers, the same HDFS rule, `select 1` on a
 *   fresh connection; 10 s per probe. assertServicesUp then lets Kafka
 *   serve with the brokers acks=all writes need (a cluster keeps going
 *   with one broker of three down).
 *
 * Both profiles judge HDFS alike: with its only DataNode dead, the health
 * page shows HDFS down just as `check_services` fails.
 *
 * A failed probe's detail is redacted by default (no address, no raw
 * error: it can hold a user name or worse); the full error goes to the
 * log. The batch asks for raw details: they go to its operators.
 *
 * `deno task services status` uses the per-node probes below
 * (kafkaHealthy, nameNodeHealthy, dataNodeHealthy, postgresHealthy).
 */
import pg from "pg";
import type { Config } from "../config.ts";
import { deadline } from "../async.ts";
import { createKafka, topicReplication } from "../clients/kafka.ts";
import { pgConnectionString } from "../clients/postgres.ts";
import { createWebHdfs } from "../clients/webhdfs.ts";
import { type Logger, logger } from "../log.ts";
import {
  checkName,
  DATANODE_REJOINED_WITHIN_S,
  failingServices,
  hdfsVerdict,
  kafkaVerdicts,
  type NameNodeState,
  parseNameNodeInfo,
  type ProbedService,
  PublicProbeError,
  publicReason,
  type ServiceCheck,
  serviceLabel,
  servicesDown,
  splitAddress,
  usableDataNodes,
} from "./verdicts.ts";

/** How thoroughly to check: see the module's header. */
export type ProbeProfile = "quick" | "strict";

/** The default time each probe of a profile may take. */
export const PROFILE_TIMEOUT_MS: Record<ProbeProfile, number> = {
  quick: 1_500,
  strict: 10_000,
};

/** What `select 1` runs on: a pool or client the caller has. */
export interface Queryable {
  query(text: string): Promise<unknown>;
}

/** Options of checkServices. */
export interface CheckOptions {
  profile: ProbeProfile;
  /** Per probe (default PROFILE_TIMEOUT_MS of the profile). */
  timeoutMs?: number;
  /** The quick profile runs `select 1` on it; without it (and in strict), on a fresh connection. */
  db?: Queryable;
  /** A failed probe's detail (default publicReason: nothing a stranger may not read). */
  reason?: (err: unknown) => string;
  /** Where failures are logged with their address and full error (default component "probes"). */
  log?: Logger;
  /** application_name of a fresh PostgreSQL connection. */
  applicationName?: string;
}

/** `p` or a DeadlineError after `ms`, saying what timed out (for the log). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return deadline(p, ms, { message: `${what} timed out after ${ms} ms` });
}

async function timed(
  service: ProbedService,
  target: string,
  address: string,
  opts: Required<Pick<CheckOptions, "reason" | "log">>,
  probe: () => Promise<string>,
): Promise<ServiceCheck> {
  const start = performance.now();
  let up = false;
  let detail: string;
  try {
    detail = await probe();
    up = true;
  } catch (err) {
    detail = opts.reason(err);
    opts.log.warn("service check failed", {
      service,
      target,
      address,
      error: err,
    });
  }
  return {
    service,
    target,
    up,
    latencyMs: Math.round((performance.now() - start) * 10) / 10,
    detail,
    checkedAt: new Date().toISOString(),
  };
}

/** A TCP connection to `address` opens within `ms`. */
async function tcpConnects(address: string, ms: number): Promise<void> {
  const { host, port } = splitAddress(address);
  const connecting = Deno.connect({ hostname: host, port });
  try {
    (await within(connecting, ms, "connect")).close();
  } catch (err) {
    // A connection that opens after the deadline is closed, not leaked.
    connecting.then((c) => c.close(), () => {});
    throw err;
  }
}

/** The cluster's brokers as one describeCluster through the configured ones sees them. */
async function describeBrokers(
  config: Pick<Config, "kafka">,
  ms: number,
): Promise<Array<{ nodeId: number; host: string; port: number }>> {
  const admin = createKafka(config, { quiet: true, retries: 0 }).admin();
  try {
    await within(admin.connect(), ms, "connect");
    return (await within(admin.describeCluster(), ms, "describeCluster"))
      .brokers;
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

async function kafkaChecks(
  config: Config,
  profile: ProbeProfile,
  ms: number,
  opts: Required<Pick<CheckOptions, "reason" | "log">>,
): Promise<ServiceCheck[]> {
  const brokers = config.kafka.brokers;
  const role = (i: number) => `broker ${i + 1} of ${brokers.length}`;
  if (profile === "quick") {
    return await Promise.all(
      brokers.map((b, i) =>
        timed("kafka", role(i), b, opts, async () => {
          await tcpConnects(b, ms);
          return "broker accepts connections";
        })
      ),
    );
  }
  // One describeCluster serves every broker's verdict.
  const answer = describeBrokers(config, ms).then((registered) =>
    kafkaVerdicts(brokers, registered)
  );
  return await Promise.all(
    brokers.map((b, i) =>
      timed("kafka", role(i), b, opts, async () => {
        const verdict = (await answer)[i];
        if (!verdict.up) throw new PublicProbeError(verdict.detail);
        return verdict.detail;
      })
    ),
  );
}

/** One bean of the (active) NameNode's JMX over HTTP; undefined on an HTTP error. */
export async function nameNodeJmx(
  config: Pick<Config, "hdfs">,
  query: string,
  timeoutMs = 3_000,
): Promise<Record<string, unknown> | undefined> {
  const res = await createWebHdfs(config, { timeoutMs }).getNameNode(
    `/jmx?qry=${encodeURIComponent(query)}`,
  );
  if (!res.ok) {
    await res.body?.cancel();
    return undefined;
  }
  const j = await res.json() as { beans: Record<string, unknown>[] };
  return j.beans[0];
}

/**
 * The NameNode's safe mode and live DataNodes, after WebHDFS answered a
 * GETFILESTATUS of `path` (which also settles on the active NameNode of
 * several). Throws a PublicProbeError on an HTTP error answer.
 */
export async function nameNodeState(
  config: Pick<Config, "hdfs">,
  timeoutMs: number,
  path = "/",
): Promise<NameNodeState> {
  const hdfs = createWebHdfs(config, { timeoutMs });
  const status = await hdfs.request("GET", path, "GETFILESTATUS");
  await status.body?.cancel();
  // 404 still proves the NameNode answers (the root is made on first write).
  if (!status.ok && status.status !== 404) {
    throw new PublicProbeError(`NameNode answered HTTP ${status.status}`);
  }
  const jmx = await hdfs.getNameNode(
    `/jmx?qry=${
      encodeURIComponent("Hadoop:service=NameNode,name=NameNodeInfo")
    }`,
  );
  if (!jmx.ok) {
    await jmx.body?.cancel();
    throw new PublicProbeError(`NameNode JMX answered HTTP ${jmx.status}`);
  }
  const body = await jmx.json() as { beans?: Record<string, unknown>[] };
  return parseNameNodeInfo(body.beans?.[0]);
}

function postgresAddress(config: Pick<Config, "postgres">): string {
  const p = config.postgres;
  return `${p.host}:${p.port}/${p.database}`;
}

/** `select 1` on a fresh connection; resolves to the server's version. */
async function freshSelectOne(
  config: Pick<Config, "postgres">,
  ms: number,
  applicationName: string,
): Promise<string> {
  const client = new pg.Client({
    connectionString: pgConnectionString(config.postgres.url),
    connectionTimeoutMillis: ms,
    application_name: applicationName,
  });
  // A connection the server drops mid-check is an error event: it must not
  // end the process (the query's own rejection reports it).
  client.on("error", () => {});
  try {
    await client.connect();
    const res = await within(
      client.query<{ ok: number; version: string }>(
        "select 1 as ok, current_setting('server_version') as version",
      ),
      ms,
      "select 1",
    );
    if (res.rows[0]?.ok !== 1) throw new Error("select 1 answered no row");
    return res.rows[0].version;
  } finally {
    await client.end().catch(() => {});
  }
}

/** Checks every service once, all in parallel, under `opts.profile`. */
export async function checkServices(
  config: Config,
  opts: CheckOptions,
): Promise<ServiceCheck[]> {
  const ms = opts.timeoutMs ?? PROFILE_TIMEOUT_MS[opts.profile];
  const run = {
    reason: opts.reason ?? publicReason,
    log: opts.log ?? logger("probes"),
  };
  const db = opts.profile === "quick" ? opts.db : undefined;
  const [kafka, hdfs, postgres] = await Promise.all([
    kafkaChecks(config, opts.profile, ms, run),
    timed(
      "hdfs",
      "NameNode",
      config.hdfs.webhdfsUrl,
      run,
      async () =>
        hdfsVerdict(
          await within(
            nameNodeState(config, ms, config.hdfs.root),
            ms,
            "NameNode",
          ),
        ),
    ),
    timed("postgres", "database", postgresAddress(config), run, async () => {
      if (db) {
        await within(db.query("select 1"), ms, "select 1");
        return "select 1 ok";
      }
      const version = await freshSelectOne(
        config,
        ms,
        opts.applicationName ?? "logpipe-probe",
      );
      // The version only in strict: the quick profile feeds a public page.
      return opts.profile === "strict"
        ? `select 1 ok (PostgreSQL ${version})`
        : "select 1 ok";
    }),
  ]);
  return [...kafka, hdfs, postgres];
}

/** Some service cannot serve the pipeline; `checks` holds every result. */
export class ServicesDownError extends Error {
  override name = "ServicesDownError";
  constructor(
    readonly checks: ServiceCheck[],
    /** Labels of the services that cannot serve (`HDFS`), each once. */
    readonly down: string[] = servicesDown(checks),
  ) {
    super(
      `services down: ${
        checks.filter((c) => !c.up && down.includes(serviceLabel(c.service)))
          .map((c) => `${checkName(c, checks)} (${c.detail})`).join("; ")
      }`,
    );
  }
}

/**
 * The brokers acks=all writes need on the configured cluster: the topic's
 * min.insync.replicas (every configured broker when that cannot be worked
 * out, e.g. a replication factor above the number of bootstrap addresses).
 */
export function kafkaBrokersNeeded(config: Pick<Config, "kafka">): number {
  const configured = config.kafka.brokers.length;
  try {
    return Math.min(
      configured,
      topicReplication(config.kafka, configured).minInsyncReplicas,
    );
  } catch {
    return configured;
  }
}

/**
 * `checks`, or a ServicesDownError when a service cannot serve (see
 * failingServices: Kafka serves with `kafkaBrokersNeeded` brokers up).
 */
export function assertServicesUp(
  checks: ServiceCheck[],
  opts: { kafkaBrokersNeeded?: number } = {},
): ServiceCheck[] {
  const failing = failingServices(checks, opts.kafkaBrokersNeeded);
  if (failing.length) throw new ServicesDownError(checks, failing);
  return checks;
}

// --- Per-node probes of `deno task services up|status` -------------------

/**
 * Kafka healthy = the broker answers a metadata request with itself in it;
 * with `node`, asked of that node alone and it must be registered in the
 * cluster (a restarted node counts once it has rejoined).
 */
export async function kafkaHealthy(
  config: Pick<Config, "kafka">,
  node?: { id: number; port: number },
): Promise<boolean> {
  try {
    const brokers = await describeBrokers(
      node
        ? { kafka: { ...config.kafka, brokers: [`127.0.0.1:${node.port}`] } }
        : config,
      PROFILE_TIMEOUT_MS.strict,
    );
    return node
      ? brokers.some((b) => b.nodeId === node.id)
      : brokers.length > 0;
  } catch {
    return false;
  }
}

/** NameNode healthy = WebHDFS answers on / and safe mode is off (DataNodes aside). */
export async function nameNodeHealthy(
  config: Pick<Config, "hdfs">,
): Promise<boolean> {
  try {
    return !(await nameNodeState(config, 3_000)).safeMode;
  } catch {
    return false;
  }
}

/**
 * The DataNodes the NameNode counts live, by data-transfer address
 * (`127.0.0.1:9866`), with the seconds since each last heartbeat.
 */
export async function liveDataNodeAddresses(
  config: Pick<Config, "hdfs">,
): Promise<Map<string, number>> {
  const state = parseNameNodeInfo(
    await nameNodeJmx(config, "Hadoop:service=NameNode,name=NameNodeInfo"),
  );
  return new Map(
    state.liveDataNodes.filter((n) => n.xferaddr).map((n) => [
      n.xferaddr,
      n.lastContact,
    ]),
  );
}

/**
 * DataNode healthy = a DataNode takes writes (listed live and heard from
 * within the silence limit, as the service checks count it); with `node`,
 * that one, heard from within DATANODE_REJOINED_WITHIN_S (a killed DataNode
 * stays "live" for a minute in the NameNode's view).
 */
export async function dataNodeHealthy(
  config: Pick<Config, "hdfs">,
  node?: { data: number },
): Promise<boolean> {
  try {
    const state = parseNameNodeInfo(
      await nameNodeJmx(config, "Hadoop:service=NameNode,name=NameNodeInfo"),
    );
    if (!node) return usableDataNodes(state).length > 0;
    return usableDataNodes(state, DATANODE_REJOINED_WITHIN_S).some((n) =>
      n.xferaddr === `127.0.0.1:${node.data}`
    );
  } catch {
    return false;
  }
}

/** PostgreSQL healthy = a fresh connection answers `select 1`. */
export async function postgresHealthy(
  config: Pick<Config, "postgres">,
): Promise<boolean> {
  try {
    await freshSelectOne(
      config,
      PROFILE_TIMEOUT_MS.strict,
      "logpipe-services-status",
    );
    return true;
  } catch {
    return false;
  }
}

export {
  checkName,
  DATANODE_SILENCE_LIMIT_S,
  downCheck,
  PublicProbeError,
  publicReason,
  type ServiceCheck,
  serviceLabel,
  servicesDown,
} from "./verdicts.ts";
