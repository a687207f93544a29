/**
 * Background processes that outlive the command that started them: started
 * in their own session (setsid) with output appended to a log file, tracked by
 * a pid file under the local state folder, stopped with SIGTERM then SIGKILL.
 *
 * A pid alone is not a process: after a reboot (or enough forks) the same
 * number belongs to something else, and `down` would SIGKILL it. So every
 * pid we record carries the process's identity, the boot it runs in and its
 * start time (clock ticks since boot, /proc/<pid>/stat field 22), and a pid
 * is trusted only while both still match.
 */

/** Quotes one word for a POSIX shell. */
export function shQuote(word: string): string {
  return /^[A-Za-z0-9_\/.:=,@%+-]+$/.test(word)
    ? word
    : `'${word.replaceAll("'", `'\\''`)}'`;
}

/** True when a process with this pid exists (and is not a zombie). */
export function isAlive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // Field 3 is the state; Z = zombie, X = dead.
    const state = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** Which process a pid meant when it was recorded. */
export interface ProcessIdentity {
  pid: number;
  /** /proc/sys/kernel/random/boot_id: changes with every boot. */
  boot: string;
  /** Start time in clock ticks since boot. */
  start: number;
}

let cachedBootId: string | undefined;

/** This boot's id (a reboot changes it). */
export function bootId(): string {
  cachedBootId ??= Deno.readTextFileSync("/proc/sys/kernel/random/boot_id")
    .trim();
  return cachedBootId;
}

/** Start time of `pid` in clock ticks since boot; undefined when gone. */
export function processStartTicks(pid: number): number | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // Fields after the ")" of the command name: state is field 3, so the
    // start time (field 22) is the 20th.
    const start = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]);
    return Number.isFinite(start) ? start : undefined;
  } catch {
    return undefined;
  }
}

/** The identity of a running process, to record beside its pid. */
export function processIdentity(pid: number): ProcessIdentity | undefined {
  const start = processStartTicks(pid);
  return start === undefined || !isAlive(pid)
    ? undefined
    : { pid, boot: bootId(), start };
}

/** True when `id`'s process is still the one running under its pid. */
export function isSameProcess(id: ProcessIdentity): boolean {
  return id.boot === bootId() && isAlive(id.pid) &&
    processStartTicks(id.pid) === id.start;
}

let cachedClockTicks: number | undefined;

function clockTicksPerSecond(): number {
  if (cachedClockTicks === undefined) {
    try {
      const out = new Deno.Command("getconf", { args: ["CLK_TCK"] })
        .outputSync();
      cachedClockTicks = Number(new TextDecoder().decode(out.stdout).trim());
    } catch { /* no getconf */ }
    // USER_HZ is 100 on every Linux this runs on.
    if (!cachedClockTicks) cachedClockTicks = 100;
  }
  return cachedClockTicks;
}

/** When `pid` started (epoch ms, to the clock tick); undefined when gone. */
export function processStartedAtMs(pid: number): number | undefined {
  const ticks = processStartTicks(pid);
  if (ticks === undefined) return undefined;
  const btime = /^btime (\d+)$/m.exec(Deno.readTextFileSync("/proc/stat"));
  if (!btime) return undefined;
  return Number(btime[1]) * 1000 + (ticks * 1000) / clockTicksPerSecond();
}

/**
 * True when `pid` runs and started no later than `recordedAtMs` (+ slack for
 * the clock-tick and whole-second rounding): the process a record written
 * at that time could have meant. A pid reused after a reboot or a wrap
 * started later than any record about its predecessor.
 */
export function startedBy(pid: number, recordedAtMs: number): boolean {
  const started = processStartedAtMs(pid);
  return started !== undefined && isAlive(pid) &&
    started <= recordedAtMs + 2_000;
}

/** A pid file's text: the pid, then its identity. */
export function pidFileText(id: ProcessIdentity): string {
  return `${id.pid}\nboot=${id.boot} start=${id.start}\n`;
}

/**
 * Reads a pid file; undefined when missing, when the process is gone, or
 * when the pid now belongs to another process. A file from before identities
 * were recorded (the pid alone) is trusted only if that process started
 * before the file was written.
 */
export function readLivePid(pidFile: string): number | undefined {
  let text: string;
  let writtenAt: number;
  try {
    text = Deno.readTextFileSync(pidFile);
    writtenAt = Deno.statSync(pidFile).mtime?.getTime() ?? 0;
  } catch {
    return undefined;
  }
  const [first, second = ""] = text.split("\n");
  const pid = Number(first.trim());
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  const m = /^boot=(\S+) start=(\d+)$/.exec(second.trim());
  if (m) {
    return isSameProcess({ pid, boot: m[1], start: Number(m[2]) })
      ? pid
      : undefined;
  }
  return startedBy(pid, writtenAt) ? pid : undefined;
}

/** A record of a supervising process and its children (`up.json`). */
export interface ProcessRecord {
  up: ProcessIdentity;
  children: ProcessIdentity[];
}

/** Writes `path`: `upPid` and `childPids`, each with its identity. */
export function writeProcessRecord(
  path: string,
  upPid: number,
  childPids: number[],
): void {
  const record: ProcessRecord = {
    up: processIdentity(upPid)!,
    children: childPids.map(processIdentity).filter((
      id,
    ): id is ProcessIdentity => id !== undefined),
  };
  Deno.writeTextFileSync(path, JSON.stringify(record), { mode: 0o600 });
}

/**
 * The pids of a record that still are the processes they were; a pid
 * reused since (after a reboot, say) is someone else's and is left out.
 * Records from before identities were kept hold bare pids
 * (`{pid, children: [n]}`): those count only for processes that started
 * before the record was written.
 */
export function readLiveProcessRecord(
  path: string,
): { up?: number; children: number[] } {
  let state: { up?: unknown; pid?: unknown; children?: unknown[] };
  let writtenAt: number;
  try {
    state = JSON.parse(Deno.readTextFileSync(path));
    writtenAt = Deno.statSync(path).mtime?.getTime() ?? 0;
  } catch {
    return { children: [] };
  }
  const live = (entry: unknown): number | undefined => {
    if (typeof entry === "number") {
      return startedBy(entry, writtenAt) ? entry : undefined;
    }
    const id = entry as ProcessIdentity | undefined;
    return id && typeof id.pid === "number" && isSameProcess(id)
      ? id.pid
      : undefined;
  };
  return {
    up: live(state.up ?? state.pid),
    children: (state.children ?? []).map(live).filter((p): p is number =>
      p !== undefined
    ),
  };
}

export interface SpawnOptions {
  cmd: string[];
  logFile: string;
  pidFile: string;
  cwd?: string;
  env?: Record<string, string>;
}

/**
 * Starts `cmd` detached (new session, stdin from /dev/null, stdout and stderr
 * appended to logFile) and writes its pid to pidFile.
 */
export async function spawnDetached(opts: SpawnOptions): Promise<number> {
  const line = opts.cmd.map(shQuote).join(" ");
  // In a non-interactive sh a background job is not a process-group leader,
  // so setsid(1) calls setsid() and execs in place: $! is the real pid.
  const script = `setsid ${line} >>${
    shQuote(opts.logFile)
  } 2>&1 </dev/null & echo $!`;
  const out = await new Deno.Command("sh", {
    args: ["-c", script],
    cwd: opts.cwd,
    env: opts.env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const pid = Number(new TextDecoder().decode(out.stdout).trim());
  if (!out.success || !Number.isInteger(pid) || pid <= 0) {
    throw new Error(
      `could not start ${opts.cmd[0]}: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  const id = processIdentity(pid);
  if (!id) {
    throw new Error(
      `${opts.cmd[0]} exited at once; see ${opts.logFile}`,
    );
  }
  await Deno.writeTextFile(opts.pidFile, pidFileText(id));
  return pid;
}

/** Sends SIGTERM, waits up to graceMs, then SIGKILL; resolves when gone. */
export async function stopProcess(
  pid: number,
  graceMs = 20_000,
): Promise<void> {
  if (!isAlive(pid)) return;
  try {
    Deno.kill(pid, "SIGTERM");
  } catch { /* already gone */ }
  if (!await waitForExit(pid, graceMs, 100)) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch { /* already gone */ }
    await waitForExit(pid, Infinity, 50);
  }
}

/**
 * Polls until `pid` is gone (or a zombie) or `timeoutMs` has passed; true
 * when it is gone.
 */
export async function waitForExit(
  pid: number,
  timeoutMs: number,
  intervalMs = 50,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid)) {
    if (Date.now() >= deadline) return false;
    await sleep(intervalMs);
  }
  return true;
}

/** Kills with SIGKILL at once (for crash tests). */
export async function killHard(pid: number): Promise<void> {
  try {
    Deno.kill(pid, "SIGKILL");
  } catch { /* already gone */ }
  await waitForExit(pid, Infinity, 20);
}

/** Pids of the direct children of `pid` (from /proc). */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) out.push(Number(e.name));
    } catch { /* gone */ }
  }
  return out;
}

/** True when nothing listens on host:port (we can bind it ourselves). */
export function portIsFree(port: number, hostname = "127.0.0.1"): boolean {
  try {
    const l = Deno.listen({ hostname, port });
    l.close();
    return true;
  } catch {
    return false;
  }
}

/** The last `lines` lines of a text file ("" when missing). */
export function tailFile(path: string, lines = 30): string {
  try {
    const text = Deno.readTextFileSync(path);
    return text.split("\n").slice(-lines - 1).join("\n");
  } catch {
    return "";
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `check` until it returns true or `timeoutMs` passes. */
export async function waitFor(
  check: () => Promise<boolean>,
  timeoutMs: number,
  intervalMs = 500,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      if (await check()) return true;
    } catch { /* not yet */ }
    await sleep(intervalMs);
  }
  return false;
}
