/**
 * The dead-letter record: one NDJSON line per Kafka record that failed
 * validation. It keeps everything needed to inspect or replay the record:
 * the original key and value bytes (base64, since they may not even be
 * UTF-8), the Kafka coordinates and headers, the typed reason from the
 * validator and when it was dead-lettered. Nothing is dropped silently.
 */
import { encodeBase64 } from "./base64.ts";

/** One line of a dead-letter file. */
export interface DeadLetterRecord {
  topic: string;
  partition: number;
  offset: number;
  /** Kafka record timestamp (ISO-8601 UTC) or null when absent. */
  kafka_timestamp: string | null;
  key_base64: string | null;
  /** The original value bytes; null for a tombstone (null value). */
  value_base64: string | null;
  value_bytes: number;
  headers: Record<string, string | null>;
  /** A RejectReason of pipeline/events/schema.ts. */
  reason: string;
  detail: string;
  dead_lettered_at: string;
  consumer_id: string;
}

/** Minimal shape of a kafkajs message we read. */
export interface RawMessage {
  offset: string;
  timestamp?: string;
  key?: Uint8Array | null;
  value: Uint8Array | null;
  headers?: Record<string, unknown>;
}

function toBytes(v: unknown): Uint8Array | null {
  if (v === null || v === undefined) return null;
  if (v instanceof Uint8Array) return v;
  if (typeof v === "string") return new TextEncoder().encode(v);
  return null;
}

/** Kafka timestamp (epoch ms string) → ISO, or null when absent or absurd. */
export function kafkaTimestampIso(ts: string | undefined): string | null {
  if (ts === undefined || ts === "") return null;
  const ms = Number(ts);
  if (!Number.isFinite(ms) || ms <= 0 || ms > 8.64e15) return null;
  return new Date(ms).toISOString();
}

/** Builds the dead-letter record of a rejected message. */
export function deadLetterRecord(
  topic: string,
  partition: number,
  msg: RawMessage,
  reason: string,
  detail: string,
  consumerId: string,
  now = new Date(),
): DeadLetterRecord {
  const headers: Record<string, string | null> = {};
  for (const [k, v] of Object.entries(msg.headers ?? {})) {
    // A header may repeat (kafkajs gives an array); keep the first.
    const one = Array.isArray(v) ? v[0] : v;
    const b = toBytes(one);
    headers[k] = b === null ? null : encodeBase64(b);
  }
  const key = toBytes(msg.key);
  return {
    topic,
    partition,
    offset: Number(msg.offset),
    kafka_timestamp: kafkaTimestampIso(msg.timestamp),
    key_base64: key === null ? null : encodeBase64(key),
    value_base64: msg.value === null ? null : encodeBase64(msg.value),
    value_bytes: msg.value?.byteLength ?? 0,
    headers,
    reason,
    detail: detail.slice(0, 1000),
    dead_lettered_at: now.toISOString(),
    consumer_id: consumerId,
  };
}
