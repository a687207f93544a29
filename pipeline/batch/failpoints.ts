/**
 * Testing failpoints of the batch: the process kills itself (SIGKILL) the
 * n-th time it reaches a phase of the compaction protocol
 * (pipeline/zones/compaction.ts) or of the loader's quarantine
 * (loader.ts), so a test can put a crash in every window of them
 * (`deno task batch --failpoint PHASE:N`, testing only).
 */
import type { Logger } from "../log.ts";
import {
  COMPACTION_PHASES,
  type CompactionPhase,
} from "../zones/compaction.ts";
import { LOAD_PHASES, type LoadPhase } from "./loader.ts";

/** A phase a failpoint may name. */
export type BatchFailPhase = LoadPhase | CompactionPhase;

/** Every phase, loader first, then compaction in protocol order. */
export const BATCH_FAIL_PHASES: readonly BatchFailPhase[] = [
  ...LOAD_PHASES,
  ...COMPACTION_PHASES,
];

/** Where and when a failpoint fires. */
export interface BatchFailpoint {
  phase: BatchFailPhase;
  /** 1-based: crash at the n-th time the phase is reached. */
  hit: number;
}

/** Parses `PHASE:N`; undefined when malformed. */
export function parseBatchFailpoint(v: string): BatchFailpoint | undefined {
  const m = /^([a-z-]+):(\d+)$/.exec(v);
  if (
    !m || !(BATCH_FAIL_PHASES as readonly string[]).includes(m[1]) ||
    Number(m[2]) < 1
  ) return undefined;
  return { phase: m[1] as BatchFailPhase, hit: Number(m[2]) };
}

/** Counts phase hits and kills this process at the chosen one. */
export class BatchFailpoints {
  #hits = 0;

  constructor(
    readonly failpoint: BatchFailpoint | undefined,
    readonly log: Logger,
  ) {}

  /** Called at each phase; never returns when the failpoint fires. */
  async reached(phase: BatchFailPhase): Promise<void> {
    const fp = this.failpoint;
    if (!fp || fp.phase !== phase) return;
    if (++this.#hits === fp.hit) {
      this.log.warn("failpoint reached: killing this process", {
        phase,
        hit: fp.hit,
      });
      Deno.kill(Deno.pid, "SIGKILL");
      await new Promise(() => {}); // never continue past a failpoint
    }
  }
}
