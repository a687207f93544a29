/**
 * Background processes that outlive the command that started them: started
 * in their own session (setsid) with output appended to a log file, tracked by
 * a pid file under the local state folder, stopped with SIGTERM then SIGKILL.
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

/** Reads a pid file; undefined when missing or the process is gone. */
export function readLivePid(pidFile: string): number | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(pidFile).trim().split("\n")[0];
  } catch {
    return undefined;
  }
  const pid = Number(text);
  return Number.isInteger(pid) && pid > 0 && isAlive(pid) ? pid : undefined;
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
  await Deno.writeTextFile(opts.pidFile, `${pid}\n`);
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
  const deadline = Date.now() + graceMs;
  while (isAlive(pid) && Date.now() < deadline) await sleep(100);
  if (isAlive(pid)) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch { /* already gone */ }
    while (isAlive(pid)) await sleep(50);
  }
}

/** Kills with SIGKILL at once (for crash tests). */
export async function killHard(pid: number): Promise<void> {
  try {
    Deno.kill(pid, "SIGKILL");
  } catch { /* already gone */ }
  while (isAlive(pid)) await sleep(20);
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
