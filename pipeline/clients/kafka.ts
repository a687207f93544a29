/**
 * kafkajs wiring shared by the producer, the consumer, the audit and the
 * tests: one client factory (with the configured TLS and SASL) and
 * idempotent topic creation with a replication factor that fits the
 * cluster.
 */
import process from "node:process";
import {
  Kafka,
  type KafkaConfig as KafkajsConfig,
  logLevel as KafkaLogLevel,
  type SASLOptions,
} from "kafkajs";
import type { Config, KafkaConfig } from "../config.ts";
import { logger } from "../log.ts";

const log = logger("kafka");

// kafkajs 2.2.4 computes its first throttle timer from throttledUntil = -1,
// i.e. setTimeout(-Date.now()); Node clamps that to 1 ms (what kafkajs
// intends) and prints a TimeoutNegativeWarning on every client. Harmless and
// noisy. The runtime emits it through the process-wide emitWarning, so the
// filter has to be process-wide too; it is installed by the first
// createKafka() (a process that never makes a Kafka client keeps the
// original) and drops exactly that warning type, passing every other on.
let timeoutWarningFiltered = false;

/** Drops kafkajs' TimeoutNegativeWarning (see above). Idempotent. */
export function filterKafkajsTimeoutWarning(): void {
  if (timeoutWarningFiltered) return;
  timeoutWarningFiltered = true;
  const emitWarning = process.emitWarning.bind(process);
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    const type = typeof warning === "string"
      ? (typeof rest[0] === "string"
        ? rest[0]
        : (rest[0] as { type?: string } | undefined)?.type)
      : warning.name;
    if (type === "TimeoutNegativeWarning") return;
    // deno-lint-ignore no-explicit-any
    return (emitWarning as any)(warning, ...rest);
  }) as typeof process.emitWarning;
}

/** Maps kafkajs log entries onto our structured log (quiet by default). */
function logCreator(level: number) {
  return ({ namespace, level: entryLevel, log: entry }: {
    namespace: string;
    level: number;
    log: { message: string; [k: string]: unknown };
  }) => {
    if (entryLevel > level) return;
    const { message, timestamp: _t, logger: _l, ...rest } = entry;
    const fields = { namespace, ...rest };
    if (entryLevel <= KafkaLogLevel.ERROR) log.error(message, fields);
    else if (entryLevel === KafkaLogLevel.WARN) log.warn(message, fields);
    else log.debug(message, fields);
  };
}

/**
 * The TLS and SASL options of kafkajs for `kafka` (LOGPIPE_KAFKA_TLS*,
 * LOGPIPE_KAFKA_SASL_*): none, TLS with the system's CAs or a CA file (and
 * a client certificate for mutual TLS), SASL PLAIN or SCRAM.
 */
export function kafkaSecurityOptions(
  kafka: Pick<KafkaConfig, "tls" | "sasl">,
): Pick<KafkajsConfig, "ssl" | "sasl"> {
  const pem = (path: string | undefined) =>
    path === undefined ? undefined : Deno.readTextFileSync(path);
  const ssl = kafka.tls === undefined ? undefined : {
    // Node's TLS checks the certificate chain and the broker's host name
    // against the certificate (rejectUnauthorized is its default, kept).
    ...(kafka.tls.caFile ? { ca: [pem(kafka.tls.caFile)!] } : {}),
    ...(kafka.tls.certFile
      ? { cert: pem(kafka.tls.certFile), key: pem(kafka.tls.keyFile) }
      : {}),
  };
  return {
    ...(ssl ? { ssl: Object.keys(ssl).length ? ssl : true } : {}),
    ...(kafka.sasl
      ? {
        sasl: {
          mechanism: kafka.sasl.mechanism,
          username: kafka.sasl.username,
          password: kafka.sasl.password,
        } as SASLOptions,
      }
      : {}),
  };
}

/** A kafkajs client for the configured brokers. */
export function createKafka(
  config: Pick<Config, "kafka">,
  opts: { clientId?: string; quiet?: boolean; retries?: number } = {},
): Kafka {
  filterKafkajsTimeoutWarning();
  const level = opts.quiet ? KafkaLogLevel.NOTHING : KafkaLogLevel.WARN;
  return new Kafka({
    clientId: opts.clientId ?? config.kafka.clientId,
    brokers: config.kafka.brokers,
    ...kafkaSecurityOptions(config.kafka),
    logLevel: level,
    logCreator: () => logCreator(level),
    connectionTimeout: 5_000,
    requestTimeout: 30_000,
    retry: {
      retries: opts.retries ?? 5,
      initialRetryTime: 300,
      maxRetryTime: 10_000,
    },
  });
}

/**
 * The replication of a topic logpipe creates on a cluster of `brokers`:
 * LOGPIPE_KAFKA_REPLICATION_FACTOR or min(3, brokers), and
 * LOGPIPE_KAFKA_MIN_INSYNC_REPLICAS or RF - 1 (at least 1), so that with
 * acks=all one broker may be down and writes still succeed, yet every
 * acknowledged write is on two brokers once there are three.
 */
export function topicReplication(
  kafka: Pick<KafkaConfig, "replicationFactor" | "minInsyncReplicas">,
  brokers: number,
): { replicationFactor: number; minInsyncReplicas: number } {
  const replicationFactor = kafka.replicationFactor ?? Math.min(3, brokers);
  if (replicationFactor > brokers) {
    throw new Error(
      `replication factor ${replicationFactor} (LOGPIPE_KAFKA_REPLICATION_FACTOR) needs at least ${replicationFactor} brokers; the cluster has ${brokers}`,
    );
  }
  const minInsyncReplicas = kafka.minInsyncReplicas ??
    Math.max(1, replicationFactor - 1);
  if (minInsyncReplicas > replicationFactor) {
    throw new Error(
      `min.insync.replicas ${minInsyncReplicas} exceeds the replication factor ${replicationFactor}`,
    );
  }
  return { replicationFactor, minInsyncReplicas };
}

/**
 * Creates `topic` (default: the configured event topic) with `partitions`
 * and the replication of topicReplication() if it does not exist. Returns
 * true when it was created now.
 */
export async function ensureTopic(
  config: Pick<Config, "kafka">,
  topic = config.kafka.topic,
  partitions = config.kafka.partitions,
): Promise<boolean> {
  const admin = createKafka(config, { quiet: true }).admin();
  await admin.connect();
  try {
    const existing = await admin.listTopics();
    if (existing.includes(topic)) return false;
    const { brokers } = await admin.describeCluster();
    const { replicationFactor, minInsyncReplicas } = topicReplication(
      config.kafka,
      brokers.length,
    );
    const created = await admin.createTopics({
      waitForLeaders: true,
      topics: [{
        topic,
        numPartitions: partitions,
        replicationFactor,
        configEntries: [
          // A week of history so a consumer that was down can catch up.
          { name: "retention.ms", value: String(7 * 24 * 3600 * 1000) },
          { name: "max.message.bytes", value: String(4 * 1024 * 1024) },
          { name: "min.insync.replicas", value: String(minInsyncReplicas) },
        ],
      }],
    });
    if (created) {
      log.debug("topic created", {
        topic,
        partitions,
        replicationFactor,
        minInsyncReplicas,
      });
    }
    return created;
  } finally {
    await admin.disconnect();
  }
}

/** How a topic is replicated now: replicas and ISR per partition, min.insync.replicas. */
export async function describeTopicReplication(
  config: Pick<Config, "kafka">,
  topic = config.kafka.topic,
): Promise<{
  minInsyncReplicas: number;
  partitions: { partition: number; replicas: number[]; isr: number[] }[];
}> {
  const admin = createKafka(config, { quiet: true }).admin();
  await admin.connect();
  try {
    const meta = await admin.fetchTopicMetadata({ topics: [topic] });
    const configs = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: 2, /* TOPIC */ name: topic }],
    });
    const entry = configs.resources[0]?.configEntries.find((e) =>
      e.configName === "min.insync.replicas"
    );
    return {
      minInsyncReplicas: Number(entry?.configValue ?? 1),
      partitions: meta.topics[0].partitions.map((p) => ({
        partition: p.partitionId,
        replicas: p.replicas,
        isr: p.isr,
      })).sort((a, b) => a.partition - b.partition),
    };
  } finally {
    await admin.disconnect();
  }
}

/** Deletes a topic (tests clean up with it). Missing topic is not an error. */
export async function deleteTopic(
  config: Pick<Config, "kafka">,
  topic: string,
): Promise<void> {
  const admin = createKafka(config, { quiet: true }).admin();
  await admin.connect();
  try {
    if ((await admin.listTopics()).includes(topic)) {
      await admin.deleteTopics({ topics: [topic], timeout: 10_000 });
    }
  } finally {
    await admin.disconnect();
  }
}

/** Sum over partitions of the end offsets (records ever written) of a topic. */
export async function topicEndOffsets(
  config: Pick<Config, "kafka">,
  topic = config.kafka.topic,
): Promise<Map<number, { low: bigint; high: bigint }>> {
  const admin = createKafka(config, { quiet: true }).admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    return new Map(
      offsets.map((
        o,
      ) => [o.partition, { low: BigInt(o.low), high: BigInt(o.high) }]),
    );
  } finally {
    await admin.disconnect();
  }
}
