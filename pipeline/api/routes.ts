/**
 * The API's routes: a flat table of {method, path, params, handler}. To add
 * an endpoint (e.g. the alert rules of a later issue), append a Route; the
 * server validates parameters before the handler runs and turns ApiError
 * into a JSON error response.
 */
import type { Config } from "../config.ts";
import type { ServiceCheck } from "../probes/probes.ts";
import {
  ApiError,
  countries,
  DEVICE_TYPES,
  duration,
  EVENT_TYPES,
  ident,
  int,
  LEVELS,
  listOf,
  MAX_WINDOW_SECS,
  oneOf,
  type ParamSpec,
  text,
  timestamp,
} from "./params.ts";
import * as q from "./queries.ts";
import { REJECT_REASON_LIST } from "../events/schema.ts";
import { recentDeadLetters } from "../redrive/dead_letters.ts";
import { QUARANTINE_REASONS } from "../batch/quarantine.ts";

/** What a handler gets. */
export interface RouteContext {
  db: q.Db;
  config: Config;
  req: Request;
  url: URL;
  /** Named groups of the path pattern (e.g. `:id`). */
  path: Record<string, string | undefined>;
  /** Validated query parameters. */
  params: Record<string, unknown>;
  services: () => Promise<ServiceCheck[]>;
  /** The Host allow-list (rule-changing calls check Origin against it). */
  isAllowedHost: (host: string) => boolean;
}

/** One endpoint. `write` routes must check the API token themselves. */
export interface Route {
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  /** URLPattern pathname, e.g. `/api/events/:id`. */
  path: string;
  params: Record<string, ParamSpec<unknown>>;
  /** One line for the endpoint index (`GET /api`). */
  summary: string;
  /**
   * How long a GET's result may be reused, and whether it is long-lane work
   * (see server.ts): for the heavy aggregates the live pages poll. Cheap or
   * write-sensitive endpoints leave it unset (identical requests in flight
   * still share one computation).
   */
  cache?: (params: Record<string, unknown>) => CachePolicy;
  handler: (ctx: RouteContext) => Promise<unknown>;
}

/** How a result is reused (Route.cache). */
export interface CachePolicy {
  ttlMs: number;
  /** Long-lane work: its own pool (longer statement_timeout) and cap. */
  long: boolean;
}

/** From this `window` on, a request is long-lane work. */
export const LONG_WINDOW_SECS = 6 * 3600;

/**
 * The policy of a windowed aggregate: reused for half its `window` in ms
 * (15 m → 0.5 s, 1 h → 1.8 s, 6 h → 10.8 s), between 0.5 s and 60 s, so the
 * live feed stays fresh and a 7-day chart is computed once a minute; long
 * windows (LONG_WINDOW_SECS and more) are long-lane work.
 */
export function byWindow(params: Record<string, unknown>): CachePolicy {
  const windowSecs = typeof params.window === "number" ? params.window : 0;
  return {
    ttlMs: Math.min(60_000, Math.max(500, windowSecs / 2)),
    long: windowSecs >= LONG_WINDOW_SECS,
  };
}

/**
 * Totals over a whole day or all seven days (overview, stages): as heavy
 * as a long window and as slow to change.
 */
const WHOLE_TABLES = (): CachePolicy => ({ ttlMs: 5_000, long: true });

/** The filters every event endpoint shares (window 10 s - 7 d, default 15 m). */
export const EVENT_FILTER_PARAMS = {
  window: duration(10, MAX_WINDOW_SECS, 900),
  event_type: listOf(EVENT_TYPES),
  country: countries(),
  device: listOf(DEVICE_TYPES),
  level: listOf(LEVELS),
};

function eventFilter(p: Record<string, unknown>): q.EventFilter {
  return {
    windowSecs: p.window as number,
    eventTypes: p.event_type as string[] | undefined,
    countries: p.country as string[] | undefined,
    devices: p.device as string[] | undefined,
    levels: p.level as string[] | undefined,
  };
}

/** The read-only monitoring/ops endpoints. */
export const ROUTES: Route[] = [
  {
    method: "GET",
    path: "/api/overview",
    cache: WHOLE_TABLES,
    params: {},
    summary: "today's KPIs (UTC) and the freshness of each layer",
    handler: ({ db }) => q.overview(db),
  },
  {
    method: "GET",
    path: "/api/events/stats",
    cache: byWindow,
    params: EVENT_FILTER_PARAMS,
    summary:
      "event totals, error rate, revenue, breakdowns by type/country/device and a per-step series",
    handler: ({ db, params }) => q.eventStats(db, eventFilter(params)),
  },
  {
    method: "GET",
    path: "/api/events/recent",
    cache: byWindow,
    params: {
      ...EVENT_FILTER_PARAMS,
      limit: int(1, 500, 50),
      q: text(100),
    },
    summary:
      "the newest events of the live feed (filters; q = search-query substring)",
    handler: async ({ db, params }) => ({
      events: await q.recentEvents(
        db,
        eventFilter(params),
        params.limit as number,
        params.q as string | undefined,
      ),
    }),
  },
  {
    method: "GET",
    path: "/api/events/cities",
    cache: byWindow,
    params: EVENT_FILTER_PARAMS,
    summary: "events per country and city among the last 1,000 events",
    handler: async ({ db, params }) => ({
      cities: await q.recentCities(db, eventFilter(params)),
    }),
  },
  {
    method: "GET",
    path: "/api/events/:id",
    params: {},
    summary: "one event of the live feed with all its fields",
    handler: async ({ db, path }) => {
      const id = ident(200).parse("id", path.id ?? "");
      const event = await q.recentEvent(db, id);
      if (!event) {
        throw new ApiError(404, `event "${id}" is not among the recent events`);
      }
      return { event };
    },
  },
  {
    method: "GET",
    path: "/api/pipeline/throughput",
    cache: byWindow,
    params: { window: duration(10, MAX_WINDOW_SECS, 900) },
    summary:
      "consumer records in/out per second, files and bytes written, latency p50/p95/p99",
    handler: ({ db, params }) => q.throughput(db, params.window as number),
  },
  {
    method: "GET",
    path: "/api/pipeline/lag",
    params: {},
    summary: "consumer lag per partition (offsets and seconds)",
    handler: async ({ db }) => ({ partitions: await q.consumerLag(db) }),
  },
  {
    method: "GET",
    path: "/api/pipeline/dead-letters",
    cache: byWindow,
    params: { window: duration(10, MAX_WINDOW_SECS, 3600) },
    summary: "dead letters by reason and over time",
    handler: ({ db, params }) => q.deadLetters(db, params.window as number),
  },
  {
    method: "GET",
    path: "/api/pipeline/components",
    params: {},
    summary: "heartbeats of the running components (stale after 30 s)",
    handler: async ({ db }) => ({ components: await q.components(db) }),
  },
  {
    method: "GET",
    path: "/api/pipeline/services",
    params: {},
    summary: "real up/down checks of Kafka, HDFS and Postgres (cached 5 s)",
    handler: async ({ services }) => ({ services: await services() }),
  },
  {
    method: "GET",
    path: "/api/pipeline/stages",
    cache: WHOLE_TABLES,
    params: {},
    summary: "live counts of every stage (Kafka, HDFS, raw, marts)",
    handler: ({ db }) => q.stages(db),
  },
  {
    method: "GET",
    path: "/api/batch/runs",
    cache: () => ({ ttlMs: 500, long: false }),
    params: { limit: int(1, 100, 20) },
    summary: "the last batch runs and their task tries (Airflow-style grid)",
    handler: ({ db, params }) => q.batchRuns(db, params.limit as number),
  },
  {
    method: "GET",
    path: "/api/batch/quarantine",
    cache: () => ({ ttlMs: 1000, long: false }),
    params: {
      status: oneOf(["quarantined", "reloaded", "all"] as const, "quarantined"),
      reason: listOf(QUARANTINE_REASONS),
      limit: int(1, 500, 100),
    },
    summary:
      "rows and files the batch quarantined (reason, SQLSTATE, coordinates, the row), by reason; duplicates by kind",
    handler: ({ db, params }) =>
      q.quarantine(db, {
        status: params.status as string,
        reasons: params.reason as string[] | undefined,
        limit: params.limit as number,
      }),
  },
  {
    method: "GET",
    path: "/api/dead-letters",
    params: {
      reason: oneOf(REJECT_REASON_LIST),
      limit: int(1, 500, 100),
      before: timestamp(),
    },
    summary:
      "dead letters, newest first: Kafka coordinates, reason, original bytes as escaped text, redrive state (filter: reason; page: before)",
    handler: ({ db, config, params }) =>
      recentDeadLetters(config, db, {
        reason: params.reason as string | undefined,
        limit: params.limit as number,
        before: params.before as Date | undefined,
      }),
  },
  {
    method: "GET",
    path: "/api/batch/tests",
    params: { run_id: ident(200) },
    summary: "dbt test results of a run (default: the newest with tests)",
    handler: ({ db, params }) =>
      q.dbtTests(db, params.run_id as string | undefined),
  },
];
