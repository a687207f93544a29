/**
 * The dead-letter record: one NDJSON line per Kafka record that failed
 * validation. It keeps everything needed to inspect or replay the record:
 * the original key and value bytes (base64, since they may not even be
 * UTF-8), the Kafka coordinates and headers, the typed reason from the
 * validator and when it was dead-lettered. Nothing is dropped silently.
 *
 * Except the bytes of a record larger than the validator accepts
 * (`too_large`, up to the broker's maximum, MBs): keeping them would make
 * the consumer's memory depend on record sizes. Such a record keeps what
 * explains it — its size, SHA-256 and the first DEAD_LETTER_PREFIX_BYTES
 * bytes — and is marked `value_truncated`; it cannot be redriven (its bytes
 * are only in Kafka, until retention). Keys and header values are cut the
 * same way past DEAD_LETTER_PREFIX_BYTES (`key_truncated`,
 * `headers_truncated`).
 */
import { createHash } from "node:crypto";
import { encodeBase64 } from "./base64.ts";
import { LIMITS } from "../events/schema.ts";

/** Bytes of a too-large value (or long key or header) kept in its dead letter. */
export const DEAD_LETTER_PREFIX_BYTES = 4096;
/** Header values kept per dead letter. */
const MAX_HEADERS = 64;

/** One line of a dead-letter file. */
export interface DeadLetterRecord {
  topic: string;
  partition: number;
  offset: number;
  /** Kafka record timestamp (ISO-8601 UTC) or null when absent. */
  kafka_timestamp: string | null;
  key_base64: string | null;
  /**
   * The original value bytes; null for a tombstone (null value) and for a
   * value larger than the validator's limit (then see value_truncated).
   */
  value_base64: string | null;
  value_bytes: number;
  /** SHA-256 (hex) of the value bytes; null for a tombstone. */
  value_sha256?: string | null;
  /** Only a prefix of the value is kept: the record cannot be redriven. */
  value_truncated?: boolean;
  /** The first DEAD_LETTER_PREFIX_BYTES bytes of a truncated value. */
  value_prefix_base64?: string;
  /** key_base64 holds only the key's first DEAD_LETTER_PREFIX_BYTES bytes. */
  key_truncated?: boolean;
  /** Some header values are cut to DEAD_LETTER_PREFIX_BYTES, or headers dropped. */
  headers_truncated?: boolean;
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
  let headersTruncated = false;
  for (const [k, v] of Object.entries(msg.headers ?? {})) {
    if (Object.keys(headers).length >= MAX_HEADERS) {
      headersTruncated = true;
      break;
    }
    // A header may repeat (kafkajs gives an array); keep the first.
    const one = Array.isArray(v) ? v[0] : v;
    const b = toBytes(one);
    if (b && b.byteLength > DEAD_LETTER_PREFIX_BYTES) headersTruncated = true;
    headers[k.slice(0, 256)] = b === null
      ? null
      : encodeBase64(b.subarray(0, DEAD_LETTER_PREFIX_BYTES));
  }
  const key = toBytes(msg.key);
  const value = msg.value;
  const truncated = value !== null &&
    value.byteLength > LIMITS.maxEventBytes;
  const rec: DeadLetterRecord = {
    topic,
    partition,
    offset: Number(msg.offset),
    kafka_timestamp: kafkaTimestampIso(msg.timestamp),
    key_base64: key === null
      ? null
      : encodeBase64(key.subarray(0, DEAD_LETTER_PREFIX_BYTES)),
    value_base64: value === null || truncated ? null : encodeBase64(value),
    value_bytes: value?.byteLength ?? 0,
    value_sha256: value === null
      ? null
      : createHash("sha256").update(value).digest("hex"),
    headers,
    reason,
    detail: detail.slice(0, 1000),
    dead_lettered_at: now.toISOString(),
    consumer_id: consumerId,
  };
  if (truncated) {
    rec.value_truncated = true;
    rec.value_prefix_base64 = encodeBase64(
      value.subarray(0, DEAD_LETTER_PREFIX_BYTES),
    );
  }
  if (key && key.byteLength > DEAD_LETTER_PREFIX_BYTES) {
    rec.key_truncated = true;
  }
  if (headersTruncated) rec.headers_truncated = true;
  return rec;
}
