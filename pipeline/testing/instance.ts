/**
 * A private instance for tests that start services of their own (and kill
 * them): a new LOGPIPE_HOME under /tmp, a port offset where the ports it
 * needs are free, and an environment naming them, so the shared services
 * are never touched. The pinned jars (and the dbt venv) are linked from
 * the shared state folder: same pins, read-only use, nothing fetched again.
 *
 *   const inst = await privateInstance(loadConfig(), { prefix: "logpipe-x-", ... });
 *   try { ... loadConfig(inst.env) ... } finally { await inst.remove(); }
 */
import { type Config, DEFAULT_PORTS, type Ports } from "../config.ts";
import { portIsFree } from "../services/process.ts";

export interface PrivateInstanceOptions {
  /** Name prefix of the temporary LOGPIPE_HOME. */
  prefix: string;
  /** Paths below the shared state folder to link into the new one, e.g. "jars/hadoop". */
  link: string[];
  /** The ports (by name) that must be free at the chosen offset. */
  ports: readonly (keyof Ports)[];
  /** Port offsets tried: from, from + step, … below `to`. */
  offsets: { from: number; to: number; step: number };
  /** More LOGPIPE_* settings of the instance (e.g. LOGPIPE_CLUSTER). */
  env?: Record<string, string>;
}

export interface PrivateInstance {
  /** Its LOGPIPE_HOME. */
  home: string;
  /** Its LOGPIPE_PORT_OFFSET. */
  offset: number;
  /**
   * The process's environment without any LOGPIPE_* variable, plus the
   * instance's LOGPIPE_HOME, LOGPIPE_PORT_OFFSET and `env`: for
   * loadConfig(env) and for subprocesses.
   */
  env: Record<string, string>;
  /** Deletes the home folder. */
  remove(): Promise<void>;
}

/** The first offset of `range` at which every one of `ports` is free. */
export function freePortOffset(
  ports: readonly (keyof Ports)[],
  range: PrivateInstanceOptions["offsets"],
): number {
  for (let offset = range.from; offset < range.to; offset += range.step) {
    if (ports.every((k) => portIsFree(DEFAULT_PORTS[k] + offset))) {
      return offset;
    }
  }
  throw new Error(
    `no port offset in [${range.from}, ${range.to}) with the ports free (${
      ports.join(", ")
    })`,
  );
}

/** Makes a private instance's home and environment (see the module comment). */
export async function privateInstance(
  shared: Config,
  opts: PrivateInstanceOptions,
): Promise<PrivateInstance> {
  const offset = freePortOffset(opts.ports, opts.offsets);
  const home = await Deno.makeTempDir({ dir: "/tmp", prefix: opts.prefix });
  for (const path of opts.link) {
    const target = `${home}/${path}`;
    Deno.mkdirSync(target.slice(0, target.lastIndexOf("/")), {
      recursive: true,
    });
    Deno.symlinkSync(`${shared.localDir}/${path}`, target);
  }
  const env: Record<string, string> = {
    ...Object.fromEntries(
      Object.entries(Deno.env.toObject()).filter(([k]) =>
        !k.startsWith("LOGPIPE_")
      ),
    ),
    LOGPIPE_HOME: home,
    LOGPIPE_PORT_OFFSET: String(offset),
    ...opts.env,
  };
  return {
    home,
    offset,
    env,
    remove: () => Deno.remove(home, { recursive: true }).catch(() => {}),
  };
}
