/**
 * The commit protocol's per-partition state in HDFS (commit.ts): who owns a
 * partition (its owner epoch) and how far it is committed (a high-water
 * marker), kept in a few empty files whose NAMES carry the numbers, so
 * reading them is one listing of a tiny folder and moving the marker is one
 * atomic NameNode rename (no DataNode, no file content to half-write).
 *
 *   `${root}/_state/partitions/<topic>+<p>/`
 *     e<epoch>           claim of owner epoch `epoch` (created exclusively:
 *                        CREATE overwrite=false, so two owners never share
 *                        an epoch)
 *     e<epoch>+<next>    high-water marker of that owner: every offset below
 *                        `next` is committed (in the zones, or in a committed
 *                        batch folder being rolled forward)
 *   `${root}/_tmp/committed/<topic>+<p>+e<epoch>/`
 *                        the owner's committed-batch folder (commit point
 *                        target; removed by the next owner to fence this one)
 *   `${root}/_state/topics/<topic>.legacy-positions.json`
 *                        {"<p>": next} from one walk of zones written before
 *                        markers existed (once per topic)
 *
 * Numbers are zero-padded to 20 digits like the offsets of file names.
 * Folders starting with "_" are skipped by every reader of the zones.
 */
import { padOffset } from "./names.ts";

const PAD = 20;

/** `${root}/_state/partitions/<topic>+<p>`. */
export function partitionStateDir(
  root: string,
  topic: string,
  partition: number,
): string {
  return `${root}/_state/partitions/${topic}+${partition}`;
}

/** `${root}/_state/topics/<topic>.legacy-positions.json`. */
export function legacyPositionsPath(root: string, topic: string): string {
  return `${root}/_state/topics/${topic}.legacy-positions.json`;
}

/** Name of the claim file of an owner epoch: `e<epoch>`. */
export function claimName(epoch: number): string {
  return `e${padOffset(epoch)}`;
}

/** Name of a high-water marker: `e<epoch>+<next>`. */
export function markerName(epoch: number, next: number): string {
  return `e${padOffset(epoch)}+${padOffset(next)}`;
}

/** `<topic>+<p>+e<epoch>`: an owner's committed-batch folder below `_tmp/committed`. */
export function epochFolderName(
  topic: string,
  partition: number,
  epoch: number,
): string {
  return `${topic}+${partition}+e${padOffset(epoch)}`;
}

/** Parses an epoch folder name; undefined for anything else. */
export function parseEpochFolderName(
  s: string,
): { topic: string; partition: number; epoch: number } | undefined {
  const m = /^([A-Za-z0-9._-]+)\+(\d+)\+e(\d{20})$/.exec(s);
  if (!m) return undefined;
  return { topic: m[1], partition: Number(m[2]), epoch: Number(m[3]) };
}

/** What a partition's state folder holds. */
export interface PartitionMarkers {
  /** Claimed owner epochs. */
  claims: number[];
  /** High-water markers. */
  markers: Array<{ epoch: number; next: number; name: string }>;
  /** Highest epoch named by a claim or marker (0: none). */
  maxEpoch: number;
}

const CLAIM_RE = new RegExp(`^e(\\d{${PAD}})$`);
const MARKER_RE = new RegExp(`^e(\\d{${PAD}})\\+(\\d{${PAD}})$`);

/** Sorts a listing of a partition state folder into claims and markers. */
export function parsePartitionMarkers(names: string[]): PartitionMarkers {
  const out: PartitionMarkers = { claims: [], markers: [], maxEpoch: 0 };
  for (const name of names) {
    let m = CLAIM_RE.exec(name);
    if (m) {
      const epoch = Number(m[1]);
      out.claims.push(epoch);
      out.maxEpoch = Math.max(out.maxEpoch, epoch);
      continue;
    }
    m = MARKER_RE.exec(name);
    if (m) {
      const epoch = Number(m[1]);
      out.markers.push({ epoch, next: Number(m[2]), name });
      out.maxEpoch = Math.max(out.maxEpoch, epoch);
    }
  }
  return out;
}
