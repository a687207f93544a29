/**
 * The API's defences on the real server and a real, migrated Postgres:
 * DNS rebinding (foreign Host → 421, before anything runs), Origin checked
 * against the allow-list, an oversized chunked body refused before it is
 * read, no details in /healthz or the service checks, the concurrency cap
 * (429), the per-request deadline (503), single flight and cache clearing,
 * and the statement_timeout of the API's own pools. The load test
 * (load_test.ts) adds 200 clients and a frozen Postgres.
 */
import assert from "node:assert/strict";
import { loadConfig } from "../config.ts";
import { createPool } from "../clients/postgres.ts";
import { createTestEnv } from "../testing/env.ts";
import { int } from "./params.ts";
import type { Route } from "./routes.ts";
import { startApi } from "./server.ts";

const RULE = {
  id: "rebinding",
  name: "created through a rebound name",
  metric: "error_rate",
  window_secs: 60,
  comparison: ">",
  threshold: 50,
  min_events: 10,
  channels: [],
  renotify_secs: 0,
  cooldown_secs: 0,
};

/**
 * One HTTP/1.1 exchange over a raw socket, so Host and every other header
 * are exactly what a browser on a rebound name would send. `body` may be
 * sent without its end (chunked, never terminated). Resolves with the
 * status and text, or undefined when nothing came back within timeoutMs.
 */
async function raw(
  port: number,
  head: string[],
  body?: { text: string; chunkedNoEnd?: boolean },
  timeoutMs = 5_000,
): Promise<{ status: number; text: string } | undefined> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const enc = new TextEncoder();
  try {
    const lines = [...head, "Connection: close"];
    if (body && !body.chunkedNoEnd) {
      lines.push(`Content-Length: ${enc.encode(body.text).length}`);
    }
    if (body?.chunkedNoEnd) lines.push("Transfer-Encoding: chunked");
    await conn.write(enc.encode(`${lines.join("\r\n")}\r\n\r\n`));
    if (body && !body.chunkedNoEnd) await conn.write(enc.encode(body.text));
    if (body?.chunkedNoEnd) {
      const bytes = enc.encode(body.text);
      await conn.write(
        enc.encode(`${bytes.length.toString(16)}\r\n`),
      );
      await conn.write(bytes);
      await conn.write(enc.encode("\r\n"));
    }
    const chunks: Uint8Array[] = [];
    const read = (async () => {
      const buf = new Uint8Array(64 * 1024);
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) break;
        chunks.push(buf.slice(0, n));
      }
    })().catch(() => {});
    const timer = new Promise<"timeout">((r) =>
      setTimeout(() => r("timeout"), timeoutMs)
    );
    const outcome = await Promise.race([read.then(() => "done"), timer]);
    const text = new TextDecoder().decode(
      new Uint8Array(chunks.flatMap((c) => [...c])),
    );
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
    if (outcome === "timeout" && status === 0) return undefined;
    return { status, text };
  } finally {
    try {
      conn.close();
    } catch { /* closed by the server */ }
  }
}

Deno.test({
  name:
    "API hardening: Host allow-list, Origin, capped body, no leaked details, 429, deadline, single flight",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const env = await createTestEnv("api_hardening", { noTopic: true });
    const pool = createPool(env.config, { max: 4 });
    let computations = 0;
    const testRoutes: Route[] = [
      {
        method: "GET",
        path: "/api/test/sleep",
        params: { ms: int(0, 10_000, 0), n: int(0, 1000, 0) },
        summary: "sleeps in Postgres",
        handler: async ({ db, params }) => {
          await db.query("select pg_sleep($1::float8 / 1000)", [params.ms]);
          return { slept: params.ms };
        },
      },
      {
        method: "GET",
        path: "/api/test/counted",
        params: {},
        summary: "counts its computations",
        cache: () => ({ ttlMs: 500, long: false }),
        handler: async ({ db }) => {
          computations++;
          await db.query("select pg_sleep(0.2)");
          return { computations };
        },
      },
      {
        method: "POST",
        path: "/api/test/touch",
        params: {},
        summary: "a write",
        handler: () => Promise.resolve({ touched: true }),
      },
      {
        method: "GET",
        path: "/api/test/statement-timeout",
        params: {},
        summary: "the session's statement_timeout",
        handler: async ({ db }) => ({
          value: (await db.query<{ statement_timeout: string }>(
            "show statement_timeout",
          )).rows[0].statement_timeout,
        }),
      },
    ];
    const api = await startApi(env.config, {
      db: pool,
      port: 0,
      siteDir: null,
      routes: testRoutes,
      maxDbWork: 2,
      dbWorkQueue: 2,
      dbWorkWaitMs: 300,
      requestTimeoutMs: 1_000,
    });
    const port = Number(new URL(api.url).port);
    try {
      await t.step(
        "DNS rebinding: a foreign Host gets 421 and changes nothing",
        async () => {
          const json = JSON.stringify(RULE);
          const evil = await raw(port, [
            "POST /api/alerts/rules HTTP/1.1",
            `Host: evil.example:${port}`,
            `Origin: http://evil.example:${port}`,
            "Content-Type: application/json",
          ], { text: json });
          assert.equal(evil?.status, 421, evil?.text);
          const stored = await pool.query(
            "select 1 from monitoring.alert_rules where id = $1",
            [RULE.id],
          );
          assert.equal(stored.rowCount, 0, "the rule was created");
          for (const path of ["/api/events/recent", "/healthz", "/"]) {
            const read = await raw(port, [
              `GET ${path} HTTP/1.1`,
              `Host: evil.example:${port}`,
            ]);
            assert.equal(read?.status, 421, path);
          }
          const own = await raw(port, [
            "GET /api/events/recent HTTP/1.1",
            `Host: localhost:${port}`,
          ]);
          assert.equal(own?.status, 200);
        },
      );

      await t.step("writes: Origin must be on the allow-list", async () => {
        const post = (origin: string, id: string) =>
          raw(port, [
            "POST /api/alerts/rules HTTP/1.1",
            `Host: 127.0.0.1:${port}`,
            `Origin: ${origin}`,
            "Content-Type: application/json",
          ], { text: JSON.stringify({ ...RULE, id }) });
        assert.equal((await post("http://evil.example", "x1"))?.status, 403);
        assert.equal((await post("null", "x2"))?.status, 403);
        assert.equal(
          (await post(`http://localhost:${port}`, "from-localhost"))?.status,
          200,
        );
        // Behind a TLS reverse proxy, its public name and https origin.
        const proxied = await startApi(
          loadConfig({
            ...Deno.env.toObject(),
            ...env.env,
            LOGPIPE_API_ALLOWED_HOSTS: "logpipe.example.com",
          }),
          { db: pool, port: 0, siteDir: null },
        );
        try {
          const p = Number(new URL(proxied.url).port);
          const res = await raw(p, [
            "POST /api/alerts/rules HTTP/1.1",
            "Host: logpipe.example.com",
            "Origin: https://logpipe.example.com",
            "Content-Type: application/json",
          ], { text: JSON.stringify({ ...RULE, id: "via-proxy" }) });
          assert.equal(res?.status, 200, res?.text);
        } finally {
          await proxied.shutdown();
        }
      });

      await t.step("an oversized body is refused before it ends", async () => {
        // 100 KB of a rule that never finishes: the cap answers 413 at once
        // instead of waiting for (and holding) the whole body.
        const res = await raw(port, [
          "POST /api/alerts/rules HTTP/1.1",
          `Host: 127.0.0.1:${port}`,
          "Content-Type: application/json",
        ], {
          text: `{"id":"big","name":"${"x".repeat(100_000)}`,
          chunkedNoEnd: true,
        }, 1_500);
        assert.equal(res?.status, 413, res?.text ?? "no answer within 1.5 s");
      });

      await t.step(
        "/healthz and the service checks give no details",
        async () => {
          const wrong = new URL(env.config.postgres.url);
          wrong.password = "not-the-password";
          const badConfig = loadConfig({
            ...Deno.env.toObject(),
            ...env.env,
            LOGPIPE_DATABASE_URL: wrong.toString(),
            LOGPIPE_KAFKA_BROKERS: "127.0.0.1:1",
          });
          // Its own pools (no db given): the login really fails.
          const bad = await startApi(badConfig, { port: 0, siteDir: null });
          try {
            const health = await fetch(`${bad.url}/healthz`);
            const text = await health.text();
            assert.equal(health.status, 503);
            assert.deepEqual(JSON.parse(text), {
              ok: false,
              db: "down",
              reason: "login refused",
            });
            const services = await fetch(`${bad.url}/api/pipeline/services`);
            const body = await services.text();
            assert.equal(services.status, 200);
            for (
              const secret of [
                "127.0.0.1",
                badConfig.postgres.user,
                "password",
                "authentication",
                "os error",
              ]
            ) {
              assert.ok(!text.includes(secret), `/healthz shows "${secret}"`);
              assert.ok(!body.includes(secret), `services show "${secret}"`);
            }
            const checks = JSON.parse(body).services as {
              service: string;
              target: string;
              detail: string;
              up: boolean;
            }[];
            const kafka = checks.find((c) => c.service === "kafka")!;
            assert.deepEqual(
              { target: kafka.target, up: kafka.up, detail: kafka.detail },
              {
                target: "broker 1 of 1",
                up: false,
                detail: "connection refused",
              },
            );
          } finally {
            await bad.shutdown();
          }
        },
      );

      await t.step(
        "a burst a little beyond the slots waits in the queue and is served",
        async () => {
          const statuses = await Promise.all(
            [1, 2, 3, 4].map((n) =>
              fetch(`${api.url}/api/test/sleep?ms=100&n=${n}`).then(async (
                r,
              ) => {
                await r.body?.cancel();
                return r.status;
              })
            ),
          );
          assert.deepEqual(statuses, [200, 200, 200, 200]);
        },
      );

      await t.step(
        "at most maxDbWork computations at once, a short queue; the rest get 429",
        async () => {
          const results = await Promise.all(
            [1, 2, 3, 4, 5, 6].map((n) =>
              fetch(`${api.url}/api/test/sleep?ms=600&n=${n}`).then(async (
                r,
              ) => ({
                status: r.status,
                retryAfter: r.headers.get("retry-after"),
                body: await r.json(),
              }))
            ),
          );
          // Two run (600 ms), two wait 300 ms in the queue and give up,
          // two find the queue full.
          const statuses = results.map((r) => r.status).sort();
          assert.deepEqual(statuses, [200, 200, 429, 429, 429, 429]);
          for (const r of results.filter((r) => r.status === 429)) {
            assert.equal(r.retryAfter, "1");
            assert.match(r.body.error, /busy/);
          }
          // The slots are free again once the work is done.
          const again = await fetch(`${api.url}/api/test/sleep?ms=0&n=7`);
          assert.equal(again.status, 200);
          await again.body?.cancel();
        },
      );

      await t.step(
        "a request gives up at its deadline; /healthz still answers",
        async () => {
          const started = performance.now();
          const slow = fetch(`${api.url}/api/test/sleep?ms=3000&n=8`);
          const health = await fetch(`${api.url}/healthz`);
          assert.equal(health.status, 200);
          await health.body?.cancel();
          const res = await slow;
          const ms = performance.now() - started;
          assert.equal(res.status, 503);
          assert.match((await res.json()).error, /did not answer in time/);
          assert.ok(ms < 2_000, `answered after ${Math.round(ms)} ms`);
        },
      );

      await t.step(
        "identical requests share one computation; a write clears the cache",
        async () => {
          computations = 0;
          const bodies = await Promise.all(
            Array.from(
              { length: 20 },
              () => fetch(`${api.url}/api/test/counted`).then((r) => r.json()),
            ),
          );
          assert.equal(computations, 1);
          assert.ok(bodies.every((b) => b.computations === 1));
          // Within the TTL (0.5 s): still the same result.
          const cached = await (await fetch(`${api.url}/api/test/counted`))
            .json();
          assert.equal(cached.computations, 1);
          const touch = await fetch(`${api.url}/api/test/touch`, {
            method: "POST",
          });
          assert.equal(touch.status, 200);
          await touch.body?.cancel();
          const fresh = await (await fetch(`${api.url}/api/test/counted`))
            .json();
          assert.equal(fresh.computations, 2);
        },
      );

      await t.step(
        "the API's own pools carry a statement_timeout",
        async () => {
          const own = await startApi(env.config, {
            port: 0,
            siteDir: null,
            routes: testRoutes,
          });
          try {
            const res = await fetch(`${own.url}/api/test/statement-timeout`);
            assert.equal((await res.json()).value, "4s");
          } finally {
            await own.shutdown();
          }
        },
      );
    } finally {
      await api.shutdown();
      await pool.end();
      await env.cleanup();
    }
  },
});
