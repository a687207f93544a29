/**
 * Keeps the pipeline's long-running components alive for `deno task up`.
 *
 * Each component (producer, consumer, batch schedule, alert evaluator, API)
 * is its own `deno run tasks/<x>.ts` process, so a crash or a kill -9 of one
 * never takes the others down. A component that exits unexpectedly is
 * restarted with exponential backoff (1 s, 2 s, 4 s … capped at 60 s; reset
 * after it stayed up for a minute) and the restart is reported. Stopping
 * sends SIGTERM (each component flushes and commits on it) and escalates to
 * SIGKILL after a grace period.
 */
import { logFile } from "./services/paths.ts";
import type { Config } from "./config.ts";

export interface ComponentSpec {
  name: string;
  /** Arguments after `deno run -A`, e.g. ["tasks/consume.ts"]. */
  args: string[];
  /** Extra environment for the child. */
  env?: Record<string, string>;
  /** Seconds to wait after SIGTERM before SIGKILL (default 30). */
  stopGraceSec?: number;
}

export type ComponentState =
  | "starting"
  | "running"
  | "backoff"
  | "stopping"
  | "stopped";

export interface ComponentStatus {
  name: string;
  state: ComponentState;
  pid?: number;
  restarts: number;
  lastExit?: { code: number; signal: string | null; at: Date };
  log: string;
}

export type SupervisorEvent =
  | { kind: "started"; name: string; pid: number; restart: number }
  | {
    kind: "exited";
    name: string;
    code: number;
    signal: string | null;
    restartInMs?: number;
  }
  | { kind: "stopped"; name: string; code: number };

const BACKOFF_START_MS = 1_000;
const BACKOFF_CAP_MS = 60_000;
const HEALTHY_AFTER_MS = 60_000;

class Component {
  state: ComponentState = "stopped";
  child?: Deno.ChildProcess;
  restarts = 0;
  lastExit?: ComponentStatus["lastExit"];
  private backoffMs = BACKOFF_START_MS;
  private startedAt = 0;
  private wantRunning = false;
  private restartTimer?: ReturnType<typeof setTimeout>;
  private exited?: Promise<void>;

  constructor(
    readonly spec: ComponentSpec,
    readonly projectRoot: string,
    readonly logPath: string,
    readonly notify: (e: SupervisorEvent) => void,
  ) {}

  start(): void {
    this.wantRunning = true;
    this.spawn();
  }

  private spawn(): void {
    this.state = "starting";
    const log = Deno.openSync(this.logPath, { create: true, append: true });
    // setsid: the child gets its own session, so a Ctrl-C in the terminal
    // reaches only `up`, which then stops the components in order; without
    // it every component would get SIGINT at once and race its neighbours.
    // (setsid execs in place: the pid we see is the component's.)
    const child = new Deno.Command("setsid", {
      args: [Deno.execPath(), "run", "-A", ...this.spec.args],
      cwd: this.projectRoot,
      env: this.spec.env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    // Both streams go to the component's log file, never to our terminal.
    const pump = async (s: ReadableStream<Uint8Array>) => {
      for await (const chunk of s) log.writeSync(chunk);
    };
    const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]).catch(
      () => {},
    );
    this.child = child;
    this.startedAt = Date.now();
    this.state = "running";
    this.notify({
      kind: "started",
      name: this.spec.name,
      pid: child.pid,
      restart: this.restarts,
    });
    this.exited = child.status.then(async (status) => {
      await pumps;
      log.close();
      this.child = undefined;
      this.lastExit = {
        code: status.code,
        signal: status.signal,
        at: new Date(),
      };
      if (!this.wantRunning) {
        this.state = "stopped";
        this.notify({
          kind: "stopped",
          name: this.spec.name,
          code: status.code,
        });
        return;
      }
      // Unexpected exit: restart with backoff, reset once it ran long enough.
      if (Date.now() - this.startedAt > HEALTHY_AFTER_MS) {
        this.backoffMs = BACKOFF_START_MS;
      }
      const delay = this.backoffMs;
      this.backoffMs = Math.min(this.backoffMs * 2, BACKOFF_CAP_MS);
      this.state = "backoff";
      this.notify({
        kind: "exited",
        name: this.spec.name,
        code: status.code,
        signal: status.signal,
        restartInMs: delay,
      });
      this.restartTimer = setTimeout(() => {
        this.restartTimer = undefined;
        if (!this.wantRunning) return;
        this.restarts++;
        this.spawn();
      }, delay);
    });
  }

  /** Marks the component as going down: an exit from now on is not restarted. */
  release(): void {
    this.wantRunning = false;
  }

  async stop(): Promise<void> {
    this.wantRunning = false;
    if (this.restartTimer !== undefined) {
      clearTimeout(this.restartTimer);
      this.restartTimer = undefined;
      this.state = "stopped";
    }
    const child = this.child;
    if (!child) return;
    this.state = "stopping";
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
    const grace = (this.spec.stopGraceSec ?? 30) * 1000;
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
    }, grace);
    await this.exited;
    clearTimeout(timer);
  }

  status(): ComponentStatus {
    return {
      name: this.spec.name,
      state: this.state,
      pid: this.child?.pid,
      restarts: this.restarts,
      lastExit: this.lastExit,
      log: this.logPath,
    };
  }
}

export class Supervisor {
  private components = new Map<string, Component>();

  constructor(
    private config: Pick<Config, "projectRoot" | "localDir">,
    private onEvent: (e: SupervisorEvent) => void = () => {},
  ) {
    Deno.mkdirSync(`${config.localDir}/logs`, { recursive: true });
  }

  /** Starts a component (it is restarted whenever it exits until stopped). */
  start(spec: ComponentSpec): void {
    if (this.components.has(spec.name)) {
      throw new Error(`component ${spec.name} already started`);
    }
    const c = new Component(
      spec,
      this.config.projectRoot,
      logFile(this.config, spec.name),
      this.onEvent,
    );
    this.components.set(spec.name, c);
    c.start();
  }

  /** Stops the named components one after the other, in the given order. */
  async stopInOrder(names: string[]): Promise<void> {
    // Nothing is restarted once shutdown began, whatever exits first.
    for (const c of this.components.values()) c.release();
    for (const name of names) await this.components.get(name)?.stop();
    // Anything not named is stopped last, together.
    await Promise.all(
      [...this.components.entries()].filter(([n]) => !names.includes(n)).map((
        [, c],
      ) => c.stop()),
    );
  }

  status(): ComponentStatus[] {
    return [...this.components.values()].map((c) => c.status());
  }

  /** Pids of the running components (for a pid file). */
  pids(): number[] {
    return this.status().map((c) => c.pid).filter((p): p is number =>
      p !== undefined
    );
  }
}
