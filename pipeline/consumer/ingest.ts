/**
 * One Kafka record into a partition's micro-batch and the live metrics:
 * validated (pipeline/events/schema.ts) and flattened into a raw-zone row,
 * or turned into a dead-letter line with its typed reason; counted in the
 * live metrics when the caller says it is not counted yet (metrics.ts).
 */
import type { KafkaMessage } from "kafkajs";
import { validateEvent } from "../events/schema.ts";
import { flattenEvent } from "../events/flatten.ts";
import { deadLetterRecord, type RawMessage } from "../zones/dead_letter.ts";
import type { MicroBatch } from "./micro_batch.ts";
import type { MetricsAggregator } from "./metrics.ts";

/**
 * Adds record `m` of `topic`/`partition` to batch `b` (when given: the
 * record is not yet in HDFS) and counts it in `metrics` (when given: not yet
 * counted).
 */
export function ingestRecord(
  b: MicroBatch | undefined,
  metrics: MetricsAggregator | undefined,
  topic: string,
  partition: number,
  m: KafkaMessage,
  consumerId: string,
  /** How far an event's time may lead its Kafka timestamp (future_timestamp). */
  maxFutureSkewMs?: number,
): void {
  const off = Number(m.offset);
  const kts = m.timestamp ? Number(m.timestamp) : undefined;
  const value = m.value;
  const size = value?.byteLength ?? 0;
  // A null value (tombstone) is not bytes: the validator rejects it.
  const res = validateEvent(value as Uint8Array, {
    kafkaTimestampMs: kts,
    maxFutureSkewMs,
  });
  if (res.ok) {
    const row = flattenEvent(res.event, {
      topic,
      partition,
      offset: off,
      timestamp: m.timestamp,
    });
    // One JSON text of the row serves the batch and the live feed.
    const line = JSON.stringify(row);
    if (b) {
      let ts = row.event_ts;
      if (ts.length !== 24 || ts[23] !== "Z") {
        ts = new Date(Date.parse(ts)).toISOString();
      }
      b.addEvent(off, size, kts, ts, line);
    }
    metrics?.countEvent(partition, off, row, line, size);
  } else {
    if (b) {
      const rec = deadLetterRecord(
        topic,
        partition,
        m as unknown as RawMessage,
        res.reason,
        res.detail,
        consumerId,
      );
      const date = (rec.kafka_timestamp ?? rec.dead_lettered_at).slice(0, 10);
      b.addDeadLetter(off, size, kts, date, JSON.stringify(rec));
    }
    metrics?.countDeadLetter(partition, off, res.reason);
  }
}
