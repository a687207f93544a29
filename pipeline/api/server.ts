/**
 * The logpipe API: read-only JSON over `monitoring.*` and `ops.*` for the
 * live pages, `/healthz`, and the built site (`dist/`) from the same origin.
 * `startApi` is what `deno task api` and `deno task up` (in-process) call.
 */
import { type Config, ConfigError } from "../config.ts";
import { alertRoutes, isLoopback } from "../alerts/routes.ts";
import { logger } from "../log.ts";
import { cachedServiceChecks, type ServiceCheck } from "./health.ts";
import { ApiError, parseParams } from "./params.ts";
import type { Db } from "./queries.ts";
import { type Route, ROUTES } from "./routes.ts";
import { SECURITY_HEADERS, serveStatic } from "./static.ts";

const log = logger("api");

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
}

export interface RunningApi {
  /** Base URL, e.g. http://127.0.0.1:8787 */
  url: string;
  /** Stops accepting requests, waits for in-flight ones, closes the pool. */
  shutdown(): Promise<void>;
}

function json(status: number, body: unknown, extra?: HeadersInit): Response {
  const headers = new Headers(SECURITY_HEADERS);
  headers.set("content-type", "application/json; charset=utf-8");
  headers.set("cache-control", "no-store");
  if (extra) new Headers(extra).forEach((v, k) => headers.set(k, v));
  return new Response(
    JSON.stringify(
      body,
      (_k, v) => (typeof v === "bigint" ? Number(v) : v),
    ),
    { status, headers },
  );
}

interface CompiledRoute {
  route: Route;
  pattern: URLPattern;
}

/** Builds the request handler (exported for tests that skip the socket). */
export function createHandler(
  config: Config,
  db: Db,
  opts: Pick<ApiOptions, "siteDir" | "routes" | "services"> = {},
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

  return async (req: Request): Promise<Response> => {
    const url = new URL(req.url);
    const started = performance.now();
    try {
      if (url.pathname === "/healthz") {
        try {
          await db.query("select 1");
          return json(200, { ok: true, db: "up" });
        } catch (err) {
          return json(503, { ok: false, db: "down", error: String(err) });
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
        const matches = routes
          .map((r) => ({ ...r, m: r.pattern.exec({ pathname: url.pathname }) }))
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
        const body = await hit.route.handler({
          db,
          config,
          req,
          url,
          path: hit.m!.pathname.groups,
          params,
          services,
        });
        const res = json(200, {
          asOf: new Date().toISOString(),
          ...body as object,
        });
        log.debug("request", {
          path: url.pathname,
          ms: Math.round(performance.now() - started),
        });
        return req.method === "HEAD"
          ? new Response(null, { status: 200, headers: res.headers })
          : res;
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
  let ownPool = false;
  if (!db) {
    const { createPool } = await import("../clients/postgres.ts");
    db = createPool(config) as unknown as Db & { end: () => Promise<void> };
    ownPool = true;
  }
  const handler = createHandler(config, db, opts);
  const ac = new AbortController();
  const { promise: listening, resolve } = Promise.withResolvers<
    Deno.NetAddr
  >();
  const server = Deno.serve({
    hostname: config.api.host,
    port: opts.port ?? config.api.port,
    signal: ac.signal,
    onListen: (addr) => resolve(addr as Deno.NetAddr),
    onError: (err) => {
      log.error("unhandled", { error: err });
      return json(500, { error: "internal error" });
    },
  }, handler);
  const addr = await listening;
  const host = addr.hostname.includes(":")
    ? `[${addr.hostname}]`
    : addr.hostname;
  const url = `http://${host}:${addr.port}`;
  log.info("listening", { url });
  return {
    url,
    async shutdown() {
      ac.abort();
      await server.finished;
      if (ownPool) await db.end?.();
    },
  };
}
