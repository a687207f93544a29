/**
 * What the parts of the stream consumer (partition ownership, the flush
 * path, the run loop) share: the topic, the logger, the stop and failure
 * switches and the retry policy for HDFS and Kafka calls that must
 * eventually succeed; and the few Kafka consumer operations they use.
 */
import type { Logger } from "../log.ts";

/** Shared services of one consumer process. */
export interface ConsumerContext {
  readonly topic: string;
  readonly log: Logger;
  /** True once a second stop() asked to give up on open batches. */
  forced(): boolean;
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
