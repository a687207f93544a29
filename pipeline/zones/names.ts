/**
 * Names and paths of the files the stream consumer commits to HDFS.
 *
 * A committed file's name carries the Kafka coordinates of the records it
 * holds: `<topic>+<partition>+<firstOffset>+<lastOffset>.<ext>`, offsets
 * zero-padded to 20 digits so names sort in offset order (the Kafka Connect
 * HDFS sink's convention). `+` cannot occur in a Kafka topic name, so the
 * name splits unambiguously. first/last are the smallest and largest offset
 * of the records in *that* file; offsets in between may live in a sibling
 * file of the same micro-batch (another event hour, or the dead-letter zone).
 *
 * Layout below the configured zones:
 *   raw:         `${rawDir}/event_date=YYYY-MM-DD/event_hour=HH/<name>.parquet`
 *   dead letter: `${deadLetterDir}/date=YYYY-MM-DD/<name>.ndjson`
 *
 * The batch loader lists the raw zone and uses {@link parseDataFileName} to
 * read the coordinates back; the consumer's recovery uses it to find the
 * highest committed offset of each partition.
 */

/** File formats of the two zones. */
export type DataFileExtension = "parquet" | "ndjson";

/** The Kafka coordinates a committed file's name carries. */
export interface DataFileName {
  topic: string;
  partition: number;
  /** Smallest Kafka offset of a record in the file. */
  firstOffset: number;
  /** Largest Kafka offset of a record in the file (inclusive). */
  lastOffset: number;
  extension: DataFileExtension;
}

const OFFSET_DIGITS = 20;
const TOPIC_RE = /^[A-Za-z0-9._-]{1,249}$/;
const NAME_RE =
  /^([A-Za-z0-9._-]{1,249})\+(\d{1,10})\+(\d{20})\+(\d{20})\.(parquet|ndjson)$/;

function checkOffset(what: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new RangeError(
      `${what} must be a non-negative safe integer, got ${n}`,
    );
  }
}

/** Zero-pads an offset to the 20 digits used in file names. */
export function padOffset(offset: number): string {
  checkOffset("offset", offset);
  return String(offset).padStart(OFFSET_DIGITS, "0");
}

/**
 * `<topic>+<partition>+<first 20 digits>+<last 20 digits>.<ext>`.
 * Throws RangeError on an invalid topic, partition or offset range.
 */
export function formatDataFileName(f: DataFileName): string {
  if (!TOPIC_RE.test(f.topic)) {
    throw new RangeError(
      `invalid Kafka topic name: ${JSON.stringify(f.topic)}`,
    );
  }
  if (
    !Number.isInteger(f.partition) || f.partition < 0 ||
    f.partition > 2 ** 31 - 1
  ) {
    throw new RangeError(`invalid partition: ${f.partition}`);
  }
  checkOffset("firstOffset", f.firstOffset);
  checkOffset("lastOffset", f.lastOffset);
  if (f.lastOffset < f.firstOffset) {
    throw new RangeError(
      `lastOffset ${f.lastOffset} is below firstOffset ${f.firstOffset}`,
    );
  }
  if (f.extension !== "parquet" && f.extension !== "ndjson") {
    throw new RangeError(`invalid extension: ${f.extension}`);
  }
  return `${f.topic}+${f.partition}+${padOffset(f.firstOffset)}+${
    padOffset(f.lastOffset)
  }.${f.extension}`;
}

/**
 * Parses a committed file's base name (no directory). Returns undefined for
 * anything that is not exactly such a name (temporary files, markers, other
 * tools' files), so callers can skip what is not theirs.
 */
export function parseDataFileName(name: string): DataFileName | undefined {
  const m = NAME_RE.exec(name);
  if (!m) return undefined;
  const partition = Number(m[2]);
  const firstOffset = Number(m[3]);
  const lastOffset = Number(m[4]);
  if (
    partition > 2 ** 31 - 1 || !Number.isSafeInteger(firstOffset) ||
    !Number.isSafeInteger(lastOffset) || lastOffset < firstOffset
  ) return undefined;
  return {
    topic: m[1],
    partition,
    firstOffset,
    lastOffset,
    extension: m[5] as DataFileExtension,
  };
}

/** `YYYY-MM-DD` and `HH` (UTC) of an instant. */
export function utcDateHour(ms: number): { date: string; hour: string } {
  const iso = new Date(ms).toISOString();
  return { date: iso.slice(0, 10), hour: iso.slice(11, 13) };
}

/** The raw zone's partition folder relative to rawDir: `event_date=…/event_hour=…`. */
export function rawPartitionDir(date: string, hour: string): string {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(date) || !/^([01]\d|2[0-3])$/.test(hour)) {
    throw new RangeError(`invalid event date/hour: ${date} ${hour}`);
  }
  return `event_date=${date}/event_hour=${hour}`;
}

/** The dead-letter zone's folder relative to deadLetterDir: `date=…`. */
export function deadLetterPartitionDir(date: string): string {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(date)) {
    throw new RangeError(`invalid date: ${date}`);
  }
  return `date=${date}`;
}

/** Parses `event_date=YYYY-MM-DD/event_hour=HH` out of a raw-zone path, if present. */
export function parseRawPartition(
  path: string,
): { eventDate: string; eventHour: number } | undefined {
  const m = /(?:^|\/)event_date=(\d{4}-\d{2}-\d{2})\/event_hour=(\d{2})(?:\/|$)/
    .exec(path);
  if (!m) return undefined;
  const hour = Number(m[2]);
  return hour <= 23 ? { eventDate: m[1], eventHour: hour } : undefined;
}

/**
 * The quarantine zone (`${root}/quarantine`): HDFS copies of what the batch
 * set aside, `date=YYYY-MM-DD/<source file name>+<run id>+q<first id>.ndjson`
 * (rows, one JSON line each, with the reason) or `….parquet` (a whole
 * refused file).
 * Written by pipeline/batch/quarantine.ts; raw.quarantine indexes it.
 */
export function quarantineDir(root: string): string {
  return `${root.replace(/\/+$/, "")}/quarantine`;
}
