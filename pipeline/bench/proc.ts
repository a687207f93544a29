/**
 * Linux /proc readings for the benchmarks and the soak: a process's stat line
 * (parent, group, CPU time) and its resident memory.
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

function statusKb(pid: number, field: "VmRSS" | "VmHWM"): number | undefined {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(status);
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Resident set size of a process in bytes (VmRSS), or undefined (gone, or a kernel thread). */
export function rssBytes(pid: number): number | undefined {
  return statusKb(pid, "VmRSS");
}

/** Peak resident set size (VmHWM) of a process in bytes, or undefined. */
export function peakRssBytes(pid: number): number | undefined {
  return statusKb(pid, "VmHWM");
}
