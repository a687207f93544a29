/**
 * The API against a real, migrated Postgres with realistic monitoring/ops
 * rows: numbers equal SQL, bad parameters are 400, unknown paths 404,
 * nothing writes.
 */
import assert from "node:assert/strict";
import { startApi } from "./server.ts";
import { ROUTES } from "./routes.ts";
import { createTestDb } from "../testing/site_db.ts";
import {
  insertEvents,
  insertPipelineState,
  makeEvents,
} from "../testing/site_fixtures.ts";

Deno.test({
  name: "API: validated read-only endpoints over monitoring and ops",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const t = await createTestDb("api");
    try {
      const now = new Date();
      await insertEvents(t.pool, makeEvents(1000, now, 900, 3));
      await insertPipelineState(t.pool, now);
      const api = await startApi(t.config, {
        db: t.pool,
        port: 0,
        siteDir: null,
        services: () => Promise.resolve([]),
      });
      const get = async (path: string) => {
        const res = await fetch(`${api.url}${path}`);
        return { status: res.status, body: await res.json() };
      };
      try {
        // Every endpoint answers 200 with an "as of" time.
        for (const r of ROUTES) {
          const path = r.path.replace(":id", "evt-3-000010");
          const { status, body } = await get(path);
          assert.equal(status, 200, `${path}: ${JSON.stringify(body)}`);
          assert.ok(body.asOf, path);
        }

        // country=DE: exactly what SQL over monitoring.event_counts gives.
        const { body: de } = await get(
          "/api/events/stats?window=1h&country=DE",
        );
        const sql = await t.pool.query(
          `select sum(events)::float8 as events,
                  coalesce(sum(events) filter (where level = 'ERROR'), 0)::float8 as errors,
                  sum(orders)::float8 as orders, sum(revenue)::float8 as revenue
             from monitoring.event_counts
            where geo_country = 'DE' and bucket > now() - interval '1 hour'`,
        );
        assert.ok(sql.rows[0].events > 0);
        assert.equal(de.totals.events, sql.rows[0].events);
        assert.equal(de.totals.errors, sql.rows[0].errors);
        assert.equal(de.totals.orders, sql.rows[0].orders);
        assert.equal(de.totals.revenue, sql.rows[0].revenue);
        assert.deepEqual(
          de.byCountry.map((c: { geo_country: string }) => c.geo_country),
          ["DE"],
        );
        const { body: all } = await get("/api/events/stats?window=1h");
        assert.equal(all.totals.events, 1000);

        // The feed honours filters and bounds.
        const { body: feed } = await get(
          "/api/events/recent?country=DE&level=ERROR&limit=5",
        );
        assert.ok(feed.events.length > 0 && feed.events.length <= 5);
        for (const e of feed.events) {
          assert.equal(e.geo_country, "DE");
          assert.equal(e.level, "ERROR");
        }
        assert.equal((await get("/api/events/nope-nope")).status, 404);

        // Every endpoint rejects bad parameters with 400 and a message.
        for (const r of ROUTES) {
          const path = r.path.replace(":id", "evt-3-000010");
          const res = await get(`${path}?bogus=1`);
          assert.equal(res.status, 400, path);
          assert.match(res.body.error, /unknown parameter "bogus"/);
          for (const [name] of Object.entries(r.params)) {
            const bad = await get(`${path}?${name}=%00%27;drop`);
            assert.equal(bad.status, 400, `${path}?${name}`);
            assert.match(bad.body.error, new RegExp(`"${name}"`));
          }
        }
        assert.equal((await get("/api/events/bad%20id!")).status, 400);
        assert.equal((await get("/api/nothing/here")).status, 404);

        // Nothing writes: POST/PUT/DELETE are refused; row counts unchanged.
        const counts = async () =>
          (await t.pool.query(
            `select (select count(*) from monitoring.recent_events) +
                    (select count(*) from monitoring.event_counts) +
                    (select count(*) from ops.dag_runs) as n`,
          )).rows[0].n;
        const before = await counts();
        for (const method of ["POST", "PUT", "DELETE", "PATCH"]) {
          const res = await fetch(`${api.url}/api/events/stats`, { method });
          assert.equal(res.status, 405, method);
          await res.body?.cancel();
        }
        assert.equal(await counts(), before);
        const health = await get("/healthz");
        assert.deepEqual(health, { status: 200, body: { ok: true, db: "up" } });
      } finally {
        await api.shutdown();
      }
    } finally {
      await t.cleanup();
    }
  },
});
