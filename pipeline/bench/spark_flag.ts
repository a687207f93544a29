/**
 * `deno task bench --peer NAME`: the opt-in comparisons with another system.
 * Kept apart from pipeline/bench/spark.ts so the bench's flag check loads
 * nothing heavy.
 */
import { UsageError } from "../cli.ts";

/** Peers `deno task bench --peer` knows. */
export const PEERS = ["spark"] as const;
export type Peer = typeof PEERS[number];

/** Validates `--peer`: undefined when absent, else a known peer (UsageError otherwise). */
export function parsePeer(value: string | undefined): Peer | undefined {
  if (value === undefined) return undefined;
  if ((PEERS as readonly string[]).includes(value)) return value as Peer;
  throw new UsageError(
    `--peer: unknown peer "${value}" (known: ${PEERS.join(", ")})`,
  );
}
