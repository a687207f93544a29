/**
 * The service checks of the Pipeline health page: the probes' quick
 * profile (pipeline/probes/probes.ts), run on the API's own pool and cached
 * briefly so polling pages cannot turn into a probe storm.
 *
 * What a client sees names no host and carries no raw error (an error can
 * hold a user name, an address or worse): a role (`broker 1 of 2`,
 * `NameNode`, `database`) and a generic reason. The API log has the
 * details.
 */
import type { Config } from "../config.ts";
import { logger } from "../log.ts";
import { checkServices, type ServiceCheck } from "../probes/probes.ts";
import type { Db } from "./queries.ts";

const log = logger("api");

/** `p`, or a rejection with a timeout error after `ms`. */
export function withTimeout<T>(
  p: Promise<T>,
  ms: number,
  what: string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${what} timed out after ${ms} ms`)),
        ms,
      );
    }),
  ]).finally(() => clearTimeout(timer));
}

/** The quick checks of every service, cached for `ttlMs`; concurrent callers share one probe. */
export function cachedServiceChecks(
  config: Config,
  db: Db,
  ttlMs = 5000,
): () => Promise<ServiceCheck[]> {
  let last: { at: number; result: Promise<ServiceCheck[]> } | undefined;
  return () => {
    const now = Date.now();
    if (!last || now - last.at > ttlMs) {
      last = {
        at: now,
        result: checkServices(config, { profile: "quick", db, log }),
      };
    }
    return last.result;
  };
}
