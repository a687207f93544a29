/**
 * Linux /proc readings for the benchmarks, the soak and the tests that
 * measure processes: a process's stat line (parent, group, CPU time), its
 * resident memory, and a whole process tree's (ProcessTreeMeter).
 */

/** The fields of /proc/<pid>/stat the meters need. */
export interface ProcStat {
  pid: number;
  /** The command name (field 2), without its parentheses. */
  comm: string;
  /** R, S, D, Z, X, … (field 3). */
  state: string;
  ppid: number;
  pgid: number;
  /** utime + stime + cutime + cstime (fields 14–17), in clock ticks. */
  cpuTicks: number;
}

/** Clock ticks a second (USER_HZ): 100 on every Linux architecture Deno runs on. */
export const CLOCK_TICKS = 100;

/**
 * Parses /proc/<pid>/stat. The command name sits in parentheses and may
 * itself hold spaces and ")", so fields are counted after the last ")".
 * Undefined for text that is not a whole stat line.
 */
export function parseProcStat(text: string): ProcStat | undefined {
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  if (open < 0 || close < open) return undefined;
  const pid = Number(text.slice(0, open).trim());
  // f[0] is field 3 (state): ppid is field 4, pgrp 5, utime..cstime 14..17.
  const f = text.slice(close + 1).trim().split(/\s+/);
  const ppid = Number(f[1]);
  const pgid = Number(f[2]);
  const cpuTicks = Number(f[11]) + Number(f[12]) + Number(f[13]) +
    Number(f[14]);
  if (
    !Number.isInteger(pid) || !Number.isInteger(ppid) ||
    !Number.isInteger(pgid) || !f[0] || !Number.isFinite(cpuTicks)
  ) {
    return undefined;
  }
  return {
    pid,
    comm: text.slice(open + 1, close),
    state: f[0],
    ppid,
    pgid,
    cpuTicks,
  };
}

/** A /proc file's text, or undefined (the process is gone). */
export function readProcText(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return undefined;
  }
}

function statusKb(pid: number, field: "VmRSS" | "VmHWM"): number | undefined {
  const status = readProcText(`/proc/${pid}/status`);
  const m = status && new RegExp(`${field}:\\s+(\\d+) kB`).exec(status);
  return m ? Number(m[1]) * 1024 : undefined;
}

/** Resident set size of a process in bytes (VmRSS), or undefined (gone, or a kernel thread). */
export function rssBytes(pid: number): number | undefined {
  return statusKb(pid, "VmRSS");
}

/** Peak resident set size (VmHWM) of a process in bytes, or undefined. */
export function peakRssBytes(pid: number): number | undefined {
  return statusKb(pid, "VmHWM");
}

// ------------------------------------------------- process-tree meter ----

/** What a process tree used from the meter's start to its stop. */
export interface TreeUsage {
  wallMs: number;
  cpuSeconds: number;
  /** Highest sampled sum of the tree's resident memory. */
  peakRssBytes: number;
  /** Largest number of processes seen in the tree at once. */
  processes: number;
}

/**
 * Samples a process and its descendants every `intervalMs`: the sum of their
 * resident memory (peak kept) and of their CPU time. A descendant's CPU time
 * reaches its parent's cutime/cstime when it exits and is reaped, so the
 * tree's CPU is the sum over its live members; what runs after the last
 * sample (< one interval) is not counted. New descendants are looked for in
 * all of /proc once a second, and every sample in the first five seconds
 * (when spark-submit starts its JVM and the JVM its Python driver).
 * The consumer and Spark benchmarks measure with it, so both figures are
 * whole process trees, and so does the consumer's memory test
 * (consumer/memory_test.ts), so its limit is checked on the same figure.
 */
export class ProcessTreeMeter {
  #root: number;
  #interval: number;
  #timer: ReturnType<typeof setInterval>;
  #t0 = performance.now();
  #members = new Set<number>();
  #cpuTicks = 0;
  #peakRss = 0;
  #processes = 0;
  #ticks = 0;

  constructor(rootPid: number, intervalMs = 100) {
    this.#root = rootPid;
    this.#interval = intervalMs;
    this.#members.add(rootPid);
    this.#sample();
    this.#timer = setInterval(() => this.#sample(), intervalMs);
  }

  #discover(): void {
    const parents = new Map<number, number>();
    for (const e of Deno.readDirSync("/proc")) {
      const pid = Number(e.name);
      if (!Number.isInteger(pid)) continue;
      const st = parseProcStat(readProcText(`/proc/${pid}/stat`) ?? "");
      if (st) parents.set(pid, st.ppid);
    }
    let grew = true;
    while (grew) {
      grew = false;
      for (const [pid, ppid] of parents) {
        if (!this.#members.has(pid) && this.#members.has(ppid)) {
          this.#members.add(pid);
          grew = true;
        }
      }
    }
  }

  #sample(): void {
    const early = this.#ticks * this.#interval < 5_000;
    if (early || this.#ticks % Math.max(1, 1000 / this.#interval) === 0) {
      this.#discover();
    }
    this.#ticks++;
    let cpu = 0, rss = 0, alive = 0;
    for (const pid of this.#members) {
      const st = parseProcStat(readProcText(`/proc/${pid}/stat`) ?? "");
      const resident = rssBytes(pid);
      if (!st || resident === undefined) {
        if (pid !== this.#root) this.#members.delete(pid);
        continue;
      }
      alive++;
      cpu += st.cpuTicks;
      rss += resident;
    }
    // Exited members' time is in their reaped parent's cutime from now on;
    // between their exit and the reaping the sum dips, so keep the maximum.
    if (cpu > this.#cpuTicks) this.#cpuTicks = cpu;
    if (rss > this.#peakRss) this.#peakRss = rss;
    if (alive > this.#processes) this.#processes = alive;
  }

  /** Stops sampling (call once the root has exited) and returns the usage. */
  stop(): TreeUsage {
    clearInterval(this.#timer);
    return {
      wallMs: performance.now() - this.#t0,
      cpuSeconds: this.#cpuTicks / CLOCK_TICKS,
      peakRssBytes: this.#peakRss,
      processes: this.#processes,
    };
  }
}
