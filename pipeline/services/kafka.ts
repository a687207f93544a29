/**
 * The local Kafka 4.x, from the Maven Central jars in .local/jars/kafka:
 * one node in KRaft combined mode (broker + controller in one JVM), or with
 * LOGPIPE_CLUSTER=1 three such nodes forming one quorum (3 voters, so one
 * node may die and the cluster keeps its controller and its data:
 * replication factor 3, min.insync.replicas 2 for every internal topic and
 * by default for ours). Its health check is the probes' kafkaHealthy
 * (pipeline/probes/probes.ts).
 */
import type { Config } from "../config.ts";
import { logFile, pidFile, servicePaths } from "./paths.ts";
import { spawnDetached } from "./process.ts";

/** Heap of the single node. */
export const KAFKA_HEAP = "512m";
/** Heap of each of the cluster's three nodes (2 cores, shared with everything). */
export const KAFKA_CLUSTER_HEAP = "320m";

/** One Kafka node of the local services. */
export interface KafkaNode {
  /** node.id (1, 2, 3). */
  id: number;
  /** Service name: its pid file and log are named after it. */
  name: "kafka" | "kafka-2" | "kafka-3";
  /** Client (PLAINTEXT) port. */
  port: number;
  /** KRaft controller port. */
  controllerPort: number;
  /** Folder of its server.properties. */
  dir: string;
  /** Its log.dirs. */
  data: string;
}

/** The local Kafka nodes: one, or three with LOGPIPE_CLUSTER=1. */
export function kafkaNodes(
  config: Pick<Config, "localDir" | "ports" | "cluster">,
): KafkaNode[] {
  const p = servicePaths(config);
  if (!config.cluster) {
    return [{
      id: 1,
      name: "kafka",
      port: config.ports.kafka,
      controllerPort: config.ports.kafkaController,
      dir: p.kafka.dir,
      data: p.kafka.data,
    }];
  }
  const ports = [
    [config.ports.kafka, config.ports.kafkaController],
    [config.ports.kafka2, config.ports.kafkaController2],
    [config.ports.kafka3, config.ports.kafkaController3],
  ];
  return ports.map(([port, controllerPort], i) => {
    const dir = `${p.kafka.dir}/node-${i + 1}`;
    return {
      id: i + 1,
      name: i === 0 ? "kafka" : `kafka-${i + 1}` as KafkaNode["name"],
      port,
      controllerPort,
      dir,
      data: `${dir}/data`,
    };
  });
}

/** The node a service name stands for. */
export function kafkaNode(
  config: Pick<Config, "localDir" | "ports" | "cluster">,
  name: KafkaNode["name"],
): KafkaNode {
  const node = kafkaNodes(config).find((n) => n.name === name);
  if (!node) throw new Error(`no Kafka node "${name}" in this configuration`);
  return node;
}

/**
 * An extra listener, SASL_SSL, on a node (the security test starts a
 * broker with one): PEM keystore (key and certificate chain in one file),
 * SCRAM users written into the storage at format time (KRaft keeps
 * credentials in its metadata log) and PLAIN users in the listener's JAAS
 * configuration.
 */
export interface SecureListener {
  port: number;
  /** PEM file holding the private key (PKCS#8, unencrypted) and the certificate chain. */
  keystorePem: string;
  /** SCRAM users created at format time. */
  scramUsers: {
    mechanism: "SCRAM-SHA-256" | "SCRAM-SHA-512";
    name: string;
    password: string;
  }[];
  /** PLAIN users (name and password, letters and digits only). */
  plainUsers?: { name: string; password: string }[];
}

export interface KafkaNodeOptions {
  secure?: SecureListener;
}

function serverProperties(
  config: Pick<Config, "localDir" | "kafka" | "ports" | "cluster">,
  node: KafkaNode,
  opts: KafkaNodeOptions,
): string {
  const nodes = kafkaNodes(config);
  // Internal topics: replicated on every node up to 3, and writable with
  // one node down.
  const rf = Math.min(3, nodes.length);
  const minIsr = Math.max(1, rf - 1);
  const listeners = [
    `PLAINTEXT://127.0.0.1:${node.port}`,
    `CONTROLLER://127.0.0.1:${node.controllerPort}`,
  ];
  const advertised = [`PLAINTEXT://127.0.0.1:${node.port}`];
  const protocols = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"];
  const secure: string[] = [];
  if (opts.secure) {
    listeners.push(`SASL_SSL://127.0.0.1:${opts.secure.port}`);
    advertised.push(`SASL_SSL://127.0.0.1:${opts.secure.port}`);
    protocols.push("SASL_SSL:SASL_SSL");
    const scram = [
      ...new Set(opts.secure.scramUsers.map((u) => u.mechanism)),
    ];
    const plain = opts.secure.plainUsers ?? [];
    secure.push(
      `sasl.enabled.mechanisms=${
        [...scram, ...(plain.length ? ["PLAIN"] : [])].join(",")
      }`,
      ...scram.map((m) =>
        `listener.name.sasl_ssl.${m.toLowerCase()}.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;`
      ),
      ...(plain.length
        ? [
          `listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required ${
            plain.map((u) => `user_${u.name}="${u.password}"`).join(" ")
          };`,
        ]
        : []),
      "ssl.keystore.type=PEM",
      `ssl.keystore.location=${opts.secure.keystorePem}`,
      "ssl.client.auth=none",
    );
  }
  return [
    "# Generated by logpipe (pipeline/services/kafka.ts); edits are overwritten.",
    "process.roles=broker,controller",
    `node.id=${node.id}`,
    config.cluster
      // A fixed quorum of the three nodes (static voters).
      ? `controller.quorum.voters=${
        nodes.map((n) => `${n.id}@127.0.0.1:${n.controllerPort}`).join(",")
      }`
      : `controller.quorum.bootstrap.servers=127.0.0.1:${node.controllerPort}`,
    `listeners=${listeners.join(",")}`,
    `advertised.listeners=${advertised.join(",")}`,
    "controller.listener.names=CONTROLLER",
    "inter.broker.listener.name=PLAINTEXT",
    `listener.security.protocol.map=${protocols.join(",")}`,
    ...secure,
    `log.dirs=${node.data}`,
    `num.partitions=${config.kafka.partitions}`,
    `default.replication.factor=${rf}`,
    `min.insync.replicas=${minIsr}`,
    `offsets.topic.replication.factor=${rf}`,
    "offsets.topic.num.partitions=6",
    `transaction.state.log.replication.factor=${rf}`,
    `transaction.state.log.min.isr=${minIsr}`,
    `share.coordinator.state.topic.replication.factor=${rf}`,
    `share.coordinator.state.topic.min.isr=${minIsr}`,
    // A dev cluster: no need to wait for more members to join.
    "group.initial.rebalance.delay.ms=0",
    // Topics are created on purpose (partitions, retention), never by a typo.
    "auto.create.topics.enable=false",
    "message.max.bytes=4194304",
    "replica.fetch.max.bytes=4194304",
    "log.retention.hours=168",
    "log.segment.bytes=268435456",
    ...(config.cluster
      ? [
        // A killed node comes back and leads its partitions again, so the
        // load spreads out once it has caught up.
        "auto.leader.rebalance.enable=true",
        "leader.imbalance.check.interval.seconds=30",
        // Notice a dead broker within seconds (its session with the
        // controller lapses), not the 9 s default.
        "broker.session.timeout.ms=6000",
        "broker.heartbeat.interval.ms=1000",
        // Small heaps: fewer, smaller network and I/O threads.
        "num.network.threads=2",
        "num.io.threads=4",
        "num.replica.fetchers=1",
      ]
      : []),
    "",
  ].join("\n");
}

const LOG4J2 =
  `# Generated by logpipe: Kafka logs to stdout, which goes to .local/logs/<node>.log
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
`;

/** The java command line for a class on the Kafka classpath. */
export function kafkaJava(
  config: Pick<Config, "localDir">,
  mainClass: string,
  args: string[],
  heap = KAFKA_HEAP,
): string[] {
  const p = servicePaths(config);
  return [
    "java",
    `-Xms${heap}`,
    `-Xmx${heap}`,
    "-XX:+UseG1GC",
    "-Djava.awt.headless=true",
    `-Dlog4j2.configurationFile=${p.kafka.dir}/log4j2.properties`,
    "-cp",
    `${p.jars.kafka}/*`,
    mainClass,
    ...args,
  ];
}

/**
 * The command line of one of Kafka's own tools (e.g.
 * org.apache.kafka.tools.ProducerPerformance), for the benchmarks.
 */
export function kafkaToolCommand(
  config: Pick<Config, "localDir">,
  mainClass: string,
  args: string[],
): string[] {
  return kafkaJava(config, mainClass, args, "512m");
}

async function run(cmd: string[]): Promise<{ ok: boolean; out: string }> {
  const res = await new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return {
    ok: res.success,
    out: dec.decode(res.stdout) + dec.decode(res.stderr),
  };
}

/**
 * The id every node of this state folder is formatted with (a cluster's
 * nodes must share it), made once.
 */
function clusterId(config: Pick<Config, "localDir">): string {
  const path = `${servicePaths(config).kafka.dir}/cluster.id`;
  try {
    const saved = Deno.readTextFileSync(path).trim();
    // An id with a leading "-" never formatted anything (see below).
    if (saved && !saved.startsWith("-")) return saved;
  } catch { /* first start */ }
  // Base64url of 16 random bytes, like Kafka's own Uuid.randomUuid(), and
  // like it never starting with "-": the storage tool would read such an id
  // as an option ("argument --cluster-id/-t: expected one argument").
  let id: string;
  do {
    id = btoa(
      String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))),
    ).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
  } while (id.startsWith("-"));
  Deno.writeTextFileSync(path, `${id}\n`);
  return id;
}

/** Writes a node's configuration and formats its storage on first start. */
export async function prepareKafka(
  config: Pick<Config, "localDir" | "kafka" | "ports" | "cluster">,
  node: KafkaNode = kafkaNodes(config)[0],
  opts: KafkaNodeOptions = {},
): Promise<void> {
  const p = servicePaths(config);
  await Deno.mkdir(node.data, { recursive: true });
  await Deno.writeTextFile(
    `${node.dir}/server.properties`,
    serverProperties(config, node, opts),
  );
  await Deno.writeTextFile(`${p.kafka.dir}/log4j2.properties`, LOG4J2);
  try {
    await Deno.stat(`${node.data}/meta.properties`);
    return; // already formatted
  } catch { /* first start */ }
  const scram = (opts.secure?.scramUsers ?? []).flatMap((u) => [
    "--add-scram",
    `${u.mechanism}=[name=${u.name},password=${u.password}]`,
  ]);
  const res = await run(
    kafkaJava(config, "kafka.tools.StorageTool", [
      "format",
      // One node: a dynamic quorum of itself. A cluster: the static voters
      // in server.properties.
      ...(config.cluster ? [] : ["--standalone"]),
      "-t",
      clusterId(config),
      "-c",
      `${node.dir}/server.properties`,
      ...scram,
    ], "256m"),
  );
  if (!res.ok) {
    throw new Error(`kafka storage format (${node.name}) failed:\n${res.out}`);
  }
}

/** Starts a node in the background; returns its pid. */
export async function startKafka(
  config: Pick<Config, "localDir" | "kafka" | "ports" | "cluster">,
  node: KafkaNode = kafkaNodes(config)[0],
  opts: KafkaNodeOptions = {},
): Promise<number> {
  await prepareKafka(config, node, opts);
  return await spawnDetached({
    cmd: kafkaJava(
      config,
      "kafka.Kafka",
      [`${node.dir}/server.properties`],
      config.cluster ? KAFKA_CLUSTER_HEAP : KAFKA_HEAP,
    ),
    logFile: logFile(config, node.name),
    pidFile: pidFile(config, node.name),
  });
}
