/**
 * kafkajs wiring shared by the producer, the consumer, the audit and the
 * tests: one client factory and idempotent topic creation.
 */
import process from "node:process";
import { Kafka, logLevel as KafkaLogLevel } from "kafkajs";
import type { Config } from "../config.ts";
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
 * Creates `topic` (default: the configured event topic) with `partitions`
 * if it does not exist. Returns true when it was created now.
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
    const created = await admin.createTopics({
      waitForLeaders: true,
      topics: [{
        topic,
        numPartitions: partitions,
        replicationFactor: 1,
        configEntries: [
          // A week of history so a consumer that was down can catch up.
          { name: "retention.ms", value: String(7 * 24 * 3600 * 1000) },
          { name: "max.message.bytes", value: String(4 * 1024 * 1024) },
        ],
      }],
    });
    return created;
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
