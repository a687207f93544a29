/**
 * `deno task services up|down|status`: the local Kafka, HDFS (NameNode +
 * DataNode) and PostgreSQL, as background processes whose state and logs
 * live under LOGPIPE_HOME. A service whose LOGPIPE_* URL is set is external:
 * never started or stopped here, only health-checked.
 *
 * With LOGPIPE_CLUSTER=1 (`services up --cluster`) the local Kafka is three
 * nodes (`kafka`, `kafka-2`, `kafka-3`) and HDFS has a second DataNode
 * (`datanode-2`); each is a service of its own here, so a test can kill and
 * restart one node.
 */
import { clusterMarkerPath, type Config, loadConfig } from "../config.ts";
import { ensureTopic } from "../clients/kafka.ts";
import { createWebHdfs } from "../clients/webhdfs.ts";
import { migrate } from "../postgres/migrate.ts";
import {
  dataNodeHealthy,
  kafkaHealthy,
  nameNodeHealthy,
  postgresHealthy,
} from "../probes/probes.ts";
import { type KafkaNode, kafkaNode, startKafka } from "./kafka.ts";
import {
  type DataNode,
  dataNode,
  startDataNode,
  startNameNode,
} from "./hdfs.ts";
import {
  bootstrapRoles,
  postgresPid,
  startPostgres,
  stopPostgres,
} from "./postgres.ts";
import { logFile, pidFile, servicePaths } from "./paths.ts";
import { rotateLog } from "../log.ts";
import {
  childPids,
  killHard,
  portIsFree,
  readLivePid,
  sleep,
  stopProcess,
  tailFile,
  waitFor,
} from "./process.ts";

export type ServiceName =
  | "postgres"
  | "namenode"
  | "datanode"
  | "datanode-2"
  | "kafka"
  | "kafka-2"
  | "kafka-3";
/** The services of one node each (the default). */
export const SERVICE_NAMES: ServiceName[] = [
  "postgres",
  "namenode",
  "datanode",
  "kafka",
];
/** The services of the local cluster (LOGPIPE_CLUSTER=1). */
export const CLUSTER_SERVICE_NAMES: ServiceName[] = [
  "postgres",
  "namenode",
  "datanode",
  "datanode-2",
  "kafka",
  "kafka-2",
  "kafka-3",
];

/** The services `config` runs: one node each, or the cluster. */
export function serviceNames(config: Pick<Config, "cluster">): ServiceName[] {
  return config.cluster ? CLUSTER_SERVICE_NAMES : SERVICE_NAMES;
}

interface ServiceSpec {
  name: ServiceName;
  label: string;
  ports: (c: Config) => number[];
  address: (c: Config) => string;
  external: (c: Config) => boolean;
  pid: (c: Config) => number | undefined;
  start: (c: Config) => Promise<number>;
  stop: (c: Config, hard: boolean) => Promise<void>;
  healthy: (c: Config) => Promise<boolean>;
}

async function stopByPidFile(
  c: Config,
  name: string,
  hard: boolean,
): Promise<void> {
  const pid = readLivePid(pidFile(c, name));
  if (pid) await (hard ? killHard(pid) : stopProcess(pid));
  await Deno.remove(pidFile(c, name)).catch(() => {});
}

/** One Kafka node as a service (in external mode: the configured brokers). */
function kafkaSpec(name: KafkaNode["name"], label: string): ServiceSpec {
  return {
    name,
    label,
    ports: (c) => {
      const n = kafkaNode(c, name);
      return [n.port, n.controllerPort];
    },
    address: (c) =>
      c.kafka.external
        ? c.kafka.brokers.join(",")
        : `127.0.0.1:${kafkaNode(c, name).port}`,
    external: (c) => c.kafka.external,
    pid: (c) => readLivePid(pidFile(c, name)),
    start: (c) => startKafka(c, kafkaNode(c, name)),
    stop: (c, hard) => stopByPidFile(c, name, hard),
    // A node of the cluster is healthy once it has (re)joined it.
    healthy: (c) =>
      c.kafka.external ? kafkaHealthy(c) : kafkaHealthy(c, kafkaNode(c, name)),
  };
}

/** One DataNode as a service. */
function dataNodeSpec(name: DataNode["name"], label: string): ServiceSpec {
  return {
    name,
    label,
    ports: (c) => {
      const n = dataNode(c, name);
      return [n.http, n.data, n.ipc];
    },
    address: (c) => `127.0.0.1:${dataNode(c, name).http}`,
    external: (c) => c.hdfs.external,
    pid: (c) => readLivePid(pidFile(c, name)),
    start: (c) => startDataNode(c, dataNode(c, name)),
    stop: (c, hard) => stopByPidFile(c, name, hard),
    // One node: any live DataNode (as before). A cluster: this one.
    healthy: (c) =>
      c.cluster && !c.hdfs.external
        ? dataNodeHealthy(c, dataNode(c, name))
        : dataNodeHealthy(c),
  };
}

export const SERVICES: Record<ServiceName, ServiceSpec> = {
  postgres: {
    name: "postgres",
    label: "PostgreSQL",
    ports: (c) => [c.ports.postgres],
    address: (c) =>
      `${c.postgres.host}:${c.postgres.port}/${c.postgres.database}`,
    external: (c) => c.postgres.external,
    pid: (c) => postgresPid(c),
    start: (c) => startPostgres(c),
    stop: async (c, hard) => {
      const pid = postgresPid(c);
      if (hard && pid) {
        // A crash, as kill -9 of the postmaster is: its backends go down with
        // it (they would anyway, on noticing), so a restart finds no old
        // shared memory in use and runs crash recovery from the WAL.
        const children = childPids(pid);
        await killHard(pid);
        await Promise.all(children.map(killHard));
      } else await stopPostgres(c);
    },
    // Before bootstrap the owner password may not exist yet: the postmaster
    // pid answering is enough to proceed to bootstrap, then we check SQL.
    healthy: postgresHealthy,
  },
  namenode: {
    name: "namenode",
    label: "HDFS NameNode",
    ports: (c) => [c.ports.namenodeHttp, c.ports.namenodeRpc],
    address: (c) => c.hdfs.webhdfsUrl,
    external: (c) => c.hdfs.external,
    pid: (c) => readLivePid(pidFile(c, "namenode")),
    start: (c) => startNameNode(c),
    stop: (c, hard) => stopByPidFile(c, "namenode", hard),
    healthy: (c) => nameNodeHealthy(c),
  },
  datanode: dataNodeSpec("datanode", "HDFS DataNode"),
  "datanode-2": dataNodeSpec("datanode-2", "HDFS DataNode 2"),
  kafka: kafkaSpec("kafka", "Kafka"),
  "kafka-2": kafkaSpec("kafka-2", "Kafka 2"),
  "kafka-3": kafkaSpec("kafka-3", "Kafka 3"),
};

/** Raised when a service cannot start or become healthy; carries its log tail. */
export class ServiceError extends Error {
  override name = "ServiceError";
}

export interface UpOptions {
  timeoutMs?: number;
  say?: (line: string) => void;
  /** Only these services (default all). */
  only?: ServiceName[];
}

/** The gid of the Postgres server's OS user's group, if there is one. */
function serverGroupId(): number | undefined {
  try {
    const m = /^postgres:[^:]*:(\d+):/m.exec(
      Deno.readTextFileSync("/etc/group"),
    );
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Creates the state folders, private to their owner: passwords, data and
 * logs live there. As root, Postgres runs as the `postgres` OS user and must
 * reach its data folder and its log, so the folders on its way (the state
 * folder, logs/ and postgres/) are group `postgres` and traverse-only for
 * it (0710): it can open what it owns there, list nothing, and nobody else
 * gets in at all.
 */
export function ensureDirs(c: Pick<Config, "localDir">): void {
  const p = servicePaths(c);
  const asRoot = Deno.uid() === 0;
  const gid = asRoot ? serverGroupId() : undefined;
  for (const d of [p.root, p.logs, p.run, p.postgres.dir]) {
    Deno.mkdirSync(d, { recursive: true, mode: 0o700 });
  }
  for (const d of [p.root, p.logs, p.postgres.dir]) {
    if (!asRoot) Deno.chmodSync(d, 0o700);
    else if (gid !== undefined) {
      Deno.chownSync(d, 0, gid);
      Deno.chmodSync(d, 0o710);
    } // No postgres group: Postgres needs traverse rights from "others".
    else Deno.chmodSync(d, 0o711);
  }
  Deno.chmodSync(p.run, 0o700);
}

/** Checks that the ports a service needs are not held by something else. */
function assertPortsFree(spec: ServiceSpec, config: Config): void {
  for (const port of spec.ports(config)) {
    if (!portIsFree(port)) {
      throw new ServiceError(
        `port ${port} on 127.0.0.1 is already in use by another process (${spec.label} needs it); stop that process or set the service's LOGPIPE_* URL to use it externally`,
      );
    }
  }
}

/** Starts one local service if it is not running; returns "started" | "running" | "external". */
export async function startService(
  name: ServiceName,
  config = loadConfig(),
  opts: UpOptions = {},
): Promise<"started" | "running" | "external"> {
  const spec = SERVICES[name];
  if (spec.external(config)) return "external";
  ensureDirs(config);
  if (spec.pid(config)) return "running";
  assertPortsFree(spec, config);
  // A service's log grows while it runs (deno task up rotates it every
  // minute); a start is a good moment to bound it too.
  rotateLog(logFile(config, name));
  try {
    await spec.start(config);
  } catch (err) {
    throw new ServiceError(
      `${spec.label} failed to start: ${
        err instanceof Error ? err.message : err
      }\n--- ${logFile(config, name)} (tail) ---\n${
        tailFile(logFile(config, name))
      }`,
    );
  }
  opts.say?.(`${spec.label}: started (pid ${spec.pid(config) ?? "?"})`);
  return "started";
}

/** Stops one local service (hard = SIGKILL, for crash tests). */
export async function stopService(
  name: ServiceName,
  config = loadConfig(),
  opts: { hard?: boolean } = {},
): Promise<void> {
  const spec = SERVICES[name];
  if (spec.external(config)) return;
  await spec.stop(config, opts.hard ?? false);
}

/** Waits until a service is healthy or throws with the tail of its log. */
export async function waitHealthy(
  name: ServiceName,
  config: Config,
  timeoutMs = 180_000,
): Promise<void> {
  const spec = SERVICES[name];
  const deadline = Date.now() + timeoutMs;
  let ok = false;
  while (Date.now() < deadline) {
    // A local process that exited will never become healthy: fail at once.
    if (!spec.external(config) && !spec.pid(config)) break;
    if (await spec.healthy(config).catch(() => false)) {
      ok = true;
      break;
    }
    await sleep(500);
  }
  if (!ok) {
    const alive = spec.external(config) || spec.pid(config) !== undefined;
    throw new ServiceError(
      `${spec.label} at ${spec.address(config)} is not healthy ${
        alive
          ? `after ${Math.round(timeoutMs / 1000)} s`
          : "(the process exited)"
      }${
        spec.external(config)
          ? ""
          : `\n--- ${logFile(config, name)} (tail) ---\n${
            tailFile(logFile(config, name))
          }`
      }`,
    );
  }
}

/**
 * Brings every service up (idempotent), waits for real health, then creates
 * what the pipeline needs: roles and database, migrations, the topic, the
 * HDFS zones, and proves an HDFS write works. Returns the fresh config (the
 * database password may have been generated just now).
 */
export async function servicesUp(opts: UpOptions = {}): Promise<Config> {
  const config = loadConfig();
  ensureDirs(config);
  return await withServicesLock(config, () => servicesUpLocked(opts));
}

/**
 * Serialises `up` and `down` across processes (several test runs or team
 * members may call `up` at once): an exclusive lock on a file in run/.
 */
async function withServicesLock<T>(
  config: Config,
  fn: () => Promise<T>,
): Promise<T> {
  const file = await Deno.open(`${servicePaths(config).run}/services.lock`, {
    create: true,
    write: true,
  });
  try {
    await file.lock(true);
    return await fn();
  } finally {
    await file.unlock().catch(() => {});
    file.close();
  }
}

async function servicesUpLocked(opts: UpOptions): Promise<Config> {
  const say = opts.say ?? (() => {});
  let config = loadConfig();
  const names = opts.only ?? serviceNames(config);
  const timeout = opts.timeoutMs ?? 180_000;
  if (config.cluster && !config.kafka.external) {
    const single = `${servicePaths(config).kafka.data}/meta.properties`;
    let hasSingleNode = false;
    try {
      hasSingleNode = Deno.statSync(single).isFile;
    } catch { /* none */ }
    if (hasSingleNode) {
      // Its node 1 is a quorum of one: it cannot become one of three voters.
      throw new ServiceError(
        `${config.localDir} holds a single-node Kafka (${single}); start the cluster in another LOGPIPE_HOME, or stop the services and delete ${
          servicePaths(config).kafka.dir
        } (its topics are lost)`,
      );
    }
  }
  if (config.cluster) {
    // From now on every command on this state folder sees the cluster.
    Deno.writeTextFileSync(
      clusterMarkerPath(config.localDir),
      "3 Kafka nodes, 2 DataNodes (LOGPIPE_CLUSTER=1)\n",
    );
  }

  // Postgres first: its roles must exist before the health check can log in.
  if (names.includes("postgres")) {
    const state = await startService("postgres", config, opts);
    if (state === "running") say("PostgreSQL: already running");
    if (state !== "external") {
      await bootstrapRoles(config);
      config = loadConfig(); // picks up a newly generated password
    }
  }
  // The JVMs start in parallel; each takes a few seconds to come up.
  const jvms = names.filter((n) => n !== "postgres");
  const started = await Promise.all(jvms.map(async (n) => {
    // A DataNode registers with the NameNode: give the NameNode a head start.
    if (n.startsWith("datanode") && jvms.includes("namenode")) {
      await waitHealthy("namenode", config, timeout).catch(() => {});
    }
    return [n, await startService(n, config, opts)] as const;
  }));
  for (const [n, state] of started) {
    if (state === "running") say(`${SERVICES[n].label}: already running`);
  }
  await Promise.all(names.map((n) => waitHealthy(n, config, timeout)));

  if (names.includes("postgres")) {
    const m = await migrate(config);
    if (m.applied.length) {
      say(`PostgreSQL: applied migrations ${m.applied.join(", ")}`);
    }
  }
  if (names.includes("kafka")) {
    if (await ensureTopic(config)) {
      say(
        `Kafka: created topic ${config.kafka.topic} (${config.kafka.partitions} partitions)`,
      );
    }
  }
  if (names.includes("namenode") || names.includes("datanode")) {
    await prepareHdfsZones(config);
  }
  return config;
}

/** Creates the HDFS zones and proves a write round-trips (so a DataNode is live). */
export async function prepareHdfsZones(config: Config): Promise<void> {
  const hdfs = createWebHdfs(config);
  for (
    const dir of [
      config.hdfs.rawDir,
      config.hdfs.deadLetterDir,
      config.hdfs.exportsDir,
    ]
  ) {
    await hdfs.mkdirs(dir);
  }
  const probe = `${config.hdfs.root}/_tmp/health-${crypto.randomUUID()}`;
  const ok = await waitFor(
    async () => {
      await hdfs.create(probe, "ok", { overwrite: true });
      const back = await hdfs.readText(probe);
      await hdfs.delete(probe);
      return back === "ok";
    },
    60_000,
    1_000,
  );
  if (!ok) {
    throw new ServiceError(`HDFS write probe to ${probe} failed for 60 s`);
  }
}

/** Stops every local service this project started (reverse order). */
export async function servicesDown(
  opts: { say?: (line: string) => void; config?: Config } = {},
): Promise<void> {
  const config = opts.config ?? loadConfig();
  ensureDirs(config);
  await withServicesLock(config, async () => {
    // Every node that has a live pid file, cluster or not: nothing this
    // state folder started is left behind.
    for (
      const name of [
        "kafka-3",
        "kafka-2",
        "kafka",
        "datanode-2",
        "datanode",
        "namenode",
        "postgres",
      ] as ServiceName[]
    ) {
      const spec = SERVICES[name];
      if (spec.external(config)) continue;
      const pid = spec.pid(config);
      if (!pid) continue;
      await spec.stop(config, false);
      opts.say?.(`${spec.label}: stopped (pid ${pid})`);
    }
  });
}

export interface ServiceStatus {
  name: ServiceName;
  label: string;
  mode: "local" | "external";
  up: boolean;
  address: string;
  pid?: number;
}

/** One status row per service (health checked for real). */
export async function servicesStatus(
  config = loadConfig(),
): Promise<ServiceStatus[]> {
  return await Promise.all(
    serviceNames(config).map(async (name) => {
      const spec = SERVICES[name];
      const external = spec.external(config);
      const pid = external ? undefined : spec.pid(config);
      const up = (external || pid !== undefined) && await spec.healthy(config);
      return {
        name,
        label: spec.label,
        mode: external ? "external" as const : "local" as const,
        up,
        address: spec.address(config),
        pid,
      };
    }),
  );
}
