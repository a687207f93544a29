/**
 * The exactly-once commit protocol of the stream consumer (Kafka → HDFS).
 *
 * One micro-batch is the records of ONE Kafka partition at offsets
 * [F, L]. It becomes several files: one Parquet file per event hour in the
 * raw zone and one NDJSON file per day in the dead-letter zone, each named
 * with its own first/last offset (see names.ts). A batch must become
 * visible all or nothing, and a crash (kill -9) at any instant must leave a
 * state from which restart produces every record exactly once.
 *
 * Layout under `${root}/_tmp` (ignored by every reader of the zones):
 *   staging/<topic>+<p>+<F>+<L>+<uuid>/      a batch being written
 *   committed/<topic>+<p>+<F>+<L>+<uuid>/    a batch that IS committed
 * Files inside both are named `<zone>~<dir…>~<final name>` (the final path
 * relative to its zone, "/" written as "~"), so one listing tells where each
 * one goes.
 *
 * Commit (per batch, in this order):
 *   1. write every file of the batch into a fresh staging folder;
 *   2. check the consumer still owns the partition (same group generation);
 *   3. COMMIT POINT: rename staging/<batch> → committed/<batch>. One atomic
 *      NameNode operation, so the whole batch is committed or none of it;
 *   4. roll forward: rename each file to its final path in its zone;
 *   5. delete the now empty committed/<batch> folder;
 *   6. (caller) commit offset L+1 to Kafka — an optimisation only: HDFS is
 *      the source of truth for the position.
 *
 * Recovery (on every partition assignment, before consuming it):
 *   a. delete staging/<topic>+<p>+* — batches that never reached the commit
 *      point (their records are re-consumed). Deleting them also fences a
 *      zombie previous owner still writing: its step-3 rename then fails;
 *   b. roll forward every committed/<topic>+<p>+* (finish steps 4–5); the
 *      renames are idempotent (a file already at its final path is fine);
 *   c. resume offset = 1 + the largest last offset over all final file names
 *      of the partition in the raw AND dead-letter zones (and the rolled
 *      forward batches). Every offset up to it is in exactly one file: files
 *      only appear through step 3 for a whole batch, and batches of one
 *      partition are contiguous (each starts where the previous ended).
 *
 * Crash windows: before 3 → staging is deleted, records re-consumed from the
 * previous resume point (nothing visible, nothing lost). Between 3 and 5 (even
 * after some files were moved) → the batch is committed; recovery finishes
 * moving it and resumes after L. Between 5 and 6 → Kafka's committed offset is
 * behind, but the resume point comes from HDFS, so nothing is re-written.
 * This is the Kafka Connect HDFS sink's "recover from file names", with the
 * committed/ folder standing in for its write-ahead log for multi-file batches.
 *
 * Zombies (a process that lost its partitions without knowing): step 2 checks
 * the generation; recovery step (a) makes a late rename fail. The remaining
 * window (a zombie that starts a NEW staging folder after the new owner
 * recovered and passes step 2 because it has not yet heard of the rebalance)
 * is closed by kafkajs' protocol: a member only rejoins after its eachBatch
 * returns, and we never start a batch commit outside the consumer's turn
 * without re-checking the generation.
 */
import type { WebHdfs } from "../clients/webhdfs.ts";
import { WebHdfsError } from "../clients/webhdfs.ts";
import { padOffset, parseDataFileName } from "./names.ts";

/** The two zones a batch writes into. */
export type Zone = "raw" | "dead_letter";

/** Where the zones and the temporary folders live (from config.hdfs). */
export interface HdfsLayout {
  root: string;
  rawDir: string;
  deadLetterDir: string;
}

/**
 * One file of a batch: its final location and its content, either bytes in
 * memory or a local file that is streamed to HDFS (so a large file is never
 * held in memory).
 */
export type BatchFile =
  & {
    zone: Zone;
    /** Folder below the zone, e.g. `event_date=2026-01-01/event_hour=07`. */
    dir: string;
    /** Final base name (formatDataFileName). */
    name: string;
  }
  & ({ bytes: Uint8Array } | { localPath: string });

/** Writes batch file `f` to `path` on HDFS (a local file is streamed). */
async function upload(
  hdfs: WebHdfs,
  path: string,
  f: BatchFile,
): Promise<void> {
  if ("bytes" in f) {
    await hdfs.create(path, f.bytes, { overwrite: true });
    return;
  }
  const file = await Deno.open(f.localPath);
  try {
    await hdfs.create(path, file.readable, { overwrite: true });
  } finally {
    // The stream closes the file when it was read to the end; not when the
    // upload failed before.
    try {
      file.close();
    } catch { /* already closed */ }
  }
}

/** A micro-batch of one partition ready to be committed. */
export interface CommitBatch {
  topic: string;
  partition: number;
  firstOffset: number;
  lastOffset: number;
  files: BatchFile[];
}

/** Where a test may crash the process on purpose (see failpoints in stream_consumer.ts). */
export type CommitPhase =
  | "staged" // all files in staging, before the commit point
  | "committed" // right after the commit-point rename
  | "rolling" // after the first file was moved to its zone
  | "rolled"; // all files moved, committed folder removed

export interface CommitHooks {
  /** Returns false when the partition is no longer ours: abort before the commit point. */
  stillOwner?: () => boolean;
  /** Called at each phase (failpoints, metrics). */
  onPhase?: (phase: CommitPhase) => void | Promise<void>;
}

/** Result of recovering partitions. */
export interface RecoveryResult {
  /** Next offset to consume per partition; absent when HDFS holds nothing of it. */
  resume: Map<number, number>;
  stagingRemoved: number;
  batchesRolledForward: number;
}

const SEP = "~";

/** `<zone>~<dir parts…>~<name>` for a file inside a staging/committed folder. */
export function encodeStagedName(
  f: Pick<BatchFile, "zone" | "dir" | "name">,
): string {
  const parts = [f.zone, ...f.dir.split("/").filter(Boolean), f.name];
  for (const p of parts) {
    if (p.includes(SEP) || p === "." || p === "..") {
      throw new RangeError(`cannot stage a path part ${JSON.stringify(p)}`);
    }
  }
  return parts.join(SEP);
}

/** Inverse of encodeStagedName; undefined for a foreign name. */
export function decodeStagedName(
  s: string,
): Pick<BatchFile, "zone" | "dir" | "name"> | undefined {
  const parts = s.split(SEP);
  if (parts.length < 2) return undefined;
  const zone = parts[0];
  if (zone !== "raw" && zone !== "dead_letter") return undefined;
  return { zone, dir: parts.slice(1, -1).join("/"), name: parts.at(-1)! };
}

/** `<topic>+<p>+<F>+<L>+<id>`, the name of a batch folder. */
export function batchFolderName(
  b: Pick<CommitBatch, "topic" | "partition" | "firstOffset" | "lastOffset">,
  id: string,
): string {
  return `${b.topic}+${b.partition}+${padOffset(b.firstOffset)}+${
    padOffset(b.lastOffset)
  }+${id}`;
}

/** Parses a batch folder name. */
export function parseBatchFolderName(
  s: string,
):
  | {
    topic: string;
    partition: number;
    firstOffset: number;
    lastOffset: number;
    id: string;
  }
  | undefined {
  const m = /^([A-Za-z0-9._-]+)\+(\d+)\+(\d{20})\+(\d{20})\+([A-Za-z0-9-]+)$/
    .exec(s);
  if (!m) return undefined;
  return {
    topic: m[1],
    partition: Number(m[2]),
    firstOffset: Number(m[3]),
    lastOffset: Number(m[4]),
    id: m[5],
  };
}

/** Writes, commits, rolls forward and recovers micro-batches on HDFS. */
export class HdfsCommitter {
  readonly stagingDir: string;
  readonly committedDir: string;
  /** Folders known to exist (mkdirs is skipped for them). */
  #knownDirs = new Set<string>();

  constructor(readonly hdfs: WebHdfs, readonly layout: HdfsLayout) {
    this.stagingDir = `${layout.root}/_tmp/staging`;
    this.committedDir = `${layout.root}/_tmp/committed`;
  }

  zoneDir(zone: Zone): string {
    return zone === "raw" ? this.layout.rawDir : this.layout.deadLetterDir;
  }

  /** Absolute final path of a batch file. */
  finalPath(f: Pick<BatchFile, "zone" | "dir" | "name">): string {
    const dir = f.dir
      ? `${this.zoneDir(f.zone)}/${f.dir}`
      : this.zoneDir(f.zone);
    return `${dir}/${f.name}`;
  }

  async #mkdirs(dir: string): Promise<void> {
    if (this.#knownDirs.has(dir)) return;
    await this.hdfs.mkdirs(dir);
    this.#knownDirs.add(dir);
  }

  /**
   * Commits one batch (steps 1–5 of the protocol). Returns false, having
   * made nothing visible, when `stillOwner` says the partition was lost or
   * the staging folder was removed by a new owner's recovery (fenced).
   *
   * `attempt` runs each step until it succeeds (the caller's retry with
   * backoff). Every step is safe to repeat: staging files are overwritten,
   * and the commit point first looks whether an earlier attempt went through
   * (a rename whose answer was lost to a timeout may have happened), so a
   * batch is never committed twice.
   */
  async commit(
    batch: CommitBatch,
    hooks: CommitHooks = {},
    attempt: <T>(what: string, fn: () => Promise<T>) => Promise<T> = (_w, fn) =>
      fn(),
  ): Promise<boolean> {
    if (batch.files.length === 0) {
      throw new RangeError("a batch has at least one file");
    }
    const folder = batchFolderName(batch, crypto.randomUUID());
    const staging = `${this.stagingDir}/${folder}`;
    const committed = `${this.committedDir}/${folder}`;
    // 1. stage (CREATE makes the parent folders)
    await attempt("stage batch files", async () => {
      for (const f of batch.files) {
        await upload(this.hdfs, `${staging}/${encodeStagedName(f)}`, f);
      }
    });
    await hooks.onPhase?.("staged");
    // 2. ownership
    if (hooks.stillOwner && !hooks.stillOwner()) {
      await this.hdfs.delete(staging, { recursive: true }).catch(() => {});
      return false;
    }
    // 3. commit point
    const done = await attempt("commit point", async () => {
      await this.#mkdirs(this.committedDir);
      if (await this.hdfs.exists(committed)) return true; // an earlier try went through
      if (!(await this.hdfs.exists(staging))) return false; // fenced by a new owner
      if (hooks.stillOwner && !hooks.stillOwner()) return false;
      if (await this.hdfs.rename(staging, committed)) return true;
      throw new Error(`rename ${staging} → ${committed} refused`);
    });
    if (!done) {
      await this.hdfs.delete(staging, { recursive: true }).catch(() => {});
      return false;
    }
    await hooks.onPhase?.("committed");
    // 4–5. roll forward
    await attempt("roll forward", () => this.rollForward(committed, hooks));
    await hooks.onPhase?.("rolled");
    return true;
  }

  /** Moves every file of a committed batch folder to its zone, then removes the folder. */
  async rollForward(
    committedFolder: string,
    hooks: CommitHooks = {},
  ): Promise<number> {
    const entries = await this.hdfs.listOrEmpty(committedFolder);
    let moved = 0;
    for (const e of entries) {
      const f = decodeStagedName(e.pathSuffix);
      if (!f || e.type !== "FILE") {
        throw new Error(
          `unexpected entry ${e.pathSuffix} in committed batch ${committedFolder}`,
        );
      }
      const dst = this.finalPath(f);
      await this.#mkdirs(dst.slice(0, dst.lastIndexOf("/")));
      const src = `${committedFolder}/${e.pathSuffix}`;
      if (!(await this.hdfs.rename(src, dst))) {
        // Idempotent: a concurrent recovery may have moved it already.
        const [srcThere, dstThere] = await Promise.all([
          this.hdfs.exists(src),
          this.hdfs.exists(dst),
        ]);
        if (srcThere || !dstThere) {
          throw new Error(`cannot move committed file ${src} to ${dst}`);
        }
      }
      moved++;
      if (moved === 1) await hooks.onPhase?.("rolling");
    }
    // Non-recursive: refuses (throws) if anything was left behind.
    try {
      await this.hdfs.delete(committedFolder, { recursive: false });
    } catch (err) {
      if (!(err instanceof WebHdfsError && err.notFound)) throw err;
    }
    return moved;
  }

  /**
   * Recovery for `partitions` of `topic` (steps a–c): removes their
   * uncommitted staging folders, finishes committed batches, and returns the
   * next offset to consume per partition (absent = nothing in HDFS yet).
   */
  async recover(topic: string, partitions: number[]): Promise<RecoveryResult> {
    const wanted = new Set(partitions);
    const resume = new Map<number, number>();
    const bump = (p: number, last: number) => {
      if (!wanted.has(p)) return;
      const next = last + 1;
      if ((resume.get(p) ?? -1) < next) resume.set(p, next);
    };
    let stagingRemoved = 0;
    for (const s of await this.hdfs.listOrEmpty(this.stagingDir)) {
      const b = parseBatchFolderName(s.pathSuffix);
      if (b && b.topic === topic && wanted.has(b.partition)) {
        await this.hdfs.delete(`${this.stagingDir}/${s.pathSuffix}`, {
          recursive: true,
        });
        stagingRemoved++;
      }
    }
    let batchesRolledForward = 0;
    for (const c of await this.hdfs.listOrEmpty(this.committedDir)) {
      const b = parseBatchFolderName(c.pathSuffix);
      if (b && b.topic === topic && wanted.has(b.partition)) {
        await this.rollForward(`${this.committedDir}/${c.pathSuffix}`);
        bump(b.partition, b.lastOffset);
        batchesRolledForward++;
      }
    }
    for (const zone of ["raw", "dead_letter"] as const) {
      for (
        const f of await this.hdfs.walk(this.zoneDir(zone), {
          skipHidden: true,
        })
      ) {
        const n = parseDataFileName(f.pathSuffix);
        if (n && n.topic === topic) bump(n.partition, n.lastOffset);
      }
    }
    return { resume, stagingRemoved, batchesRolledForward };
  }
}
