/**
 * The logpipe API: read-only JSON over `monitoring.*` and `ops.*` for the
 * live pages, `/healthz`, and the built site (`dist/`) from the same origin.
 * `startApi` is what `deno task api` and `deno task up` (in-process) call.
 *
 * Every request's Host must be on the allow-list (421 otherwise: DNS
 * rebinding). Database work is bounded: the heavy GETs go through a result
 * cache (single flight: identical requests share one computation; a result
 * is reused for its TTL and, while one refresh runs, answered a while
 * longer), at most MAX_DB_WORK computations run at once (a few more wait up
 * to DB_WORK_WAIT_MS for a slot; 429 beyond), and a
 * request waits REQUEST_TIMEOUT_MS at most (503; the session's
 * statement_timeout ends the query on the server too). `/healthz` bypasses
 * all of it and has its own short deadline and its own connection, so it
 * answers even when Postgres hangs.
 *
 * Long windows (routes.ts LONG_WINDOW_SECS and more: up to 7 days of
 * counts, millions of rows) and whole-table totals go in a lane of their
 * own: their own small pool with a longer statement_timeout and their own
 * cap. So a 7-day chart costs one query a minute however many pages poll
 * it, and it never holds up the live feed.
 */
import { createPool } from "../clients/postgres.ts";
import { type Config, ConfigError } from "../config.ts";
import { alertRoutes, isLoopback } from "./alert_routes.ts";
import { logger } from "../log.ts";
import { publicReason, type ServiceCheck } from "../probes/probes.ts";
import {
  BusyError,
  ConcurrencyLimiter,
  hostAllowList,
  ResultCache,
} from "./guard.ts";
import { cachedServiceChecks, withTimeout } from "./health.ts";
import { ApiError, parseParams } from "./params.ts";
import { PROMETHEUS_CONTENT_TYPE, prometheusMetrics } from "./prometheus.ts";
import type { Db } from "./queries.ts";
import { type Route, ROUTES } from "./routes.ts";
import { SECURITY_HEADERS, serveStatic } from "./static.ts";

const log = logger("api");

/** A request waits this long for the database before it gets a 503. */
export const REQUEST_TIMEOUT_MS = 5_000;
/** The server cancels a statement the client has given up on. */
export const STATEMENT_TIMEOUT_MS = 4_000;
/** `/healthz` says "down" after this long without `select 1`. */
export const HEALTH_TIMEOUT_MS = 1_000;
/**
 * Computations (cache misses and refreshes) at once; more is a 429 (or the
 * last result, while it may still be answered). As many as the pool's
 * connections: no queue in front of the pool, and Postgres leaves CPU to
 * the API on a small machine.
 */
export const MAX_DB_WORK = 5;
/**
 * Computations that may wait for a slot, and how long: a page opening with
 * a burst of requests is served a moment later; a flood gets its 429.
 */
export const DB_WORK_QUEUE = 20;
export const DB_WORK_WAIT_MS = 1_000;
/** A 7-day aggregate may take this long (it runs once a minute at most). */
export const LONG_STATEMENT_TIMEOUT_MS = 60_000;
/** Long-lane computations at once (its pool has as many connections). */
export const MAX_LONG_WORK = 2;
/**
 * A cached result is answered while one refresh runs, up to this many TTLs
 * past its TTL and at least STALE_MIN_MS (its `asOf` says how old it is).
 * Normally a result is then one computation older than its TTL; only when
 * the database cannot keep up (or hangs) does it get older, and a live
 * page keeps showing the last numbers, marked with their time, meanwhile.
 */
const STALE_TTLS = 10;
const STALE_MIN_MS = 30_000;
/**
 * `/metrics` is computed at most once a second however many scrapers ask,
 * and answered at most 10 s stale while a slow refresh runs.
 */
const METRICS_TTL_MS = 1_000;
const METRICS_STALE_MS = 10_000;
/**
 * `/api` requests in progress at once, cached answers included; beyond it a
 * 429 at once. Sending large JSON to hundreds of clients is work too: this
 * keeps the event loop (and so `/healthz`) responsive and the queue short,
 * so an accepted request is answered quickly instead of every request slowly.
 */
export const MAX_IN_FLIGHT = 64;
/** Distinct (route, parameters) results kept at most. */
const MAX_CACHE_ENTRIES = 1_000;

/** A stable cache key for a path and its parsed parameters. */
function cacheKey(pathname: string, params: Record<string, unknown>): string {
  const canonical = Object.keys(params).sort().map((k) => {
    const v = params[k];
    // Lists are sets: event_type=a,b and b,a are the same request.
    return [k, Array.isArray(v) ? [...v].sort() : v];
  });
  return `${pathname}?${JSON.stringify(canonical)}`;
}

export interface ApiOptions {
  /** A pg Pool (or anything with `query`); default: a new pool from config. */
  db?: Db & { end?: () => Promise<void> };
  /** Folder of the built site; default `<project>/dist`. `null`: no site. */
  siteDir?: string | null;
  /** Port override (0 = any free port); default config.api.port. */
  port?: number;
  /** Extra routes (e.g. alert rules), matched before the built-in ones. */
  routes?: Route[];
  /** Override of the service checks (tests). */
  services?: () => Promise<ServiceCheck[]>;
  /** What `/healthz` runs `select 1` on; default `db`, or its own pool. */
  healthDb?: Db;
  /** What long-window queries run on; default `db`, or its own pool. */
  longDb?: Db;
  /** Database computations at once before 429 (default MAX_DB_WORK). */
  maxDbWork?: number;
  /** Computations that may wait for a slot (default DB_WORK_QUEUE). */
  dbWorkQueue?: number;
  /** How long they may wait (default DB_WORK_WAIT_MS). */
  dbWorkWaitMs?: number;
  /** `/api` requests in progress at once before 429 (default MAX_IN_FLIGHT). */
  maxInFlight?: number;
  /** Deadline of a request's database work (default REQUEST_TIMEOUT_MS). */
  requestTimeoutMs?: number;
}

export interface RunningApi {
  /** Base URL, e.g. http://127.0.0.1:8787 */
  url: string;
  /** Stops accepting requests, waits for in-flight ones, closes the pool. */
  shutdown(): Promise<void>;
}

/** JSON text of `body` (bigints as numbers). */
function toJson(body: unknown): string {
  return JSON.stringify(
    body,
    (_k, v) => (typeof v === "bigint" ? Number(v) : v),
  );
}

/** A JSON response; `body` may already be JSON text (a cached result). */
function json(
  status: number,
  body: unknown,
  extra?: HeadersInit,
  isText = false,
): Response {
  const headers = new Headers(SECURITY_HEADERS);
  headers.set("content-type", "application/json; charset=utf-8");
  headers.set("cache-control", "no-store");
  if (extra) new Headers(extra).forEach((v, k) => headers.set(k, v));
  return new Response(isText ? body as string : toJson(body), {
    status,
    headers,
  });
}

interface CompiledRoute {
  route: Route;
  pattern: URLPattern;
}

/** Builds the request handler (exported for tests that skip the socket). */
export function createHandler(
  config: Config,
  db: Db,
  opts:
    & Pick<
      ApiOptions,
      | "siteDir"
      | "routes"
      | "services"
      | "healthDb"
      | "longDb"
      | "maxDbWork"
      | "dbWorkQueue"
      | "dbWorkWaitMs"
      | "maxInFlight"
      | "requestTimeoutMs"
    >
    & {
      /** The port clients connect to (default config.api.port). */
      port?: number;
    } = {},
): (req: Request) => Promise<Response> {
  // The alert endpoints are always served: the health page shows firing alerts.
  const routes: CompiledRoute[] = [
    ...(opts.routes ?? []),
    ...alertRoutes(),
    ...ROUTES,
  ].map((
    route,
  ) => ({ route, pattern: new URLPattern({ pathname: route.path }) }));
  const services = opts.services ?? cachedServiceChecks(config, db);
  const siteDir = opts.siteDir === undefined
    ? `${config.projectRoot}/dist`
    : opts.siteDir;
  const isAllowedHost = hostAllowList(config.api, opts.port ?? config.api.port);
  const lanes = {
    short: {
      db,
      limiter: new ConcurrencyLimiter(
        opts.maxDbWork ?? MAX_DB_WORK,
        opts.dbWorkQueue ?? DB_WORK_QUEUE,
        opts.dbWorkWaitMs ?? DB_WORK_WAIT_MS,
      ),
    },
    long: {
      db: opts.longDb ?? db,
      limiter: new ConcurrencyLimiter(
        MAX_LONG_WORK,
        opts.dbWorkQueue ?? DB_WORK_QUEUE,
        opts.dbWorkWaitMs ?? DB_WORK_WAIT_MS,
      ),
    },
  };
  const cache = new ResultCache(MAX_CACHE_ENTRIES);
  const admission = new ConcurrencyLimiter(opts.maxInFlight ?? MAX_IN_FLIGHT);
  const busy = () =>
    json(429, { error: "the API is busy; try again in a moment" }, {
      "retry-after": "1",
    });
  const requestTimeoutMs = opts.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
  const healthDb = opts.healthDb ?? db;
  // One probe at a time: while the database hangs, callers share the
  // pending one instead of queueing a `select 1` each.
  let healthProbe: Promise<unknown> | undefined;
  const health = async (): Promise<Response> => {
    healthProbe ??= healthDb.query("select 1").finally(() => {
      healthProbe = undefined;
    });
    try {
      await withTimeout(healthProbe, HEALTH_TIMEOUT_MS, "select 1");
      return json(200, { ok: true, db: "up" });
    } catch (err) {
      // The reason (it may name a user or a host) stays in the log.
      log.warn("healthz: database check failed", { error: err });
      return json(503, { ok: false, db: "down", reason: publicReason(err) });
    }
  };

  /**
   * `/metrics` (admitted like an /api request): the Prometheus text of
   * prometheus.ts, cached and computed in the short lane like a poll.
   */
  const metricsRequest = async (req: Request): Promise<Response> => {
    if (req.method !== "GET" && req.method !== "HEAD") {
      return json(405, { error: `method ${req.method} not allowed` }, {
        allow: "GET, HEAD",
      });
    }
    const pending = cache.get(
      "/metrics",
      METRICS_TTL_MS,
      () =>
        lanes.short.limiter.acquire()?.then((release) => {
          const work = prometheusMetrics(lanes.short.db);
          work.then(release, release);
          return work;
        }),
      METRICS_STALE_MS,
    );
    if (!pending) return busy();
    let text: string;
    try {
      text = await withTimeout(pending, requestTimeoutMs, "metrics") as string;
    } catch (err) {
      if (err instanceof BusyError) return busy();
      log.warn("metrics failed or timed out", { error: err });
      return json(503, {
        error: "the database did not answer in time; try again",
      }, { "retry-after": "2" });
    }
    const headers = new Headers(SECURITY_HEADERS);
    headers.set("content-type", PROMETHEUS_CONTENT_TYPE);
    headers.set("cache-control", "no-store");
    return new Response(req.method === "HEAD" ? null : text, { headers });
  };

  /** One `/api/...` request (admitted: within MAX_IN_FLIGHT). */
  const apiRequest = async (
    req: Request,
    url: URL,
    started: number,
  ): Promise<Response> => {
    // Only paths with parameters need URLPattern (slow enough to matter
    // under load); the others match by string, in the same order.
    const matches = routes
      .map((r) => ({
        ...r,
        m: r.route.path.includes(":")
          ? r.pattern.exec({ pathname: url.pathname })
          : r.route.path === url.pathname
          ? { pathname: { groups: {} } }
          : null,
      }))
      .filter((r) => r.m);
    if (matches.length === 0) {
      throw new ApiError(404, `no such endpoint: ${url.pathname}`);
    }
    const method = req.method === "HEAD" ? "GET" : req.method;
    const hit = matches.find((r) => r.route.method === method);
    if (!hit) {
      return json(405, {
        error: `method ${req.method} not allowed on ${url.pathname}`,
      }, {
        allow: [...new Set(matches.map((r) => r.route.method))].join(", "),
      });
    }
    const params = parseParams(url.searchParams, hit.route.params);
    const isRead = hit.route.method === "GET";
    const policy = isRead ? hit.route.cache?.(params) : undefined;
    const lane = policy?.long ? lanes.long : lanes.short;
    const run = () =>
      lane.limiter.acquire()?.then((release) => {
        const work = hit.route.handler({
          db: lane.db,
          config,
          req,
          url,
          path: hit.m!.pathname.groups,
          params,
          services,
          isAllowedHost,
        }).then((body) =>
          // Kept as text: a cached result is serialised once, not per hit.
          toJson({ asOf: new Date().toISOString(), ...body as object })
        );
        // The slot is held until the database is really done, even when
        // the client got its 503 long before.
        work.then(release, release);
        return work;
      });
    const ttlMs = policy?.ttlMs ?? 0;
    const pending = isRead
      ? cache.get(
        cacheKey(url.pathname, params),
        ttlMs,
        run,
        Math.max(ttlMs * STALE_TTLS, STALE_MIN_MS),
      )
      : run();
    if (!pending) return busy();
    let body: unknown;
    try {
      body = await withTimeout(pending, requestTimeoutMs, "request");
    } catch (err) {
      if (err instanceof ApiError) throw err;
      if (err instanceof BusyError) return busy();
      log.warn("request failed or timed out", {
        path: url.pathname,
        error: err,
      });
      return json(503, {
        error: "the database did not answer in time; try again",
      }, { "retry-after": "2" });
    }
    // A change is visible to the very next read.
    if (!isRead) cache.clear();
    const res = json(200, body, undefined, true);
    log.debug("request", {
      path: url.pathname,
      ms: Math.round(performance.now() - started),
    });
    return req.method === "HEAD"
      ? new Response(null, { status: 200, headers: res.headers })
      : res;
  };

  return async (req: Request): Promise<Response> => {
    const url = new URL(req.url);
    const started = performance.now();
    try {
      const host = req.headers.get("host") ?? "";
      if (!isAllowedHost(host)) {
        // DNS rebinding: a page on another name that resolves here.
        return json(421, {
          error:
            "this API answers only its own host names (see LOGPIPE_API_ALLOWED_HOSTS)",
        });
      }
      if (url.pathname === "/healthz") return await health();
      if (url.pathname === "/metrics") {
        const admitted = admission.tryAcquire();
        if (!admitted) return busy();
        try {
          return await metricsRequest(req);
        } finally {
          admitted();
        }
      }
      if (url.pathname === "/api" || url.pathname === "/api/") {
        return json(200, {
          endpoints: routes.map(({ route }) => ({
            method: route.method,
            path: route.path,
            params: Object.keys(route.params),
            summary: route.summary,
          })),
        });
      }
      if (url.pathname.startsWith("/api/")) {
        const admitted = admission.tryAcquire();
        if (!admitted) return busy();
        try {
          return await apiRequest(req, url, started);
        } finally {
          admitted();
        }
      }
      if (req.method !== "GET" && req.method !== "HEAD") {
        return json(405, { error: `method ${req.method} not allowed` }, {
          allow: "GET, HEAD",
        });
      }
      if (
        url.pathname === "/dbt-docs" || url.pathname.startsWith("/dbt-docs/")
      ) {
        // dbt's generated docs (models, columns, lineage), when generated.
        return await serveStatic(
          `${config.localDir}/dbt-docs`,
          req,
          url.pathname.slice("/dbt-docs".length) || "/",
        );
      }
      if (siteDir === null) throw new ApiError(404, "no site is served here");
      return await serveStatic(siteDir, req, url.pathname);
    } catch (err) {
      if (err instanceof ApiError) {
        return json(err.status, { error: err.message });
      }
      log.error("request failed", { path: url.pathname, error: err });
      return json(500, { error: "internal error; see the API log" });
    }
  };
}

/**
 * Starts the API on config.api.host:port (127.0.0.1 by default) and returns
 * its URL and a shutdown function.
 */
export async function startApi(
  config: Config,
  opts: ApiOptions = {},
): Promise<RunningApi> {
  // Rule-changing endpoints are guarded by LOGPIPE_API_TOKEN; without one the
  // API must not be reachable from other machines at all.
  if (!isLoopback(config.api.host) && !config.api.token) {
    throw new ConfigError(
      `LOGPIPE_API_HOST=${config.api.host} exposes the API beyond this machine: set LOGPIPE_API_TOKEN (rule changes require it) or bind to 127.0.0.1`,
    );
  }
  let db = opts.db;
  let healthDb = opts.healthDb;
  let longDb = opts.longDb;
  const ownPools: { end: () => Promise<void> }[] = [];
  if (!db) {
    const pool = (
      applicationName: string,
      max: number,
      statementTimeoutMs: number,
    ) => {
      const p = createPool(config, { max, applicationName });
      p.on("connect", (client) => {
        client.query(`set statement_timeout = ${statementTimeoutMs}`)
          .catch(() => {});
      });
      ownPools.push(p);
      return p as unknown as Db;
    };
    db = pool("logpipe-api", 5, STATEMENT_TIMEOUT_MS);
    longDb ??= pool(
      "logpipe-api-long",
      MAX_LONG_WORK,
      LONG_STATEMENT_TIMEOUT_MS,
    );
    // /healthz's own connection: a pool busy with slow queries must not
    // make the database look down.
    healthDb ??= pool("logpipe-api-health", 1, STATEMENT_TIMEOUT_MS);
  }
  const ac = new AbortController();
  const { promise: listening, resolve } = Promise.withResolvers<
    Deno.NetAddr
  >();
  // The Host allow-list needs the real port (0 = any free port).
  let handler: ((req: Request) => Promise<Response>) | undefined;
  const server = Deno.serve({
    hostname: config.api.host,
    port: opts.port ?? config.api.port,
    signal: ac.signal,
    onListen: (addr) => {
      handler = createHandler(config, db, {
        ...opts,
        healthDb,
        longDb,
        port: (addr as Deno.NetAddr).port,
      });
      resolve(addr as Deno.NetAddr);
    },
    onError: (err) => {
      log.error("unhandled", { error: err });
      return json(500, { error: "internal error" });
    },
  }, (req) => handler!(req));
  const addr = await listening;
  // A wildcard bind is reached on loopback (the Host allow-list has no
  // 0.0.0.0: it is not a name anyone connects to).
  const host = addr.hostname === "0.0.0.0"
    ? "127.0.0.1"
    : addr.hostname === "::"
    ? "[::1]"
    : addr.hostname.includes(":")
    ? `[${addr.hostname}]`
    : addr.hostname;
  const url = `http://${host}:${addr.port}`;
  log.info("listening", { url });
  return {
    url,
    async shutdown() {
      ac.abort();
      await server.finished;
      await Promise.all(ownPools.map((p) => p.end()));
    },
  };
}
