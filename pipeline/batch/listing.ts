/**
 * The batch's listing step: which raw-zone files are new, at a cost that
 * grows with the new data, not with the zone's history.
 *
 * 1. One LISTSTATUS of the zone and one per day folder give every hour
 *    folder with its HDFS modification time (≤ 24 small entries per day:
 *    the only part that grows with history, by days, not files).
 * 2. Files are listed only in the hour folders (a) at or after the
 *    watermark (the newest hour folder in the ledger, at most now) minus
 *    LOGPIPE_BATCH_LOOKBACK_HOURS, where new files arrive, and (b) older
 *    ones whose modification time differs from the one recorded in
 *    raw.raw_hours when all their files were last loaded. HDFS changes a
 *    folder's modification time whenever a file is added, renamed into it
 *    or deleted, so a late event in an old hour, however late, changes its
 *    folder and is listed; an unchanged folder holds no new file.
 * 3. The listed files are looked up in the ledger by path (primary key):
 *    one indexed lookup per listed file, never a read of the whole ledger.
 *
 * After a successful load, {@link settleFolders} records each listed
 * folder's modification time. A folder whose time is within a safety margin
 * of the listing's start is not settled (a file renamed in during the same
 * millisecond as the time we saw would not change it), so it is listed again.
 */
import type { Pool } from "../clients/postgres.ts";
import type { WebHdfs } from "../clients/webhdfs.ts";
import {
  type HourFolder,
  listFolderFiles,
  listHourFolders,
  type RawFile,
} from "../zones/raw_listing.ts";
import { ledgerByPath, ledgerWatermark } from "./ledger.ts";

/** A folder is settled only when its last change is older than this at listing time. */
export const SETTLE_MARGIN_MS = 60_000;

const HOUR = 3_600_000;

/** What the listing found. */
export interface RawListing {
  /** Folders whose files were listed. */
  folders: HourFolder[];
  /** Every file of those folders. */
  files: RawFile[];
  /** Files the ledger does not hold: to load. */
  toLoad: RawFile[];
  /** Paths of `files` (what the zone holds in the listed folders). */
  present: Set<string>;
  /** When the listing started (ms, this host's clock). */
  startedAt: number;
  stats: {
    dayFolders: number;
    hourFolders: number;
    listedFolders: number;
    /** Listed because older than the window and changed (or never settled). */
    changedOldFolders: number;
    filesListed: number;
    toLoad: number;
    windowStart: string | null;
    /** Wall time of the whole listing step, ledger lookup included. */
    ms: number;
  };
}

export interface ListingOptions {
  pool: Pool;
  hdfs: WebHdfs;
  rawDir: string;
  lookbackHours: number;
  now?: Date;
  concurrency?: number;
}

/** Lists what is new in the raw zone (steps 1–3 above). */
export async function listNewFiles(opts: ListingOptions): Promise<RawListing> {
  const t0 = performance.now();
  const startedAt = Date.now();
  const now = opts.now ?? new Date();
  const watermark = await ledgerWatermark(opts.pool, now);
  const windowStart = watermark
    ? watermark.getTime() - opts.lookbackHours * HOUR
    : -Infinity;
  const all = await listHourFolders(opts.hdfs, opts.rawDir, {
    concurrency: opts.concurrency ?? 8,
  });
  const old = all.filter((f) => f.start.getTime() < windowStart);
  const settled = new Map<number, number | null>();
  if (old.length) {
    const res = await opts.pool.query(
      `select hour_start, settled_mtime from raw.raw_hours
        where hour_start = any($1::timestamptz[])`,
      [old.map((f) => f.start)],
    );
    for (const r of res.rows) {
      settled.set(
        (r.hour_start as Date).getTime(),
        r.settled_mtime === null ? null : Number(r.settled_mtime),
      );
    }
  }
  let changedOld = 0;
  const folders = all.filter((f) => {
    if (f.start.getTime() >= windowStart) return true;
    const s = settled.get(f.start.getTime());
    if (s !== undefined && s !== null && s === f.mtime) return false;
    changedOld++;
    return true;
  });
  const files = await listFolderFiles(opts.hdfs, opts.rawDir, folders, {
    concurrency: opts.concurrency ?? 8,
  });
  const known = await ledgerByPath(opts.pool, files.map((f) => f.path));
  const toLoad = files.filter((f) => !known.has(f.path));
  return {
    folders,
    files,
    toLoad,
    present: new Set(files.map((f) => f.path)),
    startedAt,
    stats: {
      dayFolders: new Set(all.map((f) => f.eventDate)).size,
      hourFolders: all.length,
      listedFolders: folders.length,
      changedOldFolders: changedOld,
      filesListed: files.length,
      toLoad: toLoad.length,
      windowStart: Number.isFinite(windowStart)
        ? new Date(windowStart).toISOString()
        : null,
      ms: Math.round(performance.now() - t0),
    },
  };
}

/**
 * Records, after every listed file was loaded or set aside, each listed
 * folder's modification time (settled, unless too recent), its file count
 * and whether some partition has more than one file there (compaction).
 */
export async function settleFolders(
  pool: Pool,
  listing: RawListing,
  marginMs = SETTLE_MARGIN_MS,
): Promise<void> {
  if (listing.folders.length === 0) return;
  const perFolder = new Map<string, Map<string, number>>();
  for (const f of listing.files) {
    const dir = f.path.slice(0, f.path.lastIndexOf("/"));
    let m = perFolder.get(dir);
    if (!m) perFolder.set(dir, m = new Map());
    const k = `${f.coords.topic}+${f.coords.partition}`;
    m.set(k, (m.get(k) ?? 0) + 1);
  }
  const limit = listing.startedAt - marginMs;
  const rows = listing.folders.map((f) => {
    const counts = perFolder.get(f.dir) ?? new Map<string, number>();
    return {
      hour_start: f.start.toISOString(),
      settled_mtime: f.mtime < limit ? f.mtime : null,
      files: [...counts.values()].reduce((a, b) => a + b, 0),
      needs_compaction: [...counts.values()].some((n) => n > 1),
    };
  });
  for (let i = 0; i < rows.length; i += 5000) {
    await pool.query(
      `insert into raw.raw_hours (hour_start, settled_mtime, files, needs_compaction, listed_at)
       select (r->>'hour_start')::timestamptz, (r->>'settled_mtime')::bigint,
              (r->>'files')::int, (r->>'needs_compaction')::boolean, now()
         from jsonb_array_elements($1::jsonb) r
       on conflict (hour_start) do update set settled_mtime = excluded.settled_mtime,
         files = excluded.files, needs_compaction = excluded.needs_compaction,
         listed_at = excluded.listed_at`,
      [JSON.stringify(rows.slice(i, i + 5000))],
    );
  }
}
