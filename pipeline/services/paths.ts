/** Where each local service keeps its state, logs and jars (all under LOGPIPE_HOME). */
import type { Config } from "../config.ts";

export function servicePaths(config: Pick<Config, "localDir">) {
  const root = config.localDir;
  return {
    root,
    logs: `${root}/logs`,
    run: `${root}/run`,
    jars: { kafka: `${root}/jars/kafka`, hadoop: `${root}/jars/hadoop` },
    kafka: { dir: `${root}/kafka`, data: `${root}/kafka/data` },
    hadoop: { dir: `${root}/hadoop`, conf: `${root}/hadoop/conf` },
    postgres: { dir: `${root}/postgres` },
  };
}

/** Absolute path of a service's log file. */
export function logFile(
  config: Pick<Config, "localDir">,
  name: string,
): string {
  return `${servicePaths(config).logs}/${name}.log`;
}

/**
 * Writes a secret (a password) so that it is never readable by anyone but
 * its owner, not even for a moment: a new file is created with mode 600
 * next to it and renamed over the old one.
 */
export function writePrivateFile(path: string, text: string): void {
  const tmp = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    // Created 600 (the umask can only remove bits), never wider.
    Deno.writeTextFileSync(tmp, text, { createNew: true, mode: 0o600 });
    Deno.renameSync(tmp, path);
  } catch (err) {
    try {
      Deno.removeSync(tmp);
    } catch { /* never created */ }
    throw err;
  }
}

/** Absolute path of a service's pid file. */
export function pidFile(
  config: Pick<Config, "localDir">,
  name: string,
): string {
  return `${servicePaths(config).run}/${name}.pid`;
}
