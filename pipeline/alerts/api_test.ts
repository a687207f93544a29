/**
 * The alert API on the real API server and a real, migrated Postgres:
 * rule CRUD, a 400 naming the field for each kind of invalid rule, the
 * token / origin / content-type guard, the refusal to bind beyond loopback
 * without a token, and a rule edit that takes effect at the next evaluation
 * (monitoring rows written the way the consumer writes them).
 */
import assert from "node:assert/strict";
import { ConfigError, loadConfig } from "../config.ts";
import { createPool } from "../clients/postgres.ts";
import { createTestEnv } from "../testing/env.ts";
import { startApi } from "../api/server.ts";
import { startWebhookReceiver } from "../notify/receivers.ts";
import { AlertEvaluator } from "./evaluator.ts";

const RULE = {
  id: "api-errors",
  name: "API test: error rate",
  metric: "error_rate",
  window_secs: 60,
  comparison: ">",
  threshold: 50,
  min_events: 10,
  channels: ["slack"],
  renotify_secs: 0,
  cooldown_secs: 0,
};

Deno.test({
  name:
    "alerts API: CRUD, 400 per invalid field, token guard, edit → next evaluation",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const env = await createTestEnv("alerts_api", { noTopic: true });
    const hook = startWebhookReceiver();
    const config = loadConfig({
      ...Deno.env.toObject(),
      ...env.env,
      LOGPIPE_SLACK_WEBHOOK_URL: hook.url,
    });
    const pool = createPool(config, { max: 3 });
    const api = await startApi(config, {
      db: pool,
      port: 0,
      siteDir: null,
    });
    const call = async (
      method: string,
      path: string,
      body?: unknown,
      headers: Record<string, string> = {},
    ) => {
      const res = await fetch(`${api.url}${path}`, {
        method,
        headers: body === undefined
          ? headers
          : { "content-type": "application/json", ...headers },
        body: body === undefined
          ? undefined
          : typeof body === "string"
          ? body
          : JSON.stringify(body),
      });
      return { status: res.status, body: await res.json() };
    };
    try {
      await t.step("create, read, list, patch, replace, delete", async () => {
        const created = await call("POST", "/api/alerts/rules", RULE);
        assert.equal(created.status, 200, JSON.stringify(created.body));
        assert.equal(created.body.rule.id, "api-errors");
        assert.equal(created.body.rule.version, 1);
        assert.equal(
          (await call("POST", "/api/alerts/rules", RULE)).status,
          409,
        );
        const list = await call("GET", "/api/alerts/rules");
        assert.deepEqual(list.body.rules.map((r: { id: string }) => r.id), [
          "api-errors",
        ]);
        assert.equal(list.body.rules[0].state, "ok");
        const off = await call("PATCH", "/api/alerts/rules/api-errors", {
          enabled: false,
        });
        assert.equal(off.status, 200);
        assert.equal(off.body.rule.enabled, false);
        assert.equal(off.body.rule.version, 2);
        const put = await call("PUT", "/api/alerts/rules/api-errors", {
          ...RULE,
          threshold: 40,
        });
        assert.equal(put.body.rule.threshold, 40);
        assert.equal(put.body.rule.enabled, true);
        assert.equal(
          (await call("GET", "/api/alerts/rules/api-errors")).body.rule
            .threshold,
          40,
        );
        assert.equal((await call("GET", "/api/alerts/rules/nope")).status, 404);
        assert.equal(
          (await call("PUT", "/api/alerts/rules/nope", RULE)).status,
          400,
        ); // id mismatch
        assert.equal(
          (await call("DELETE", "/api/alerts/rules/nope")).status,
          404,
        );
        const tmp = await call("POST", "/api/alerts/rules", {
          ...RULE,
          id: "tmp",
        });
        assert.equal(tmp.status, 200);
        assert.equal(
          (await call("DELETE", "/api/alerts/rules/tmp")).status,
          200,
        );
        assert.equal((await call("GET", "/api/alerts/rules/tmp")).status, 404);
        const metrics = await call("GET", "/api/alerts/metrics");
        assert.ok(
          metrics.body.metrics.some((m: { id: string }) =>
            m.id === "consumer_lag_seconds"
          ),
        );
      });

      await t.step(
        "each kind of invalid rule → 400 naming the field",
        async () => {
          const cases: Array<[unknown, string]> = [
            [{ ...RULE, id: "x1", metric: "cpu" }, "metric"],
            [{ ...RULE, id: "x2", window_secs: -60 }, "window_secs"],
            [{ ...RULE, id: "x3", threshold: "fifty" }, "threshold"],
            [{ ...RULE, id: "x4", comparison: "==" }, "comparison"],
            [{ ...RULE, id: "x5", severity: "urgent" }, "severity"],
            [{ ...RULE, id: "x6", channels: ["sms"] }, "channels"],
            [{ ...RULE, id: "x7", min_events: 1.5 }, "min_events"],
            [
              { ...RULE, id: "x8", filter: { country: ["ZZ"] } },
              "filter.country",
            ],
            [{ ...RULE, id: "x9", name: "" }, "name"],
            [{ ...RULE, id: "x10", extra: 1 }, "extra"],
            // Inherited names are no metrics (`in` used to let them pass).
            [{ ...RULE, id: "x11", metric: "constructor" }, "metric"],
            [{ ...RULE, id: "x12", metric: "__proto__" }, "metric"],
            [{ ...RULE, id: "x13", metric: "toString" }, "metric"],
            [
              `{"__proto__": {"metric": "error_rate"}, ${
                JSON.stringify({ ...RULE, id: "x14" }).slice(1)
              }`,
              "__proto__",
            ],
          ];
          for (const [body, field] of cases) {
            const res = await call("POST", "/api/alerts/rules", body);
            assert.equal(res.status, 400, JSON.stringify(body));
            assert.match(
              res.body.error,
              new RegExp(`field "${field.replace(".", "\\.")}"`),
              res.body.error,
            );
          }
          const patch = await call("PATCH", "/api/alerts/rules/api-errors", {
            window_secs: 0,
          });
          assert.equal(patch.status, 400);
          assert.match(patch.body.error, /field "window_secs"/);
          assert.equal(
            (await call("POST", "/api/alerts/rules", "{not json")).status,
            400,
          );
          // Nothing invalid was stored.
          const list = await call("GET", "/api/alerts/rules");
          assert.equal(list.body.rules.length, 1);
          assert.equal(list.body.rules[0].window_secs, 60);
        },
      );

      await t.step("writes: JSON only, same origin only", async () => {
        const form = await fetch(`${api.url}/api/alerts/rules`, {
          method: "POST",
          headers: { "content-type": "text/plain" },
          body: JSON.stringify({ ...RULE, id: "csrf" }),
        });
        assert.equal(form.status, 415);
        await form.body?.cancel();
        const cross = await call("POST", "/api/alerts/rules", {
          ...RULE,
          id: "csrf",
        }, {
          origin: "https://evil.example",
        });
        assert.equal(cross.status, 403);
        const same = await call("PATCH", "/api/alerts/rules/api-errors", {
          description: "same origin",
        }, {
          origin: api.url,
        });
        assert.equal(same.status, 200);
      });

      await t.step(
        "with LOGPIPE_API_TOKEN set, writes need the bearer token",
        async () => {
          const tokenConfig = loadConfig({
            ...Deno.env.toObject(),
            ...env.env,
            LOGPIPE_API_TOKEN: "s3cret-token-for-the-alerts-test",
          });
          const guarded = await startApi(tokenConfig, {
            db: pool,
            port: 0,
            siteDir: null,
          });
          try {
            const url = `${guarded.url}/api/alerts/rules/api-errors`;
            const patch = (auth?: string) =>
              fetch(url, {
                method: "PATCH",
                headers: {
                  "content-type": "application/json",
                  ...(auth ? { authorization: auth } : {}),
                },
                body: JSON.stringify({ description: "token" }),
              }).then(async (r) => ({
                status: r.status,
                body: await r.json(),
              }));
            assert.equal((await patch()).status, 401);
            assert.equal((await patch("Bearer wrong")).status, 401);
            const ok = await patch("Bearer s3cret-token-for-the-alerts-test");
            assert.equal(ok.status, 200);
            // Reads stay open.
            const read = await fetch(`${guarded.url}/api/alerts/rules`);
            assert.equal(read.status, 200);
            assert.equal((await read.json()).writeNeedsToken, true);
          } finally {
            await guarded.shutdown();
          }
        },
      );

      await t.step(
        "the API refuses to bind beyond loopback without a token",
        async () => {
          const open = loadConfig({
            ...Deno.env.toObject(),
            ...env.env,
            LOGPIPE_API_HOST: "0.0.0.0",
          });
          await assert.rejects(
            () => startApi(open, { db: pool, port: 0, siteDir: null }),
            (e: Error) =>
              e instanceof ConfigError && /LOGPIPE_API_TOKEN/.test(e.message),
          );
        },
      );

      await t.step(
        "a rule edit through the API takes effect at the next evaluation",
        async () => {
          // 30 % errors in the last minute, as the consumer records them.
          await pool.query(
            `insert into monitoring.event_counts (bucket, event_type, geo_country, device_type, level, events)
           select date_bin('10 seconds', now() - make_interval(secs => s), timestamptz 'epoch'),
                  t, 'DE', 'mobile', l, n
             from generate_series(10, 50, 10) as s,
                  (values ('search', 'INFO', 70), ('error', 'ERROR', 30)) as v(t, l, n)`,
          );
          const evaluator = new AlertEvaluator(config, {
            seedDefaults: false,
            lag: () => Promise.resolve(null),
          });
          try {
            const first = await evaluator.tick();
            assert.equal(first.firing, 0, "30 % is under the 40 % threshold");
            const state = await call("GET", "/api/alerts/rules");
            assert.ok(Math.abs(state.body.rules[0].last_value - 30) < 0.001);
            const edit = await call("PATCH", "/api/alerts/rules/api-errors", {
              threshold: 20,
            });
            assert.equal(edit.status, 200);
            const second = await evaluator.tick();
            assert.equal(second.firing, 1);
            const msg = await hook.waitFor(
              (m) => m.body.logpipe?.ruleId === "api-errors",
              5000,
            );
            assert.equal(msg.body.logpipe!.threshold, 20);
            const firing = await call("GET", "/api/alerts/firing");
            assert.deepEqual(
              firing.body.alerts.map((a: { id: string }) => a.id),
              ["api-errors"],
            );
            const events = await call("GET", "/api/alerts/events?limit=5");
            assert.equal(events.body.events[0].kind, "firing");
            assert.ok(Math.abs(events.body.events[0].value - 30) < 0.001);
            assert.equal(events.body.events[0].threshold, 20);
            // Disabling resolves it, with one resolved message.
            await call("PATCH", "/api/alerts/rules/api-errors", {
              enabled: false,
            });
            const third = await evaluator.tick();
            assert.equal(third.firing, 0);
            await hook.waitFor(
              (m) => m.body.logpipe?.kind === "alert_resolved",
              5000,
            );
            assert.equal(hook.received.length, 2);
          } finally {
            await evaluator.close();
          }
        },
      );
    } finally {
      await api.shutdown();
      await pool.end();
      await hook.close();
      await env.cleanup();
    }
  },
});
