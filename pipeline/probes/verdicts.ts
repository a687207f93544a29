/**
 * What a service probe concludes from what a service answered: plain data
 * in, a verdict out, so every rule is tested without a network. The probes
 * that fetch the answers are in probes.ts.
 *
 * One `ServiceCheck` type serves every reader: the API's health page, the
 * batch's `check_services` (and its "Service Failure Alert" e-mail), and
 * `deno task services status`.
 */
import { DeadlineError } from "../async.ts";

/** The services the pipeline depends on, as checks name them. */
export type ProbedService = "kafka" | "hdfs" | "postgres";

/** How operators read each service's name (e-mails, errors). */
export const SERVICE_LABELS: Record<ProbedService, string> = {
  kafka: "Kafka",
  hdfs: "HDFS",
  postgres: "PostgreSQL",
};

/** One service instance, checked once. */
export interface ServiceCheck {
  /** `unknown`: a failure no probe could attribute (the batch's fallback). */
  service: ProbedService | "unknown";
  /** Which instance, by role (`broker 1 of 2`, `NameNode`, `database`), never by address. */
  target: string;
  up: boolean;
  latencyMs: number;
  /** What it answered, or why it counts as down (redacted unless the caller chose otherwise). */
  detail: string;
  checkedAt: string;
}

/** A check that failed before any probe ran (e.g. the run lock's database error). */
export function downCheck(
  service: ServiceCheck["service"],
  target: string,
  detail: string,
): ServiceCheck {
  return {
    service,
    target,
    up: false,
    latencyMs: 0,
    detail,
    checkedAt: new Date().toISOString(),
  };
}

/** The name operators read for a service (`HDFS`), or the raw name. */
export function serviceLabel(service: ServiceCheck["service"]): string {
  return service === "unknown" ? service : SERVICE_LABELS[service];
}

/**
 * How a check is named among `all`: the service's label, with the role
 * when the service has several checks (`Kafka broker 2 of 3`).
 */
export function checkName(c: ServiceCheck, all: ServiceCheck[]): string {
  const several = all.filter((o) => o.service === c.service).length > 1;
  return several
    ? `${serviceLabel(c.service)} ${c.target}`
    : serviceLabel(c.service);
}

/** Labels of the services with at least one check down, each once, in order. */
export function servicesDown(checks: ServiceCheck[]): string[] {
  return [
    ...new Set(checks.filter((c) => !c.up).map((c) => serviceLabel(c.service))),
  ];
}

/**
 * The services that cannot serve the pipeline, as labels, each once, in
 * order: any with a check down, except Kafka, which serves while at least
 * `kafkaBrokersNeeded` of its brokers are up (default: all). acks=all
 * writes need min.insync.replicas brokers, so a cluster of three with one
 * broker down keeps going, and so does the batch.
 */
export function failingServices(
  checks: ServiceCheck[],
  kafkaBrokersNeeded?: number,
): string[] {
  const kafka = checks.filter((c) => c.service === "kafka");
  const kafkaServes =
    kafka.filter((c) => c.up).length >= (kafkaBrokersNeeded ?? kafka.length);
  return servicesDown(
    checks.filter((c) => c.service !== "kafka" || !kafkaServes),
  );
}

/** A failure whose message anyone may read (it names no host and no secret). */
export class PublicProbeError extends Error {
  override name = "PublicProbeError";
}

/** A reason for a failed probe that is safe to show anyone. */
export function publicReason(err: unknown): string {
  if (err instanceof PublicProbeError) return err.message;
  if (err instanceof DeadlineError) return "no answer in time";
  const text = err instanceof Error
    ? `${err.name} ${err.message} ${(err as { code?: string }).code ?? ""}`
    : String(err);
  if (/timed? ?out|TimeoutError/i.test(text)) return "no answer in time";
  if (/refused|ECONNREFUSED/i.test(text)) return "connection refused";
  if (/password|authentication|28P01|28000/i.test(text)) {
    return "login refused";
  }
  if (/ENOTFOUND|EAI_AGAIN|dns|resolve|lookup/i.test(text)) {
    return "host name not found";
  }
  return "unreachable (details in the log)";
}

/** A DataNode as the NameNode lists it live. */
export interface LiveDataNode {
  /** Data-transfer address (`127.0.0.1:9866`). */
  xferaddr: string;
  /** Seconds since its last heartbeat. */
  lastContact: number;
  /** `In Service`, `Decommissioned`, … */
  adminState: string;
}

/** What the NameNode says about itself and its DataNodes. */
export interface NameNodeState {
  /** Empty when out of safe mode; the NameNode's own sentence otherwise. */
  safeMode: string;
  liveDataNodes: LiveDataNode[];
}

/** The NameNode's `NameNodeInfo` JMX bean (LiveNodes is a JSON string in it). */
export function parseNameNodeInfo(
  bean: Record<string, unknown> | undefined,
): NameNodeState {
  const live = JSON.parse(String(bean?.LiveNodes ?? "{}")) as Record<
    string,
    { xferaddr?: string; lastContact?: number; adminState?: string }
  >;
  return {
    safeMode: String(bean?.Safemode ?? ""),
    liveDataNodes: Object.values(live).map((n) => ({
      xferaddr: n.xferaddr ?? "",
      lastContact: Number(n.lastContact ?? 0),
      adminState: n.adminState ?? "In Service",
    })),
  };
}

/**
 * A DataNode silent longer than this is not counted live by the service
 * checks, although the NameNode still lists it: HDFS's own default stale
 * interval (`dfs.namenode.stale.datanode.interval`, 30 s), after which the
 * NameNode itself stops sending writes to it. Declaring it dead takes the
 * NameNode 60 s here and 10.5 minutes with Hadoop's defaults: far too long
 * for a health page to stay green while writes hang.
 */
export const DATANODE_SILENCE_LIMIT_S = 30;

/**
 * How recently a restarted DataNode must have been heard from to count as
 * having rejoined: three heartbeats of the local HDFS (3 s each). Shorter
 * than the silence limit so the registration of a node killed seconds ago
 * is not taken for the restarted node.
 */
export const DATANODE_REJOINED_WITHIN_S = 9;

/** DataNodes that take writes: listed live, heard from within `withinS`, not decommissioned. */
export function usableDataNodes(
  state: NameNodeState,
  withinS = DATANODE_SILENCE_LIMIT_S,
): LiveDataNode[] {
  return state.liveDataNodes.filter((n) =>
    n.lastContact <= withinS && !/^Decommission/i.test(n.adminState)
  );
}

/**
 * HDFS is up when the NameNode is out of safe mode and at least one
 * DataNode takes writes. Returns the detail of an up HDFS; throws a
 * PublicProbeError (its message is safe to show) otherwise.
 */
export function hdfsVerdict(state: NameNodeState): string {
  if (state.safeMode) throw new PublicProbeError("NameNode is in safe mode");
  const usable = usableDataNodes(state).length;
  if (usable === 0) {
    const silent = state.liveDataNodes.length;
    throw new PublicProbeError(
      silent === 0
        ? "NameNode is up but no DataNode is live"
        : `NameNode is up but no DataNode is live (${silent} silent for over ${DATANODE_SILENCE_LIMIT_S} s)`,
    );
  }
  return `NameNode up, ${usable} live DataNode(s)`;
}

/** A broker as Kafka's describeCluster lists it. */
export interface ClusterBroker {
  nodeId: number;
  host: string;
  port: number;
}

function addressKey(host: string, port: number | string): string {
  return `${host.replace(/^\[|\]$/g, "").toLowerCase()}:${port}`;
}

/** `host:port` (IPv6 in brackets) as host and port. */
export function splitAddress(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(":");
  return {
    host: address.slice(0, i).replace(/^\[|\]$/g, ""),
    port: Number(address.slice(i + 1)),
  };
}

/**
 * One verdict per configured broker from the cluster's answer: each must be
 * registered in the cluster, by address. When none of the configured
 * addresses is among the registered ones (the configured list is only a
 * bootstrap, e.g. a load balancer's names), the cluster must register at
 * least as many brokers as are configured.
 */
export function kafkaVerdicts(
  configured: string[],
  brokers: ClusterBroker[],
): Array<{ up: boolean; detail: string }> {
  const registered = new Map(
    brokers.map((b) => [addressKey(b.host, b.port), b.nodeId]),
  );
  const keys = configured.map((a) => {
    const { host, port } = splitAddress(a);
    return addressKey(host, port);
  });
  const size = `a cluster of ${brokers.length} broker(s)`;
  if (keys.some((k) => registered.has(k))) {
    return keys.map((k) =>
      registered.has(k)
        ? { up: true, detail: `node ${registered.get(k)} in ${size}` }
        : { up: false, detail: `not registered in ${size}` }
    );
  }
  const enough = brokers.length >= configured.length;
  return keys.map(() => ({
    up: enough,
    detail: enough
      ? `${size} answers`
      : `${brokers.length} of ${configured.length} expected broker(s) registered`,
  }));
}
