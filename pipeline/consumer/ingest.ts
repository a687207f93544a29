/**
 * One Kafka record into a partition's micro-batch: validated
 * (pipeline/events/schema.ts) and flattened into a raw-zone row, or turned
 * into a dead-letter line with its typed reason; its live-metric
 * contribution is added to the batch's stats.
 */
import type { KafkaMessage } from "kafkajs";
import { validateEvent } from "../events/schema.ts";
import { flattenEvent } from "../events/flatten.ts";
import { deadLetterRecord, type RawMessage } from "../zones/dead_letter.ts";
import type { MicroBatch } from "./micro_batch.ts";
import { addDeadLetterStats, addEventStats } from "./metrics.ts";

/** Adds record `m` of `topic`/`partition` to batch `b`. */
export function ingestRecord(
  b: MicroBatch,
  topic: string,
  partition: number,
  m: KafkaMessage,
  consumerId: string,
): void {
  const off = Number(m.offset);
  const kts = m.timestamp ? Number(m.timestamp) : undefined;
  const value = m.value;
  const size = value?.byteLength ?? 0;
  // A null value (tombstone) is not bytes: the validator rejects it.
  const res = validateEvent(value as Uint8Array);
  if (res.ok) {
    const row = flattenEvent(res.event, {
      topic,
      partition,
      offset: off,
      timestamp: m.timestamp,
    });
    let ts = row.event_ts;
    if (ts.length !== 24 || ts[23] !== "Z") {
      ts = new Date(Date.parse(ts)).toISOString();
    }
    b.addEvent(off, size, kts, ts, JSON.stringify(row));
    addEventStats(b.stats, row, res.event);
  } else {
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
    addDeadLetterStats(b.stats, res.reason);
  }
}
