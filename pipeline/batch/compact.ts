/**
 * The batch's compaction task: merges the small files each Kafka partition
 * left in a closed event hour (ended LOGPIPE_COMPACTION_GRACE_MINUTES ago)
 * into one file, with the crash-safe protocol of pipeline/zones/compaction.ts,
 * then merges their ledger rows (ledger.ts) so the merged file is never
 * loaded again. Only files the ledger holds as loaded are merged: a file
 * that arrived since the load, or one set aside whole, stays as it is (the
 * next pass merges a late file with the compacted one).
 *
 * Which hours: raw.raw_hours rows flagged needs_compaction by the listing
 * (some partition has more than one file there), so the task's cost follows
 * what changed, not the zone's history.
 */
import type { Pool } from "../clients/postgres.ts";
import { withTransaction } from "../clients/postgres.ts";
import type { WebHdfs } from "../clients/webhdfs.ts";
import type { Logger } from "../log.ts";
import {
  type CompactionManifest,
  type CompactionPhase,
  RawCompactor,
} from "../zones/compaction.ts";
import { parseDataFileName, parseRawPartition } from "../zones/names.ts";
import { listFolderFiles, type RawFile } from "../zones/raw_listing.ts";
import { ledgerByPath, mergeLedgerRows } from "./ledger.ts";

const HOUR = 3_600_000;

/** What a compaction pass did. */
export interface CompactionReport {
  hoursChecked: number;
  groups: number;
  filesMerged: number;
  rows: number;
  bytes: number;
  /** Committed compactions a crash had left, finished now. */
  recovered: number;
  /** Uncommitted merges a crash had left, discarded now. */
  discarded: number;
  ms: number;
}

export interface CompactOptions {
  pool: Pool;
  hdfs: WebHdfs;
  layout: { root: string; rawDir: string };
  runId: string;
  log: Logger;
  graceMinutes: number;
  now?: Date;
  signal?: AbortSignal;
  onPhase?: (phase: CompactionPhase) => Promise<void>;
}

/** The raw file a manifest's merged file is, as a listing would give it. */
function mergedFile(m: CompactionManifest, bytes: number): RawFile {
  const path = `${m.dir}/${m.output}`;
  const part = parseRawPartition(path)!;
  return {
    path,
    coords: parseDataFileName(m.output)!,
    eventDate: part.eventDate,
    eventHour: part.eventHour,
    length: bytes,
    modificationTime: Date.now(),
  };
}

/** Merges the ledger rows of a finished compaction (no-op if done already). */
async function mergeLedger(
  pool: Pool,
  m: CompactionManifest,
  runId: string,
  log: Logger,
): Promise<void> {
  const merged = await withTransaction(
    pool,
    (client) =>
      mergeLedgerRows(client, {
        file: mergedFile(m, m.bytes),
        byteSize: m.bytes,
        checksum: m.checksum,
        runId,
        rowCount: m.rows,
      }, m.inputs.map((n) => `${m.dir}/${n}`)),
  );
  if (!merged) {
    // Done before, or the inputs were not all in the ledger: the loader
    // sorts it out by coordinates when it meets the merged file.
    log.info("compaction: ledger rows not merged here", {
      output: `${m.dir}/${m.output}`,
    });
  }
}

/**
 * Finishes or discards what a crashed compaction left (HDFS, then the
 * ledger). The load task runs this before listing, so it never sees a merged
 * file beside its inputs.
 */
export async function recoverCompactions(
  pool: Pool,
  hdfs: WebHdfs,
  layout: { root: string; rawDir: string },
  runId: string,
  log: Logger,
): Promise<{ recovered: number; discarded: number }> {
  const compactor = new RawCompactor(hdfs, layout);
  const r = await compactor.recover();
  for (const m of r.rolledForward) await mergeLedger(pool, m, runId, log);
  if (r.discarded || r.rolledForward.length) {
    log.warn("compaction: recovered after a crash", {
      discarded: r.discarded,
      rolled_forward: r.rolledForward.length,
    });
  }
  return { recovered: r.rolledForward.length, discarded: r.discarded };
}

/** One compaction pass over the closed hours that need it. */
export async function compactClosedHours(
  opts: CompactOptions,
): Promise<CompactionReport> {
  const t0 = performance.now();
  const { pool, hdfs, layout, runId, log } = opts;
  const now = opts.now ?? new Date();
  const report: CompactionReport = {
    hoursChecked: 0,
    groups: 0,
    filesMerged: 0,
    rows: 0,
    bytes: 0,
    recovered: 0,
    discarded: 0,
    ms: 0,
  };
  const rec = await recoverCompactions(pool, hdfs, layout, runId, log);
  report.recovered = rec.recovered;
  report.discarded = rec.discarded;
  const closedBefore = new Date(
    now.getTime() - HOUR - opts.graceMinutes * 60_000,
  );
  const hours = await pool.query(
    `select hour_start from raw.raw_hours
      where needs_compaction and hour_start <= $1 order by hour_start`,
    [closedBefore],
  );
  const compactor = new RawCompactor(hdfs, layout);
  const work = await Deno.makeTempDir({ prefix: "logpipe-compact-" });
  try {
    for (const { hour_start } of hours.rows as { hour_start: Date }[]) {
      if (opts.signal?.aborted) throw opts.signal.reason;
      const iso = hour_start.toISOString();
      const dir = `${layout.rawDir}/event_date=${iso.slice(0, 10)}/event_hour=${
        iso.slice(11, 13)
      }`;
      report.hoursChecked++;
      const files = await listFolderFiles(hdfs, layout.rawDir, [{ dir }]);
      const ledger = await ledgerByPath(pool, files.map((f) => f.path));
      const groups = new Map<string, RawFile[]>();
      for (const f of files) {
        if (ledger.get(f.path)?.status !== "loaded") continue;
        const k = `${f.coords.topic}+${f.coords.partition}`;
        const g = groups.get(k);
        if (g) g.push(f);
        else groups.set(k, [f]);
      }
      for (const inputs of groups.values()) {
        if (inputs.length < 2) continue;
        inputs.sort((a, b) => a.coords.firstOffset - b.coords.firstOffset);
        const result = await compactor.compact({ dir, inputs }, work, {
          onPhase: opts.onPhase,
        });
        await mergeLedger(pool, result.manifest, runId, log);
        report.groups++;
        report.filesMerged += inputs.length;
        report.rows += result.manifest.rows;
        report.bytes += result.manifest.bytes;
        log.info("compacted", {
          dir,
          output: result.manifest.output,
          files: inputs.length,
          rows: result.manifest.rows,
        });
      }
      // The folder changed (its mtime too): the next listing looks at it
      // again and says whether anything is left to merge.
      await pool.query(
        `update raw.raw_hours set needs_compaction = false, compacted_at = now(),
                settled_mtime = null
          where hour_start = $1`,
        [hour_start],
      );
    }
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
  report.ms = Math.round(performance.now() - t0);
  return report;
}
