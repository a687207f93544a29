/**
 * The HDFS raw zone as the batch sees it: committed Parquet files (named by
 * the consumer with their Kafka coordinates, visible only after an atomic
 * rename, so every listed file is complete), found folder by folder.
 *
 * Listing is in two steps so a caller can look at only what changed:
 * {@link listHourFolders} reads the `event_date=` folders and their
 * `event_hour=` folders with their HDFS modification times (one LISTSTATUS
 * per day folder, ≤ 24 entries each), then {@link listFolderFiles} lists the
 * files of the chosen hour folders. A folder's modification time changes
 * whenever a file is added to it, renamed into it or deleted from it (a late
 * event, a compaction), so a folder whose time did not change holds the same
 * files as before.
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

/** One `event_date=…/event_hour=…` folder of the raw zone. */
export interface HourFolder {
  eventDate: string;
  eventHour: number;
  /** Absolute HDFS path of the folder. */
  dir: string;
  /** Start of the event hour the folder holds. */
  start: Date;
  /** The folder's HDFS modification time (ms since epoch). */
  mtime: number;
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

/** Runs `fn` over `items`, `concurrency` at a time. */
async function eachLimited<T>(
  items: T[],
  concurrency: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, worker),
  );
}

/**
 * Every hour folder of the raw zone with its modification time, sorted by
 * hour: one LISTSTATUS of the zone, then one per day folder (`concurrency`
 * in flight). Only `event_date=` folders accepted by `dates` are read.
 */
export async function listHourFolders(
  hdfs: WebHdfs,
  rawDir: string,
  opts: { concurrency?: number; dates?: (date: string) => boolean } = {},
): Promise<HourFolder[]> {
  const root = rawDir.replace(/\/+$/, "");
  const days: string[] = [];
  for (const d of await hdfs.listOrEmpty(root)) {
    const m = /^event_date=(\d{4}-\d{2}-\d{2})$/.exec(d.pathSuffix);
    if (d.type !== "DIRECTORY" || !m) continue;
    if (opts.dates && !opts.dates(m[1])) continue;
    days.push(m[1]);
  }
  const out: HourFolder[] = [];
  await eachLimited(days, opts.concurrency ?? 8, async (date) => {
    for (const h of await hdfs.listOrEmpty(`${root}/event_date=${date}`)) {
      const m = /^event_hour=(\d{2})$/.exec(h.pathSuffix);
      if (h.type !== "DIRECTORY" || !m || Number(m[1]) > 23) continue;
      const folder = {
        eventDate: date,
        eventHour: Number(m[1]),
        dir: `${root}/event_date=${date}/${h.pathSuffix}`,
        mtime: h.modificationTime,
      };
      out.push({ ...folder, start: partitionStart(folder) });
    }
  });
  return out.sort((a, b) => a.start.getTime() - b.start.getTime());
}

/** The committed files of `folders` (one LISTSTATUS each, `concurrency` in flight). */
export async function listFolderFiles(
  hdfs: WebHdfs,
  rawDir: string,
  folders: Pick<HourFolder, "dir">[],
  opts: { concurrency?: number } = {},
): Promise<RawFile[]> {
  const entries: Array<
    { path: string; length: number; modificationTime: number }
  > = [];
  await eachLimited(folders, opts.concurrency ?? 8, async ({ dir }) => {
    for (const s of await hdfs.listOrEmpty(dir)) {
      if (s.type !== "FILE") continue;
      entries.push({
        path: `${dir}/${s.pathSuffix}`,
        length: s.length,
        modificationTime: s.modificationTime,
      });
    }
  });
  return rawFilesFromListing(rawDir, entries);
}

/**
 * Lists every committed file of the raw zone (or of the hours `hours`
 * accepts). Its cost grows with the whole zone: the batch lists only what
 * changed (see pipeline/batch/listing.ts); this is for backfills, tools and
 * tests.
 */
export async function listRawFiles(
  hdfs: WebHdfs,
  rawDir: string,
  opts: {
    concurrency?: number;
    hours?: (date: string, hour: number) => boolean;
  } = {},
): Promise<RawFile[]> {
  const folders = (await listHourFolders(hdfs, rawDir, opts)).filter((f) =>
    !opts.hours || opts.hours(f.eventDate, f.eventHour)
  );
  return await listFolderFiles(hdfs, rawDir, folders, opts);
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
