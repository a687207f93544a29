/**
 * The `check_services` task: the probes' strict profile
 * (pipeline/probes/probes.ts). Kafka registers the configured brokers (with
 * one of a cluster down it still passes while acks=all writes succeed:
 * min.insync.replicas brokers up), HDFS has its NameNode out of safe mode
 * and a live DataNode (or writes would hang), PostgreSQL answers `select 1`
 * on a fresh connection. A failure's detail is the raw error: it goes to
 * the operators' e-mail and the run history, never to a public page.
 */
import type { Config } from "../config.ts";
import { logger } from "../log.ts";
import {
  assertServicesUp,
  checkServices as probeServices,
  kafkaBrokersNeeded,
  type ServiceCheck,
} from "../probes/probes.ts";
import { errorText } from "./runner.ts";

const log = logger("batch");

/** Longest raw error kept in a check's detail. */
const DETAIL_MAX_CHARS = 300;

/** Checks all three, each within `ms`; throws ServicesDownError naming those down. */
export async function checkServices(
  config: Config,
  ms?: number,
): Promise<ServiceCheck[]> {
  return assertServicesUp(
    await probeServices(config, {
      profile: "strict",
      timeoutMs: ms,
      reason: (err) => errorText(err).slice(0, DETAIL_MAX_CHARS),
      log,
      applicationName: "logpipe-batch-check",
    }),
    { kafkaBrokersNeeded: kafkaBrokersNeeded(config) },
  );
}
