/**
 * The dead letters as the site shows them: newest first, filtered by reason,
 * each with its Kafka coordinates, the typed reason and detail, the original
 * key, headers and value bytes as ESCAPED TEXT (never markup: every byte
 * that is not plainly visible text becomes an escape), and whether it was
 * redriven (ops.redriven).
 *
 * The dead-letter zone is read straight from HDFS (pipeline/zones): files
 * newest first, stopping as soon as no older file can hold a newer record,
 * and at most MAX_SCAN_BYTES per request (the answer then says so).
 */
import type { Config } from "../config.ts";
import { createWebHdfs } from "../clients/webhdfs.ts";
import {
  type DeadLetterRow,
  decodeBase64,
  listDeadLetterFiles,
  parseDeadLetterLines,
} from "../zones/mod.ts";
import { REJECT_REASONS, type RejectReason } from "../events/schema.ts";

/** What the queries need from a pg Pool or client. */
export interface Db {
  query<R = Record<string, unknown>>(
    text: string,
    values?: unknown[],
  ): Promise<{ rows: R[] }>;
}

/** Bytes of dead-letter files one request reads at most. */
export const MAX_SCAN_BYTES = 64 * 1024 * 1024;
/** Bytes of a value shown (the rest is counted, not shown). */
export const SHOWN_VALUE_BYTES = 4096;
/**
 * Files are read newest first by HDFS modification time, and every record
 * of a file was dead-lettered before it was written; this margin covers a
 * consumer clock ahead of the NameNode's.
 */
const CLOCK_MARGIN_MS = 5 * 60_000;

/** Bytes as text a person can read and nothing can execute. */
export interface EscapedBytes {
  text: string;
  /** Bytes not shown (beyond the limit). */
  omittedBytes: number;
}

// Shown as escapes although valid: controls, line/paragraph separators,
// bidirectional overrides and isolates ("Trojan Source"), zero-width and
// byte-order marks, the replacement character and noncharacters.
function invisible(cp: number): boolean {
  return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) ||
    (cp >= 0x200b && cp <= 0x200f) || (cp >= 0x2028 && cp <= 0x202e) ||
    (cp >= 0x2060 && cp <= 0x2069) || cp === 0xfeff || cp === 0xfffd ||
    (cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) === 0xfffe;
}

const SHORT: Record<number, string> = {
  0x09: "\\t",
  0x0a: "\\n",
  0x0d: "\\r",
  0x5c: "\\\\",
};

function hex(n: number, width: number): string {
  return n.toString(16).toUpperCase().padStart(width, "0");
}

/**
 * `bytes` as escaped text: valid, visible UTF-8 as itself; `\` as `\\`;
 * tab, newline and CR as `\t` `\n` `\r`; any other invisible code point as
 * `\u{XXXX}`; a byte that is not part of valid UTF-8 as `\xHH`. At most
 * `maxBytes` bytes are shown. Unambiguous: the bytes can be read back.
 */
export function escapeBytes(
  bytes: Uint8Array,
  maxBytes = SHOWN_VALUE_BYTES,
): EscapedBytes {
  const end = Math.min(bytes.length, maxBytes);
  let out = "";
  let i = 0;
  while (i < end) {
    const b = bytes[i];
    let cp = -1;
    let n = 1;
    if (b < 0x80) cp = b;
    else if (b >= 0xc2 && b <= 0xdf) n = 2;
    else if (b >= 0xe0 && b <= 0xef) n = 3;
    else if (b >= 0xf0 && b <= 0xf4) n = 4;
    if (n > 1) {
      // A sequence cut by the limit is shown as bytes.
      if (i + n <= end) {
        cp = b & (0xff >> (n + 1));
        for (let k = 1; k < n; k++) {
          const c = bytes[i + k];
          if ((c & 0xc0) !== 0x80) {
            cp = -1;
            break;
          }
          cp = (cp << 6) | (c & 0x3f);
        }
        // Overlong forms, surrogates and values past U+10FFFF are invalid.
        const min = [0, 0, 0x80, 0x800, 0x10000][n];
        if (cp < min || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) {
          cp = -1;
        }
      }
      if (cp < 0) n = 1;
    }
    if (cp < 0) out += `\\x${hex(b, 2)}`;
    else if (SHORT[cp]) out += SHORT[cp];
    else if (invisible(cp)) out += `\\u{${hex(cp, 4)}}`;
    else out += String.fromCodePoint(cp);
    i += n;
  }
  return { text: out, omittedBytes: bytes.length - end };
}

/** One dead letter, ready to show. */
export interface DeadLetterView {
  topic: string;
  partition: number;
  offset: number;
  kafka_timestamp: string | null;
  dead_lettered_at: string;
  reason: string;
  detail: string;
  /** The key as escaped text, or null when the record had none. */
  key: string | null;
  /** Header values as escaped text. */
  headers: Record<string, string | null>;
  /** The value as escaped text (its first SHOWN_VALUE_BYTES bytes). */
  value: string | null;
  value_bytes: number;
  /** Bytes of the value not shown: beyond the limit, or not kept at all. */
  value_omitted_bytes: number;
  /** Set when `deno task redrive` re-injected it. */
  redriven: {
    state: "sending" | "sent";
    topic: string | null;
    partition: number | null;
    offset: number | null;
    at: string | null;
  } | null;
  /** The HDFS file that holds it. */
  file: string;
}

/** The view of one stored record (escaping what it holds). */
export function viewOf(r: DeadLetterRow): Omit<DeadLetterView, "redriven"> {
  const text = (b64: string | null) =>
    b64 === null ? null : escapeBytes(decodeBase64(b64)).text;
  const kept = r.value_base64 === null ? null : decodeBase64(r.value_base64);
  const value = kept && escapeBytes(kept);
  const headers: Record<string, string | null> = {};
  for (const [k, v] of Object.entries(r.headers ?? {})) {
    headers[escapeBytes(new TextEncoder().encode(k), 256).text] = text(v);
  }
  return {
    topic: r.topic,
    partition: r.partition,
    offset: r.offset,
    kafka_timestamp: r.kafka_timestamp,
    dead_lettered_at: r.dead_lettered_at,
    reason: r.reason,
    detail: escapeBytes(new TextEncoder().encode(r.detail ?? ""), 2000).text,
    key: text(r.key_base64),
    headers,
    value: value?.text ?? null,
    value_bytes: r.value_bytes,
    // Not shown: past the limit, or not kept at all (the file may keep
    // only a prefix of a record too large to hold).
    value_omitted_bytes: kept && value
      ? Math.max(0, r.value_bytes - (kept.length - value.omittedBytes))
      : 0,
    file: r.file,
  };
}

/** A page of dead letters, newest first. */
export interface DeadLetterPage {
  deadLetters: DeadLetterView[];
  /** Every reason the validator gives, with its meaning (the filter's choices). */
  reasons: { reason: RejectReason; meaning: string }[];
  /** Files read for this answer. */
  scannedFiles: number;
  /** False when the scan stopped at MAX_SCAN_BYTES: older matches may exist. */
  complete: boolean;
}

/**
 * The newest `limit` dead letters (by dead-letter time), optionally only of
 * `reason` and only older than `before`, each with its redrive state.
 */
export async function recentDeadLetters(
  config: Config,
  db: Db,
  opts: { reason?: string; limit: number; before?: Date },
): Promise<DeadLetterPage> {
  const hdfs = createWebHdfs(config, { timeoutMs: 60_000 });
  const files = await listDeadLetterFiles(config);
  const before = opts.before?.toISOString();
  let picked: DeadLetterRow[] = [];
  let scanned = 0;
  let bytes = 0;
  let complete = true;
  const newestFirst = (a: DeadLetterRow, b: DeadLetterRow) =>
    a.dead_lettered_at < b.dead_lettered_at
      ? 1
      : a.dead_lettered_at > b.dead_lettered_at
      ? -1
      : b.partition - a.partition || b.offset - a.offset;
  for (const f of files) {
    const last = picked[opts.limit - 1];
    if (
      last &&
      Date.parse(last.dead_lettered_at) > f.modificationTime + CLOCK_MARGIN_MS
    ) break; // no record of this file or an older one can be newer
    if (bytes + f.length > MAX_SCAN_BYTES && scanned > 0) {
      complete = false;
      break;
    }
    bytes += f.length;
    scanned++;
    const rows = parseDeadLetterLines(
      await hdfs.readText(f.path),
      f.pathSuffix,
      f.path,
    ).filter((r) =>
      (opts.reason === undefined || r.reason === opts.reason) &&
      (before === undefined || r.dead_lettered_at < before)
    );
    if (rows.length) {
      picked = [...picked, ...rows].sort(newestFirst).slice(0, opts.limit);
    }
  }
  const redriven = await redriveStates(db, picked);
  return {
    deadLetters: picked.map((r) => ({
      ...viewOf(r),
      redriven: redriven.get(coordinates(r)) ?? null,
    })),
    reasons: Object.entries(REJECT_REASONS).map(([reason, meaning]) => ({
      reason: reason as RejectReason,
      meaning,
    })),
    scannedFiles: scanned,
    complete,
  };
}

function coordinates(r: { topic: string; partition: number; offset: number }) {
  return `${r.topic}/${r.partition}/${r.offset}`;
}

async function redriveStates(
  db: Db,
  rows: DeadLetterRow[],
): Promise<Map<string, DeadLetterView["redriven"]>> {
  const out = new Map<string, DeadLetterView["redriven"]>();
  if (!rows.length) return out;
  const { rows: found } = await db.query<{
    dl_topic: string;
    dl_partition: number;
    dl_offset: string;
    state: "sending" | "sent";
    topic: string | null;
    partition: number | null;
    offset: string | null;
    sent_at: Date | null;
  }>(
    `select r.dl_topic, r.dl_partition, r.dl_offset, r.state, r.topic,
            r.partition, r."offset", r.sent_at
       from ops.redriven r
       join unnest($1::text[], $2::int[], $3::bigint[]) as k(t, p, o)
         on r.dl_topic = k.t and r.dl_partition = k.p and r.dl_offset = k.o`,
    [
      rows.map((r) => r.topic),
      rows.map((r) => r.partition),
      rows.map((r) => r.offset),
    ],
  );
  for (const f of found) {
    out.set(
      coordinates({
        topic: f.dl_topic,
        partition: f.dl_partition,
        offset: Number(f.dl_offset),
      }),
      {
        state: f.state,
        topic: f.topic,
        partition: f.partition,
        offset: f.offset === null ? null : Number(f.offset),
        at: f.sent_at?.toISOString() ?? null,
      },
    );
  }
  return out;
}
