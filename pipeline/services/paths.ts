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

/** Absolute path of a service's pid file. */
export function pidFile(
  config: Pick<Config, "localDir">,
  name: string,
): string {
  return `${servicePaths(config).run}/${name}.pid`;
}
