/**
 * Compaction of the raw zone: the small files one Kafka partition left in a
 * closed event hour become one file, atomically, and a kill -9 at any
 * instant never loses or doubles a row.
 *
 * A compacted file keeps the naming contract (names.ts): same folder,
 * `<topic>+<partition>+<min first>+<max last>.parquet` of the files it
 * merged, so recovery, the batch and the audit read it like any other file.
 * Files of one (topic, partition, hour folder) never overlap in offsets, and
 * the inputs are at least two, so the merged name is never an input's name.
 *
 * Layout under `${root}/_tmp/compaction` (ignored by every reader):
 *   staging/<id>/     the merged file and manifest.json being written
 *   committed/<id>/   a compaction that IS committed (being rolled forward)
 * manifest.json names the hour folder, the merged file and the inputs.
 *
 * Protocol (one group = one topic + partition + hour folder):
 *   1. download the inputs, merge them with DuckDB (ordered by offset),
 *      check the merged file holds exactly the inputs' rows (count, distinct
 *      offsets, offset range), write it and the manifest to staging/<id>/;
 *   2. COMMIT POINT: rename staging/<id> → committed/<id> (one atomic
 *      NameNode operation);
 *   3. roll forward: rename the merged file into the hour folder, THEN
 *      delete the inputs, then the manifest and the folder.
 * Recovery (before every compaction pass and before the batch lists the
 * zone): delete staging/* (never committed: the inputs are intact), roll
 * every committed/* forward (each step is idempotent: a merged file already
 * in place, an input already gone are fine).
 *
 * Crash windows: before 2 → only staging litter, deleted by recovery; the
 * inputs still hold every row. Between 2 and the move → the inputs hold every
 * row, recovery moves the merged file in and deletes them. Between the move
 * and the last delete → the merged file AND some inputs are in the folder:
 * readers must not count both, so {@link pendingCompactionInputs} names the
 * inputs of committed compactions (logically deleted) and the batch runs
 * recovery before listing. The merged file is moved in BEFORE the inputs go,
 * so the highest offset of the partition is in the zone at every instant
 * (the consumer's legacy recovery reads it from file names) and no row is
 * ever absent.
 */
import { DuckDBInstance } from "@duckdb/node-api";
import type { WebHdfs } from "../clients/webhdfs.ts";
import { WebHdfsError } from "../clients/webhdfs.ts";
import { formatDataFileName, parseDataFileName } from "./names.ts";
import type { RawFile } from "./raw_listing.ts";
import { sha256Hex } from "../hash.ts";

/** Where a test may crash the process on purpose (batch --failpoint). */
export type CompactionPhase =
  | "compaction-staged" // merged file and manifest in staging, before the commit point
  | "compaction-committed" // right after the commit-point rename
  | "compaction-moved" // merged file in the hour folder, inputs still there
  | "compaction-deleting" // after the first input was deleted
  | "compaction-rolled"; // inputs deleted, committed folder removed

/** Every compaction phase, in protocol order. */
export const COMPACTION_PHASES: readonly CompactionPhase[] = [
  "compaction-staged",
  "compaction-committed",
  "compaction-moved",
  "compaction-deleting",
  "compaction-rolled",
];

/** What a committed compaction folder says it does. */
export interface CompactionManifest {
  version: 1;
  /** Absolute HDFS path of the hour folder. */
  dir: string;
  /** Base name of the merged file. */
  output: string;
  /** Base names of the merged files (all in `dir`). */
  inputs: string[];
  rows: number;
  bytes: number;
  /** `sha256:<hex>` of the merged file. */
  checksum: string;
}

/** The files of one topic + partition + hour folder to merge (≥ 2, loaded). */
export interface CompactionGroup {
  dir: string;
  inputs: RawFile[];
}

/** A finished compaction. */
export interface CompactionResult {
  manifest: CompactionManifest;
  /** Absolute path of the merged file. */
  outputPath: string;
}

export interface CompactionHooks {
  onPhase?: (phase: CompactionPhase) => void | Promise<void>;
}

const MANIFEST = "manifest.json";

/** `sha256:<hex>` of a raw file's bytes (the ledger's checksum column). */
export async function fileChecksum(bytes: Uint8Array): Promise<string> {
  return `sha256:${await sha256Hex(bytes)}`;
}

function sqlString(s: string): string {
  return `'${s.replaceAll("'", "''")}'`;
}

/** Merges raw files of closed hours and recovers half-done merges. */
export class RawCompactor {
  readonly stagingDir: string;
  readonly committedDir: string;

  constructor(
    readonly hdfs: WebHdfs,
    readonly layout: { root: string; rawDir: string },
  ) {
    this.stagingDir = `${layout.root}/_tmp/compaction/staging`;
    this.committedDir = `${layout.root}/_tmp/compaction/committed`;
  }

  /**
   * Checks a group can be merged: ≥ 2 files, one topic and partition, one
   * folder, offset ranges that do not overlap. Returns the merged name.
   */
  static mergedName(group: CompactionGroup): string {
    const files = [...group.inputs].sort((a, b) =>
      a.coords.firstOffset - b.coords.firstOffset
    );
    if (files.length < 2) {
      throw new RangeError("a compaction merges at least two files");
    }
    const { topic, partition } = files[0].coords;
    for (let i = 0; i < files.length; i++) {
      const f = files[i];
      if (
        f.coords.topic !== topic || f.coords.partition !== partition ||
        !f.path.startsWith(`${group.dir}/`) ||
        f.path.slice(group.dir.length + 1).includes("/")
      ) {
        throw new RangeError(
          `${f.path} is not of ${topic}+${partition} in ${group.dir}`,
        );
      }
      if (i > 0 && f.coords.firstOffset <= files[i - 1].coords.lastOffset) {
        throw new RangeError(
          `${f.path} overlaps ${files[i - 1].path}: not merged`,
        );
      }
    }
    return formatDataFileName({
      topic,
      partition,
      firstOffset: files[0].coords.firstOffset,
      lastOffset: Math.max(...files.map((f) => f.coords.lastOffset)),
      extension: "parquet",
    });
  }

  /**
   * Merges one group (steps 1–3). `workDir` is a local scratch folder.
   * Throws (nothing visible changed) when the merge does not check out.
   */
  async compact(
    group: CompactionGroup,
    workDir: string,
    hooks: CompactionHooks = {},
  ): Promise<CompactionResult> {
    const output = RawCompactor.mergedName(group);
    const id = `${output.replace(/\.parquet$/, "")}+${crypto.randomUUID()}`;
    const local = await Deno.makeTempDir({ dir: workDir, prefix: "merge-" });
    try {
      const paths: string[] = [];
      for (const [i, f] of group.inputs.entries()) {
        const p = `${local}/${i}.parquet`;
        await Deno.writeFile(p, await this.hdfs.read(f.path));
        paths.push(p);
      }
      const merged = `${local}/merged.parquet`;
      const rows = await mergeParquet(
        paths,
        merged,
        parseDataFileName(output)!,
      );
      const bytes = await Deno.readFile(merged);
      const manifest: CompactionManifest = {
        version: 1,
        dir: group.dir,
        output,
        inputs: group.inputs.map((f) => f.path.slice(group.dir.length + 1)),
        rows,
        bytes: bytes.length,
        checksum: await fileChecksum(bytes),
      };
      // 1. stage (CREATE makes the parent folders)
      const staging = `${this.stagingDir}/${id}`;
      await this.hdfs.create(`${staging}/${output}`, bytes, {
        overwrite: true,
      });
      await this.hdfs.create(
        `${staging}/${MANIFEST}`,
        JSON.stringify(manifest),
        { overwrite: true },
      );
      await hooks.onPhase?.("compaction-staged");
      // 2. commit point
      await this.hdfs.mkdirs(this.committedDir);
      const committed = `${this.committedDir}/${id}`;
      if (!(await this.hdfs.rename(staging, committed))) {
        throw new Error(`rename ${staging} → ${committed} refused`);
      }
      await hooks.onPhase?.("compaction-committed");
      // 3. roll forward
      await this.rollForward(committed, hooks);
      return { manifest, outputPath: `${group.dir}/${output}` };
    } finally {
      await Deno.remove(local, { recursive: true }).catch(() => {});
    }
  }

  async #manifest(folder: string): Promise<CompactionManifest> {
    const m = JSON.parse(await this.hdfs.readText(`${folder}/${MANIFEST}`));
    if (
      m?.version !== 1 || typeof m.dir !== "string" ||
      !m.dir.startsWith(`${this.layout.rawDir}/`) ||
      !parseDataFileName(m.output) || !Array.isArray(m.inputs) ||
      !m.inputs.every((n: unknown) =>
        typeof n === "string" && parseDataFileName(n)
      )
    ) {
      throw new Error(`invalid compaction manifest in ${folder}`);
    }
    return m as CompactionManifest;
  }

  /** Finishes a committed compaction: merged file in, inputs out, folder gone. */
  async rollForward(
    folder: string,
    hooks: CompactionHooks = {},
  ): Promise<CompactionManifest> {
    const m = await this.#manifest(folder);
    const src = `${folder}/${m.output}`;
    const dst = `${m.dir}/${m.output}`;
    if (!(await this.hdfs.rename(src, dst))) {
      // Idempotent: an earlier roll forward may have moved it already.
      const [srcThere, dstThere] = await Promise.all([
        this.hdfs.exists(src),
        this.hdfs.exists(dst),
      ]);
      if (srcThere || !dstThere) {
        throw new Error(`cannot move compacted file ${src} to ${dst}`);
      }
    }
    await hooks.onPhase?.("compaction-moved");
    let deleted = 0;
    for (const name of m.inputs) {
      await this.hdfs.delete(`${m.dir}/${name}`, { recursive: false });
      if (++deleted === 1) await hooks.onPhase?.("compaction-deleting");
    }
    await this.hdfs.delete(`${folder}/${MANIFEST}`).catch((err) => {
      if (!(err instanceof WebHdfsError && err.notFound)) throw err;
    });
    try {
      await this.hdfs.delete(folder, { recursive: false });
    } catch (err) {
      if (!(err instanceof WebHdfsError && err.notFound)) throw err;
    }
    await hooks.onPhase?.("compaction-rolled");
    return m;
  }

  /**
   * Recovery: discards uncommitted merges, finishes committed ones. Returns
   * what it did and the manifests it finished.
   */
  async recover(): Promise<
    { discarded: number; rolledForward: CompactionManifest[] }
  > {
    let discarded = 0;
    for (const s of await this.hdfs.listOrEmpty(this.stagingDir)) {
      await this.hdfs.delete(`${this.stagingDir}/${s.pathSuffix}`, {
        recursive: true,
      });
      discarded++;
    }
    const rolledForward: CompactionManifest[] = [];
    for (const c of await this.hdfs.listOrEmpty(this.committedDir)) {
      rolledForward.push(
        await this.rollForward(`${this.committedDir}/${c.pathSuffix}`),
      );
    }
    return { discarded, rolledForward };
  }
}

/**
 * Paths of raw files that a committed, not yet rolled forward compaction has
 * replaced: readers skip them (their rows are in the merged file, or will be
 * once recovery moves it in; see the crash windows above).
 */
export async function pendingCompactionInputs(
  hdfs: WebHdfs,
  layout: { root: string; rawDir: string },
): Promise<Set<string>> {
  const c = new RawCompactor(hdfs, layout);
  const out = new Set<string>();
  for (const s of await hdfs.listOrEmpty(c.committedDir)) {
    const folder = `${c.committedDir}/${s.pathSuffix}`;
    let text: string;
    try {
      text = await hdfs.readText(`${folder}/${MANIFEST}`);
    } catch (err) {
      // Rolled forward and removed while we looked.
      if (err instanceof WebHdfsError && err.notFound) continue;
      throw err;
    }
    const m = JSON.parse(text) as CompactionManifest;
    // Until the merged file is in the folder, the inputs are the live copy.
    if (!(await hdfs.exists(`${m.dir}/${m.output}`))) continue;
    for (const n of m.inputs) out.add(`${m.dir}/${n}`);
  }
  return out;
}

/**
 * Merges local Parquet files into `output` ordered by Kafka offset (zstd)
 * and proves the merge: as many rows as the inputs together, each offset
 * once, all of `expect`'s topic and partition, offsets inside its range.
 * Returns the row count.
 */
export async function mergeParquet(
  inputs: string[],
  output: string,
  expect: {
    topic: string;
    partition: number;
    firstOffset: number;
    lastOffset: number;
  },
): Promise<number> {
  const db = await DuckDBInstance.create(":memory:", {
    threads: "2",
    memory_limit: "256MB",
  });
  const con = await db.connect();
  try {
    await con.run("SET TimeZone = 'UTC'");
    const list = `[${inputs.map(sqlString).join(", ")}]`;
    const counted = await con.runAndReadAll(
      `select count(*)::bigint from read_parquet(${list}, union_by_name = true)`,
    );
    const inputRows = Number(counted.getRows()[0][0]);
    await con.run(
      `copy (select * from read_parquet(${list}, union_by_name = true)
              order by kafka_offset)
         to ${sqlString(output)} (format parquet, compression zstd)`,
    );
    const check = (await con.runAndReadAll(
      `select count(*)::bigint, count(distinct kafka_offset)::bigint,
              min(kafka_offset)::bigint, max(kafka_offset)::bigint,
              count(*) filter (where kafka_topic <> ${
        sqlString(expect.topic)
      } or kafka_partition <> ${expect.partition})::bigint
         from read_parquet(${sqlString(output)})`,
    )).getRows()[0].map(Number);
    const [rows, distinct, min, max, foreign] = check;
    if (
      rows !== inputRows || distinct !== rows || foreign !== 0 ||
      min < expect.firstOffset || max > expect.lastOffset
    ) {
      throw new Error(
        `merged file does not check out: ${rows} rows (inputs ${inputRows}), ${distinct} distinct offsets in [${min}, ${max}] (expected within [${expect.firstOffset}, ${expect.lastOffset}]), ${foreign} rows of another partition`,
      );
    }
    return rows;
  } finally {
    con.closeSync();
    db.closeSync();
  }
}
