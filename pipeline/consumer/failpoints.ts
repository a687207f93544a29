/**
 * Testing failpoints of the stream consumer: the process stops itself at
 * the n-th time it reaches a phase of the commit protocol, so a test can put
 * a crash exactly in every window of it (see pipeline/zones/commit.ts).
 */
import type { CommitPhase } from "../zones/commit.ts";
import type { Logger } from "../log.ts";

/** Crash points for tests: the commit phases, and after the Kafka commit. */
export type FailPhase = CommitPhase | "kafka-committed";

/** Every phase a failpoint may name, in protocol order. */
export const FAIL_PHASES: readonly FailPhase[] = [
  "staged",
  "committed",
  "rolling",
  "rolled",
  "kafka-committed",
];

/** Where and when a failpoint fires. */
export interface Failpoint {
  phase: FailPhase;
  /** 1-based: crash at the n-th time the phase is reached. */
  hit: number;
}

/** Counts phase hits and kills this process (SIGKILL) at the chosen one. */
export class Failpoints {
  #hits = 0;

  constructor(
    readonly failpoint: Failpoint | undefined,
    readonly log: Logger,
  ) {}

  /** Called at each phase; never returns when the failpoint fires. */
  async reached(phase: FailPhase): Promise<void> {
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
