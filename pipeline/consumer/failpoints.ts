/**
 * Testing failpoints of the stream consumer: the process kills itself
 * (SIGKILL) — or pauses itself (SIGSTOP), to play a zombie — at the n-th
 * time it reaches a phase of the commit protocol, so a test can put a crash
 * or a pause exactly in every window of it (see pipeline/zones/commit.ts).
 */
import type { CommitPhase } from "../zones/commit.ts";
import type { Logger } from "../log.ts";

/** Crash points for tests: the commit phases, and after the Kafka commit. */
export type FailPhase = CommitPhase | "kafka-committed";

/** Every phase a failpoint may name, in protocol order. */
export const FAIL_PHASES: readonly FailPhase[] = [
  "staging",
  "staged",
  "committed",
  "rolling",
  "marked",
  "rolled",
  "kafka-committed",
];

/** Where and when a failpoint fires. */
export interface Failpoint {
  phase: FailPhase;
  /** 1-based: fire at the n-th time the phase is reached. */
  hit: number;
  /** "kill" (SIGKILL, default) or "stop" (SIGSTOP: resumes on SIGCONT). */
  action?: "kill" | "stop";
}

/** Counts phase hits and kills (or stops) this process at the chosen one. */
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
    if (++this.#hits !== fp.hit) return;
    if (fp.action === "stop") {
      this.log.warn("failpoint reached: stopping this process (SIGSTOP)", {
        phase,
        hit: fp.hit,
      });
      // Execution goes on from here after SIGCONT, like a long GC pause.
      Deno.kill(Deno.pid, "SIGSTOP");
      return;
    }
    this.log.warn("failpoint reached: killing this process", {
      phase,
      hit: fp.hit,
    });
    Deno.kill(Deno.pid, "SIGKILL");
    await new Promise(() => {}); // never continue past a failpoint
  }
}
