/**
 * What the parts of the stream consumer (partition ownership, the flush
 * path, the run loop) share: the topic, the logger, the stop and failure
 * switches and the retry policy for HDFS and Kafka calls that must
 * eventually succeed; and the few Kafka consumer operations they use.
 */
import type { Logger } from "../log.ts";

/** Why a retry loop ended: the caller gave up (a forced stop). */
export class RetryAborted extends Error {
  override name = "RetryAborted";
}

/**
 * Backoff of the consumer's retries of HDFS, Postgres and Kafka calls that
 * must eventually succeed (the consumer pauses — back-pressure — instead of
 * dropping or committing data that was not written): 250 ms doubling to
 * 10 s, ±20 % so several consumers do not retry in step.
 */
export const CONSUMER_BACKOFF = {
  minTimeout: 250,
  multiplier: 2,
  maxTimeout: 10_000,
  jitter: 0.2,
} as const;

/** Shared services of one consumer process. */
export interface ConsumerContext {
  readonly topic: string;
  readonly log: Logger;
  /**
   * Aborted, with a RetryAborted, once a second stop() asks to give up on
   * open batches: retries and their waits end at once.
   */
  readonly forceSignal: AbortSignal;
  /** Runs `fn` until it succeeds (capped backoff, staying in the group). */
  retry<T>(what: string, fn: () => Promise<T>): Promise<T>;
  /** Stops the consumer with this error (reported by run()). */
  fail(err: unknown): void;
}

/** The Kafka consumer operations ownership and flushing need. */
export interface PartitionControl {
  pause(partitions: number[]): void;
  resume(partitions: number[]): void;
  /** Next record to fetch for the partition. */
  seek(partition: number, offset: number): void;
  /** Commits `offset` (the next one to read) as the group's position. */
  commitOffset(partition: number, offset: number): Promise<void>;
}
