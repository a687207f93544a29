/**
 * The HDFS raw zone as the batch sees it: committed Parquet files (named by
 * the consumer with their Kafka coordinates, visible only after an atomic
 * rename, so every listed file is complete), and which of them the ledger
 * already holds.
 */
import type { WebHdfs } from "../clients/webhdfs.ts";
import {
  type DataFileName,
  parseDataFileName,
  parseRawPartition,
} from "./names.ts";

/** One committed raw-zone file. */
export interface RawFile {
  path: string;
  coords: DataFileName;
  eventDate: string;
  eventHour: number;
  /** Bytes, per the NameNode. */
  length: number;
  modificationTime: number;
}

/** Start (inclusive) of the event hour a raw file's partition covers. */
export function partitionStart(
  f: Pick<RawFile, "eventDate" | "eventHour">,
): Date {
  return new Date(
    `${f.eventDate}T${String(f.eventHour).padStart(2, "0")}:00:00Z`,
  );
}

/**
 * Turns a listing into raw files: Parquet files named like the consumer's,
 * inside an `event_date=/event_hour=` partition. Temporary (`_tmp…`, `.…`)
 * entries and anything else are ignored. Sorted by path (date, hour, topic,
 * partition, offsets).
 */
export function rawFilesFromListing(
  rawDir: string,
  entries: Array<{ path: string; length: number; modificationTime: number }>,
): RawFile[] {
  const prefix = rawDir.replace(/\/+$/, "") + "/";
  const out: RawFile[] = [];
  for (const e of entries) {
    if (!e.path.startsWith(prefix)) continue;
    const rel = e.path.slice(prefix.length);
    const parts = rel.split("/");
    if (parts.length !== 3 || parts.some((p) => /^[_.]/.test(p))) continue;
    const coords = parseDataFileName(parts[2]);
    const part = parseRawPartition(rel);
    if (!coords || coords.extension !== "parquet" || !part) continue;
    out.push({
      path: e.path,
      coords,
      eventDate: part.eventDate,
      eventHour: part.eventHour,
      length: e.length,
      modificationTime: e.modificationTime,
    });
  }
  return out.sort((a, b) => a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
}

/**
 * Lists every committed file of the raw zone. Partition folders are listed
 * a few at a time in parallel (one LISTSTATUS per hour folder).
 */
export async function listRawFiles(
  hdfs: WebHdfs,
  rawDir: string,
  opts: {
    concurrency?: number;
    hours?: (date: string, hour: number) => boolean;
  } = {},
): Promise<RawFile[]> {
  const dirs: string[] = [];
  for (const d of await hdfs.listOrEmpty(rawDir)) {
    if (
      d.type !== "DIRECTORY" ||
      !/^event_date=\d{4}-\d{2}-\d{2}$/.test(d.pathSuffix)
    ) {
      continue;
    }
    const date = d.pathSuffix.slice("event_date=".length);
    for (const h of await hdfs.listOrEmpty(`${rawDir}/${d.pathSuffix}`)) {
      const m = /^event_hour=(\d{2})$/.exec(h.pathSuffix);
      if (h.type !== "DIRECTORY" || !m) continue;
      if (opts.hours && !opts.hours(date, Number(m[1]))) continue;
      dirs.push(`${rawDir}/${d.pathSuffix}/${h.pathSuffix}`);
    }
  }
  const entries: Array<
    { path: string; length: number; modificationTime: number }
  > = [];
  let next = 0;
  const worker = async () => {
    while (next < dirs.length) {
      const dir = dirs[next++];
      for (const s of await hdfs.listOrEmpty(dir)) {
        if (s.type !== "FILE") continue;
        entries.push({
          path: `${dir}/${s.pathSuffix}`,
          length: s.length,
          modificationTime: s.modificationTime,
        });
      }
    }
  };
  await Promise.all(
    Array.from(
      { length: Math.min(opts.concurrency ?? 4, dirs.length) },
      worker,
    ),
  );
  return rawFilesFromListing(rawDir, entries);
}

/** Hour partitions [start, start+1h) overlapping [from, to). */
export function hourOverlaps(
  date: string,
  hour: number,
  from: Date,
  to: Date,
): boolean {
  const start = partitionStart({ eventDate: date, eventHour: hour }).getTime();
  return start < to.getTime() && start + 3_600_000 > from.getTime();
}
