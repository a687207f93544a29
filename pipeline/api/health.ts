/**
 * Real up/down checks of the services the pipeline depends on, for the
 * Pipeline health page: a Kafka broker accepts a TCP connection, the
 * NameNode answers a WebHDFS GETFILESTATUS on the logpipe root, Postgres
 * answers `select 1`. Results are cached briefly so polling pages cannot
 * turn into a probe storm.
 *
 * What a client sees names no host and carries no raw error (an error can
 * hold a user name, an address or worse): a role (`broker 1 of 2`,
 * `NameNode`, `database`) and a generic reason. The API log has the
 * details.
 */
import type { Config } from "../config.ts";
import { logger } from "../log.ts";
import type { Db } from "./queries.ts";

const log = logger("api");

export interface ServiceCheck {
  service: string;
  /** Which instance, by role, never by address. */
  target: string;
  up: boolean;
  latencyMs: number;
  detail: string;
  checkedAt: string;
}

/** A failure the client may read as is (it names no host and no secret). */
class PublicProbeError extends Error {}

/** A reason for a failed probe that is safe to show anyone. */
export function publicReason(err: unknown): string {
  if (err instanceof PublicProbeError) return err.message;
  const text = err instanceof Error
    ? `${err.name} ${err.message} ${(err as { code?: string }).code ?? ""}`
    : String(err);
  if (/timed? ?out|TimeoutError/i.test(text)) return "no answer in time";
  if (/refused|ECONNREFUSED/i.test(text)) return "connection refused";
  if (/password|authentication|28P01|28000/i.test(text)) {
    return "login refused";
  }
  if (/ENOTFOUND|EAI_AGAIN|dns|resolve|lookup/i.test(text)) {
    return "host name not found";
  }
  return "unreachable (details in the API log)";
}

async function timed(
  service: string,
  target: string,
  address: string,
  probe: () => Promise<string>,
): Promise<ServiceCheck> {
  const start = performance.now();
  let up = false;
  let detail: string;
  try {
    detail = await probe();
    up = true;
  } catch (err) {
    detail = publicReason(err);
    log.warn("service check failed", { service, address, error: err });
  }
  return {
    service,
    target,
    up,
    latencyMs: Math.round((performance.now() - start) * 10) / 10,
    detail,
    checkedAt: new Date().toISOString(),
  };
}

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

async function probeKafka(broker: string, timeoutMs: number): Promise<string> {
  const i = broker.lastIndexOf(":");
  const hostname = broker.slice(0, i).replace(/^\[|\]$/g, "");
  const port = Number(broker.slice(i + 1));
  const conn = await withTimeout(
    Deno.connect({ hostname, port }),
    timeoutMs,
    "connect",
  );
  conn.close();
  return "broker accepts connections";
}

async function probeHdfs(config: Config, timeoutMs: number): Promise<string> {
  const url = new URL(`/webhdfs/v1${config.hdfs.root}`, config.hdfs.webhdfsUrl);
  url.searchParams.set("op", "GETFILESTATUS");
  url.searchParams.set("user.name", config.hdfs.user);
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  await res.body?.cancel();
  // 404 still proves the NameNode is up (the root is created on first write).
  if (res.status === 200) return "NameNode answers; root exists";
  if (res.status === 404) return "NameNode answers; root not created yet";
  throw new PublicProbeError(`NameNode answered HTTP ${res.status}`);
}

/** Checks every service once (in parallel). */
export function checkServices(
  config: Config,
  db: Db,
  timeoutMs = 1500,
): Promise<ServiceCheck[]> {
  const brokers = config.kafka.brokers;
  return Promise.all([
    ...brokers.map((b, i) =>
      timed(
        "kafka",
        `broker ${i + 1} of ${brokers.length}`,
        b,
        () => probeKafka(b, timeoutMs),
      )
    ),
    timed(
      "hdfs",
      "NameNode",
      config.hdfs.webhdfsUrl,
      () => probeHdfs(config, timeoutMs),
    ),
    timed(
      "postgres",
      "database",
      `${config.postgres.host}:${config.postgres.port}/${config.postgres.database}`,
      async () => {
        await withTimeout(db.query("select 1"), timeoutMs, "select 1");
        return "select 1 ok";
      },
    ),
  ]);
}

/** checkServices, cached for `ttlMs`; concurrent callers share one probe. */
export function cachedServiceChecks(
  config: Config,
  db: Db,
  ttlMs = 5000,
): () => Promise<ServiceCheck[]> {
  let last: { at: number; result: Promise<ServiceCheck[]> } | undefined;
  return () => {
    const now = Date.now();
    if (!last || now - last.at > ttlMs) {
      last = { at: now, result: checkServices(config, db) };
    }
    return last.result;
  };
}
