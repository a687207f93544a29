/**
 * The alert endpoints of the API (added to startApi through `opts.routes`,
 * see alertRoutes), over the alerts stage's rule model and store: list the metric catalogue, the rules with their live
 * state, firing alerts and recent transitions; create, replace, enable /
 * disable and delete rules.
 *
 * Rule-changing calls:
 * - need `Authorization: Bearer $LOGPIPE_API_TOKEN` whenever a token is
 *   configured (and startApi refuses to bind beyond loopback without one);
 * - accept only `content-type: application/json` and, when the browser sends
 *   an Origin, only one on the API's Host allow-list (its loopback names and
 *   LOGPIPE_API_ALLOWED_HOSTS), so a web page elsewhere cannot change rules
 *   through a user's browser (no CORS preflight is ever answered; the
 *   server already refused any request whose Host is not on that list);
 * - read the body with a byte cap (413 as soon as it is exceeded);
 * - answer 400 with `field "<name>": <reason>` on an invalid rule.
 */
import type { Config } from "../config.ts";
import { originAllowed, readTextCapped } from "./guard.ts";
import { ApiError, int } from "./params.ts";
import type { Route, RouteContext } from "./routes.ts";
import {
  type AlertRule,
  METRICS,
  RuleValidationError,
  validateRule,
} from "../alerts/rules.ts";
import * as store from "../alerts/store.ts";
import type { Db } from "../alerts/metrics.ts";

const MAX_BODY_BYTES = 64 * 1024;
const LOOPBACK = new Set(["127.0.0.1", "localhost", "::1", "[::1]"]);

/** True when `host` only accepts connections from this machine. */
export function isLoopback(host: string): boolean {
  return LOOPBACK.has(host) || /^127\.\d+\.\d+\.\d+$/.test(host);
}

async function sha256(s: string): Promise<Uint8Array> {
  return new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(s)),
  );
}

/** Compares secrets in constant time (hashes first: equal lengths). */
async function sameSecret(a: string, b: string): Promise<boolean> {
  const [x, y] = await Promise.all([sha256(a), sha256(b)]);
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x[i] ^ y[i];
  return diff === 0;
}

/**
 * Throws 401/403 unless the request may change rules (see module comment).
 */
export async function authorizeWrite(
  { config, req, isAllowedHost }:
    & Pick<RouteContext, "req" | "isAllowedHost">
    & { config: Pick<Config, "api"> },
): Promise<void> {
  const origin = req.headers.get("origin");
  if (origin !== null && !originAllowed(origin, isAllowedHost)) {
    throw new ApiError(
      403,
      `cross-origin rule changes are refused (Origin ${origin.slice(0, 100)})`,
    );
  }
  const token = config.api.token;
  if (token === undefined) {
    if (!isLoopback(config.api.host)) {
      throw new ApiError(
        403,
        "rule changes need LOGPIPE_API_TOKEN when the API binds beyond 127.0.0.1",
      );
    }
    return;
  }
  const auth = req.headers.get("authorization") ?? "";
  const m = /^Bearer (.+)$/.exec(auth);
  if (!m || !(await sameSecret(m[1], token))) {
    throw new ApiError(
      401,
      "rule changes need the API token: Authorization: Bearer <LOGPIPE_API_TOKEN>",
    );
  }
}

async function readJson(req: Request): Promise<unknown> {
  const type = req.headers.get("content-type") ?? "";
  if (!/^application\/json\b/i.test(type)) {
    throw new ApiError(415, "send the rule as content-type: application/json");
  }
  const text = await readTextCapped(req, MAX_BODY_BYTES, "a rule");
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError(400, "the body is not valid JSON");
  }
}

function validated(body: unknown): AlertRule {
  try {
    return validateRule(body);
  } catch (err) {
    if (err instanceof RuleValidationError) {
      throw new ApiError(400, `invalid rule: ${err.message}`);
    }
    throw err;
  }
}

function ruleId(ctx: RouteContext): string {
  const id = ctx.path.id ?? "";
  if (!/^[a-z0-9][a-z0-9_-]{0,63}$/.test(id)) {
    throw new ApiError(
      400,
      `parameter "id" is not a rule id: "${id.slice(0, 70)}"`,
    );
  }
  return id;
}

async function mustExist(db: Db, id: string) {
  const rule = await store.getRule(db, id);
  if (!rule) throw new ApiError(404, `no alert rule "${id}"`);
  return rule;
}

/** The alert routes (read and write). */
export function alertRoutes(): Route[] {
  return [
    {
      method: "GET",
      path: "/api/alerts/metrics",
      params: {},
      summary: "the metrics an alert rule can watch (unit, filters, samples)",
      handler: () =>
        Promise.resolve({
          metrics: Object.entries(METRICS).map(([id, m]) => ({ id, ...m })),
        }),
    },
    {
      method: "GET",
      path: "/api/alerts/rules",
      params: {},
      summary: "alert rules with their live state (ok, pending, firing)",
      handler: async ({ db, config }) => ({
        rules: await store.rulesWithState(db),
        writeNeedsToken: config.api.token !== undefined,
      }),
    },
    {
      method: "GET",
      path: "/api/alerts/firing",
      params: {},
      summary: "the alerts firing now",
      handler: async ({ db }) => ({ alerts: await store.firingAlerts(db) }),
    },
    {
      method: "GET",
      path: "/api/alerts/events",
      params: { limit: int(1, 500, 50) },
      summary:
        "recent alert transitions (pending, firing, renotify, resolved, ...)",
      handler: async ({ db, params }) => ({
        events: await store.recentEvents(db, params.limit as number),
      }),
    },
    {
      method: "POST",
      path: "/api/alerts/rules",
      params: {},
      summary: "create a rule (JSON body; token when configured)",
      handler: async (ctx) => {
        const { db, req } = ctx;
        await authorizeWrite(ctx);
        const rule = validated(await readJson(req));
        const created = await store.insertRule(db, rule, "api");
        if (!created) {
          throw new ApiError(409, `a rule with id "${rule.id}" already exists`);
        }
        return { rule: created };
      },
    },
    {
      method: "GET",
      path: "/api/alerts/rules/:id",
      params: {},
      summary: "one rule and its recent transitions",
      handler: async ({ db, ...ctx }) => {
        const id = ruleId({ db, ...ctx });
        return {
          rule: await mustExist(db, id),
          events: await store.recentEvents(db, 50, id),
        };
      },
    },
    {
      method: "PUT",
      path: "/api/alerts/rules/:id",
      params: {},
      summary: "replace a rule (JSON body; token when configured)",
      handler: async (ctx) => {
        await authorizeWrite(ctx);
        const id = ruleId(ctx);
        const body = await readJson(ctx.req);
        if (
          body && typeof body === "object" && !Array.isArray(body) &&
          "id" in body && (body as { id: unknown }).id !== id
        ) {
          throw new ApiError(
            400,
            `invalid rule: field "id": must be "${id}" (the id in the URL)`,
          );
        }
        const rule = validated({ ...(body as object), id });
        const updated = await store.updateRule(ctx.db, rule, "api");
        if (!updated) throw new ApiError(404, `no alert rule "${id}"`);
        return { rule: updated };
      },
    },
    {
      method: "PATCH",
      path: "/api/alerts/rules/:id",
      params: {},
      summary: 'change some fields of a rule, e.g. {"enabled": false}',
      handler: async (ctx) => {
        await authorizeWrite(ctx);
        const id = ruleId(ctx);
        const body = await readJson(ctx.req);
        if (!body || typeof body !== "object" || Array.isArray(body)) {
          throw new ApiError(
            400,
            'invalid rule: field "(body)": must be a JSON object',
          );
        }
        const current = await mustExist(ctx.db, id);
        const {
          source: _s,
          version: _v,
          created_at: _c,
          updated_at: _u,
          ...base
        } = current;
        const rule = validated({ ...base, ...body, id });
        const updated = await store.updateRule(ctx.db, rule, "api");
        if (!updated) throw new ApiError(404, `no alert rule "${id}"`);
        return { rule: updated };
      },
    },
    {
      method: "DELETE",
      path: "/api/alerts/rules/:id",
      params: {},
      summary: "delete a rule (its history stays)",
      handler: async (ctx) => {
        await authorizeWrite(ctx);
        const id = ruleId(ctx);
        if (!(await store.deleteRule(ctx.db, id))) {
          throw new ApiError(404, `no alert rule "${id}"`);
        }
        return { deleted: id };
      },
    },
  ];
}
