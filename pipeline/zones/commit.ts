/**
 * The exactly-once commit protocol of the stream consumer (Kafka → HDFS).
 * README "Exactly once into HDFS" refers here.
 *
 * One micro-batch is the records of ONE Kafka partition at offsets
 * [F, L]. It becomes several files: one Parquet file per event hour in the
 * raw zone and one NDJSON file per day in the dead-letter zone, each named
 * with its own first/last offset (see names.ts). A batch must become
 * visible all or nothing, a crash (kill -9) at any instant must leave a
 * state from which a restart produces every record exactly once, and a
 * consumer that lost the partition (a "zombie": paused past its session
 * timeout, GC, SIGSTOP) must not be able to commit any more.
 *
 * State per partition (markers.ts): an owner EPOCH, claimed by creating an
 * empty file `_state/partitions/<topic>+<p>/e<E>` exclusively, a HIGH-WATER
 * MARKER `e<E>+<N>` (every offset below N is committed), and the owner's
 * committed-batch folder `_tmp/committed/<topic>+<p>+e<E>/`. Files inside
 * batch folders are named `<zone>~<dir…>~<final name>` (the final path
 * relative to its zone, "/" written as "~"), so one listing tells where
 * each one goes. Every folder starting with "_" is ignored by the readers.
 *
 * Commit (per batch, by the owner of epoch E whose marker says N = F):
 *   1. write every file of the batch into a fresh
 *      `_tmp/staging/<topic>+<p>+<F>+<L>+<uuid>/`;
 *   2. check the consumer still owns the partition (same group generation);
 *   3. COMMIT POINT: rename the staging folder into the owner's own
 *      `_tmp/committed/<topic>+<p>+e<E>/`. One atomic NameNode operation,
 *      so the whole batch is committed or none of it. The epoch folder is
 *      never created here (only at recovery), so once a newer owner removed
 *      it the rename fails: a zombie cannot commit;
 *   4. roll forward: rename each file to its final path in its zone;
 *   5. advance the marker: rename `e<E>+<F>` → `e<E>+<L+1>` (atomic; it
 *      fails once a newer owner took the marker over: the zombie learns it
 *      lost the partition);
 *   6. delete the now empty batch folder;
 *   7. (caller) commit offset L+1 to Kafka — for lag tools only: HDFS is
 *      the source of truth for the position.
 *
 * Recovery (on every partition assignment, before consuming it), per
 * partition, in time and memory independent of how many files the zones
 * hold (it lists only the tiny state folder and `_tmp`):
 *   a. claim epoch E' = 1 + the highest epoch named in the state folder
 *      (CREATE `e<E'>` overwrite=false; if another consumer just took E',
 *      list again and take the next), and create `_tmp/committed/…+e<E'>/`;
 *   b. for every older epoch folder of the partition: roll forward each
 *      batch in it (finish steps 4 and 6; renames are idempotent), then
 *      delete the folder NON-recursively; if that fails because a zombie
 *      renamed a batch into it meanwhile, roll that one forward too and try
 *      again. Once the folder is gone, the zombie's step 3 fails;
 *   c. delete the partition's staging folders (batches that never reached
 *      the commit point: their records are consumed again);
 *   d. resume offset N' = max(every marker's N, L+1 of every batch rolled
 *      forward); then create `e<E'>+<N'>` and delete the older epochs'
 *      claims and markers. Every offset below N' is in exactly one file:
 *      files only appear through step 3 for a whole batch, a marker only
 *      moves past a batch after its files are in the zones (5 after 4), and
 *      a batch folder is only removed after the marker moved past it (6
 *      after 5), so at every instant max(markers, committed batches) covers
 *      exactly what is committed. Zones written before markers existed have
 *      no marker: their position comes once from a walk of the zones, kept
 *      in `_state/topics/<topic>.legacy-positions.json`.
 *
 * Crash windows: before 3 → the staging folder is deleted, the records are
 * consumed again from N (nothing visible, nothing lost). Between 3 and 6
 * (even after some files were moved, or the marker advanced) → the batch is
 * committed; recovery finishes moving it and resumes after L. Between 6 and
 * 7 → Kafka's committed offset is behind, but the position comes from HDFS,
 * so nothing is written twice. This is the Kafka Connect HDFS sink's
 * recovery, with the marker instead of listing the files, and the epoch
 * folder standing in for its write-ahead log for multi-file batches.
 *
 * Zombies: step 2 checks the group generation, but a process paused past
 * its session timeout does not know it lost the partition. Its commit point
 * renames into its own epoch folder, which the new owner removed in step b
 * before it read any position: the rename fails, so nothing the zombie
 * staged appears in the zones. A rename that beat the removal is rolled
 * forward by the new owner and counted in its position (step b retries
 * until the folder is empty), so it is never written twice either.
 */
import type { WebHdfs } from "../clients/webhdfs.ts";
import { WebHdfsError } from "../clients/webhdfs.ts";
import { padOffset, parseDataFileName } from "./names.ts";
import {
  claimName,
  epochFolderName,
  legacyPositionsPath,
  markerName,
  parseEpochFolderName,
  parsePartitionMarkers,
  partitionStateDir,
} from "./markers.ts";

/** The two zones a batch writes into. */
export type Zone = "raw" | "dead_letter";

/** Where the zones, the state and the temporary folders live (from config.hdfs). */
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

/** Where a test may crash (or pause) the process on purpose (consumer/failpoints.ts). */
export type CommitPhase =
  | "staging" // the first file is in staging, the others not yet
  | "staged" // all files in staging, before the commit point
  | "committed" // right after the commit-point rename
  | "rolling" // after the first file was moved to its zone
  | "marked" // all files moved, marker advanced, batch folder still there
  | "rolled"; // batch folder removed

export interface CommitHooks {
  /** Returns false when the partition is no longer ours: abort before the commit point. */
  stillOwner?: () => boolean;
  /** Called at each phase (failpoints, metrics). */
  onPhase?: (phase: CommitPhase) => void | Promise<void>;
}

/** What a commit did. */
export type CommitOutcome =
  /** The batch is in the zones and the marker moved past it. */
  | "committed"
  /** Nothing visible: the partition was lost before the commit point. */
  | "fenced"
  /**
   * The batch is in the zones, but a newer owner took the partition over
   * (and counted the batch in its position): this consumer lost it.
   */
  | "committed-then-fenced";

/** Result of recovering partitions. */
export interface RecoveryResult {
  /** Next offset to consume per partition; absent when HDFS holds nothing of it. */
  resume: Map<number, number>;
  /** The owner epoch claimed per partition. */
  epochs: Map<number, number>;
  stagingRemoved: number;
  batchesRolledForward: number;
  /** True when a partition's position came from the one-time walk of legacy zones. */
  legacyWalk: boolean;
}

/** This process's ownership of a partition in HDFS. */
interface Ownership {
  epoch: number;
  /** The offset its marker holds (0: nothing committed yet). */
  next: number;
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
  /** Partitions this process owns in HDFS, by `<topic>+<p>`. */
  #owned = new Map<string, Ownership>();

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

  /** The owner epoch this process holds for a partition (after recover). */
  epochOf(topic: string, partition: number): number | undefined {
    return this.#owned.get(`${topic}+${partition}`)?.epoch;
  }

  async #mkdirs(dir: string): Promise<void> {
    if (this.#knownDirs.has(dir)) return;
    await this.hdfs.mkdirs(dir);
    this.#knownDirs.add(dir);
  }

  /**
   * Commits one batch (steps 1–6 of the protocol) as the partition's owner
   * (recover() first). Returns "fenced", having made nothing visible, when
   * `stillOwner` says the partition was lost or a newer owner removed our
   * epoch folder or staging folder; "committed-then-fenced" when the batch
   * went in but a newer owner took the marker over meanwhile.
   *
   * `attempt` runs each step until it succeeds (the caller's retry with
   * backoff). Every step is safe to repeat: staging files are overwritten,
   * the commit point and the marker first look whether an earlier attempt
   * went through (a rename whose answer was lost to a timeout may have
   * happened), so a batch is never committed twice.
   */
  async commit(
    batch: CommitBatch,
    hooks: CommitHooks = {},
    attempt: <T>(what: string, fn: () => Promise<T>) => Promise<T> = (_w, fn) =>
      fn(),
  ): Promise<CommitOutcome> {
    if (batch.files.length === 0) {
      throw new RangeError("a batch has at least one file");
    }
    const key = `${batch.topic}+${batch.partition}`;
    const own = this.#owned.get(key);
    if (!own) {
      throw new Error(`partition ${key} is not owned: recover() it first`);
    }
    const folder = batchFolderName(batch, crypto.randomUUID());
    const staging = `${this.stagingDir}/${folder}`;
    const epochDir = `${this.committedDir}/${
      epochFolderName(batch.topic, batch.partition, own.epoch)
    }`;
    const committed = `${epochDir}/${folder}`;
    // 1. stage (CREATE makes the parent folders)
    await attempt("stage batch files", async () => {
      let first = true;
      for (const f of batch.files) {
        await upload(this.hdfs, `${staging}/${encodeStagedName(f)}`, f);
        if (first && batch.files.length > 1) await hooks.onPhase?.("staging");
        first = false;
      }
    });
    await hooks.onPhase?.("staged");
    // 2. ownership
    if (hooks.stillOwner && !hooks.stillOwner()) {
      await this.hdfs.delete(staging, { recursive: true }).catch(() => {});
      return "fenced";
    }
    // 3. commit point
    let fencedInHdfs = false;
    const done = await attempt("commit point", async () => {
      if (await this.hdfs.exists(committed)) return true; // an earlier try went through
      if (hooks.stillOwner && !hooks.stillOwner()) return false;
      if (await this.hdfs.rename(staging, committed)) return true;
      // Refused: our epoch folder is gone (a newer owner fenced us), or the
      // staging folder is (a newer owner's recovery deleted it).
      const [dirThere, stagingThere] = await Promise.all([
        this.hdfs.exists(epochDir),
        this.hdfs.exists(staging),
      ]);
      if (!dirThere || !stagingThere) {
        fencedInHdfs = true;
        return false;
      }
      throw new Error(`rename ${staging} → ${committed} refused`);
    });
    if (!done) {
      await this.hdfs.delete(staging, { recursive: true }).catch(() => {});
      if (fencedInHdfs && this.#owned.get(key) === own) this.#owned.delete(key);
      return "fenced";
    }
    await hooks.onPhase?.("committed");
    // 4. roll forward
    await attempt("roll forward", () => this.#moveFiles(committed, hooks));
    // 5. advance the marker
    const dir = partitionStateDir(
      this.layout.root,
      batch.topic,
      batch.partition,
    );
    const to = `${dir}/${markerName(own.epoch, batch.lastOffset + 1)}`;
    const marked = await attempt("advance marker", async () => {
      const from = `${dir}/${markerName(own.epoch, own.next)}`;
      if (await this.hdfs.rename(from, to)) return true;
      if (await this.hdfs.exists(to)) return true; // an earlier try went through
      if (!(await this.hdfs.exists(from))) return false; // a newer owner took it
      throw new Error(`rename ${from} → ${to} refused`);
    });
    if (!marked) {
      if (this.#owned.get(key) === own) this.#owned.delete(key);
      return "committed-then-fenced";
    }
    own.next = batch.lastOffset + 1;
    await hooks.onPhase?.("marked");
    // 6. the batch folder
    await attempt("remove batch folder", () => this.#removeFolder(committed));
    await hooks.onPhase?.("rolled");
    return "committed";
  }

  /** Moves every file of a committed batch folder to its zone. */
  async #moveFiles(
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
    return moved;
  }

  /** Deletes an (empty) folder non-recursively; gone already is fine. */
  async #removeFolder(path: string): Promise<void> {
    try {
      // Non-recursive: refuses (throws) if anything was left behind.
      await this.hdfs.delete(path, { recursive: false });
    } catch (err) {
      if (!(err instanceof WebHdfsError && err.notFound)) throw err;
    }
  }

  /** Moves a committed batch folder's files to their zones and removes it. */
  async rollForward(
    committedFolder: string,
    hooks: CommitHooks = {},
  ): Promise<number> {
    const moved = await this.#moveFiles(committedFolder, hooks);
    await this.#removeFolder(committedFolder);
    return moved;
  }

  /**
   * Recovery for `partitions` of `topic` (steps a–d, concurrently per
   * partition): claims a new owner epoch for each, fences and finishes the
   * older owners' committed batches, removes uncommitted staging folders,
   * and returns the next offset to consume per partition (absent = nothing
   * in HDFS yet). Lists only `_tmp` and the partitions' state folders,
   * never the zones (except once per topic for zones older than markers).
   */
  async recover(topic: string, partitions: number[]): Promise<RecoveryResult> {
    const [staging, committed] = await Promise.all([
      this.hdfs.listOrEmpty(this.stagingDir),
      this.hdfs.listOrEmpty(this.committedDir),
    ]);
    const result: RecoveryResult = {
      resume: new Map(),
      epochs: new Map(),
      stagingRemoved: 0,
      batchesRolledForward: 0,
      legacyWalk: false,
    };
    let legacy: Promise<Map<number, number>> | undefined;
    const legacyPositions = () => (legacy ??= this.#legacyPositions(topic));
    await Promise.all(partitions.map(async (p) => {
      const mine = (name: string) => {
        const b = parseBatchFolderName(name);
        if (b) return b.topic === topic && b.partition === p;
        const e = parseEpochFolderName(name);
        return !!e && e.topic === topic && e.partition === p;
      };
      const r = await this.#recoverPartition(
        topic,
        p,
        staging.map((s) => s.pathSuffix).filter(mine),
        committed.map((c) => c.pathSuffix).filter(mine),
        legacyPositions,
      );
      if (r.next !== undefined) result.resume.set(p, r.next);
      result.epochs.set(p, r.epoch);
      result.stagingRemoved += r.stagingRemoved;
      result.batchesRolledForward += r.rolled;
      if (r.legacy) result.legacyWalk = true;
    }));
    return result;
  }

  async #recoverPartition(
    topic: string,
    p: number,
    stagingNames: string[],
    committedNames: string[],
    legacyPositions: () => Promise<Map<number, number>>,
  ): Promise<
    {
      epoch: number;
      next: number | undefined;
      stagingRemoved: number;
      rolled: number;
      legacy: boolean;
    }
  > {
    const dir = partitionStateDir(this.layout.root, topic, p);
    // a. claim a new epoch
    let epoch = 0;
    for (;;) {
      const listed = parsePartitionMarkers(
        (await this.hdfs.listOrEmpty(dir)).map((e) => e.pathSuffix),
      );
      let highest = listed.maxEpoch;
      for (const n of committedNames) {
        highest = Math.max(highest, parseEpochFolderName(n)?.epoch ?? 0);
      }
      epoch = highest + 1;
      try {
        await this.hdfs.create(`${dir}/${claimName(epoch)}`, new Uint8Array(), {
          overwrite: false,
        });
        break;
      } catch (err) {
        if (!isAlreadyExists(err)) throw err; // another owner took it: next one
      }
    }
    const ownDir = `${this.committedDir}/${epochFolderName(topic, p, epoch)}`;
    // b. finish and fence the older owners' committed batches, and c. delete
    // uncommitted staging folders — all independent, so concurrently.
    let rolledNext = -1;
    let rolled = 0;
    const fence = async (name: string) => {
      const path = `${this.committedDir}/${name}`;
      const old = parseBatchFolderName(name); // layout before epochs
      if (old) {
        await this.rollForward(path);
        rolledNext = Math.max(rolledNext, old.lastOffset + 1);
        rolled++;
        return;
      }
      if (parseEpochFolderName(name)!.epoch >= epoch) return;
      for (let tries = 1;; tries++) {
        for (const b of await this.hdfs.listOrEmpty(path)) {
          const parsed = parseBatchFolderName(b.pathSuffix);
          if (!parsed) {
            throw new Error(`unexpected entry ${b.pathSuffix} in ${path}`);
          }
          await this.rollForward(`${path}/${b.pathSuffix}`);
          rolledNext = Math.max(rolledNext, parsed.lastOffset + 1);
          rolled++;
        }
        try {
          await this.#removeFolder(path);
          return;
        } catch (err) {
          // A zombie renamed a batch in after the listing: roll it too.
          if (tries >= 10) throw err;
        }
      }
    };
    await Promise.all([
      this.hdfs.mkdirs(ownDir),
      ...committedNames.map(fence),
      ...stagingNames.map((name) =>
        this.hdfs.delete(`${this.stagingDir}/${name}`, { recursive: true })
      ),
    ]);
    // d. the position: listed after the fence, so no older owner moves it any more
    const listed = parsePartitionMarkers(
      (await this.hdfs.listOrEmpty(dir)).map((e) => e.pathSuffix),
    );
    let next: number | undefined = rolledNext >= 0 ? rolledNext : undefined;
    for (const m of listed.markers) {
      if (m.epoch < epoch && m.next > 0) next = Math.max(next ?? 0, m.next);
    }
    let legacy = false;
    if (listed.markers.length === 0) {
      const fromWalk = (await legacyPositions()).get(p);
      if (fromWalk !== undefined) {
        next = Math.max(next ?? 0, fromWalk);
        legacy = true;
      }
    }
    // Always a marker (0 = nothing committed), so that even the first
    // commit moves it by a rename, which a newer owner can make fail. Taking
    // an older marker over is one rename; else one is created.
    const marker = `${dir}/${markerName(epoch, next ?? 0)}`;
    const older = listed.markers.filter((m) => m.epoch < epoch);
    const reused = older.length > 0 &&
      await this.hdfs.rename(`${dir}/${older[0].name}`, marker).catch(() =>
        false
      );
    if (!reused) {
      try {
        await this.hdfs.create(marker, new Uint8Array(), { overwrite: false });
      } catch (err) {
        if (!isAlreadyExists(err)) throw err;
      }
    }
    await Promise.all([
      ...listed.claims.filter((c) => c < epoch).map((c) =>
        this.#deleteIfThere(`${dir}/${claimName(c)}`)
      ),
      ...older.slice(reused ? 1 : 0).map((m) =>
        this.#deleteIfThere(`${dir}/${m.name}`)
      ),
    ]);
    this.#owned.set(`${topic}+${p}`, { epoch, next: next ?? 0 });
    return {
      epoch,
      next: next ? next : undefined,
      stagingRemoved: stagingNames.length,
      rolled,
      legacy,
    };
  }

  /**
   * Sets partition p's position to `next` (an explicit reset: offsets start
   * over after the topic was re-created). The partition must be owned.
   */
  async resetPosition(topic: string, p: number, next: number): Promise<void> {
    const own = this.#owned.get(`${topic}+${p}`);
    if (!own) throw new Error(`partition ${topic}+${p} is not owned`);
    const dir = partitionStateDir(this.layout.root, topic, p);
    const to = `${dir}/${markerName(own.epoch, next)}`;
    if (own.next === next) return;
    if (
      !(await this.hdfs.rename(`${dir}/${markerName(own.epoch, own.next)}`, to))
    ) {
      throw new Error(`could not reset the position of ${topic}+${p}`);
    }
    own.next = next;
  }

  /** Forgets the ownership of a partition this process no longer holds. */
  release(topic: string, p: number): void {
    this.#owned.delete(`${topic}+${p}`);
  }

  async #deleteIfThere(path: string): Promise<void> {
    await this.hdfs.delete(path, { recursive: false }).catch((err) => {
      if (!(err instanceof WebHdfsError && err.notFound)) throw err;
    });
  }

  /**
   * Positions of zones written before markers existed: one walk of both
   * zones for the whole topic, kept in a small file so it happens once.
   */
  async #legacyPositions(topic: string): Promise<Map<number, number>> {
    const path = legacyPositionsPath(this.layout.root, topic);
    const read = async () => {
      const text = await this.hdfs.readText(path);
      const obj = JSON.parse(text) as Record<string, number>;
      return new Map(Object.entries(obj).map(([k, v]) => [Number(k), v]));
    };
    if (await this.hdfs.exists(path)) return await read();
    const next = new Map<number, number>();
    for (const zone of ["raw", "dead_letter"] as const) {
      for (
        const f of await this.hdfs.walk(this.zoneDir(zone), {
          skipHidden: true,
        })
      ) {
        const n = parseDataFileName(f.pathSuffix);
        if (n && n.topic === topic) {
          next.set(
            n.partition,
            Math.max(next.get(n.partition) ?? 0, n.lastOffset + 1),
          );
        }
      }
    }
    try {
      await this.hdfs.create(
        path,
        JSON.stringify(Object.fromEntries(next)),
        { overwrite: false },
      );
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
      return await read(); // another consumer walked first
    }
    return next;
  }
}

function isAlreadyExists(err: unknown): boolean {
  return err instanceof WebHdfsError &&
    (err.exception === "FileAlreadyExistsException" ||
      /already exists/i.test(err.message));
}
