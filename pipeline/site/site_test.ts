/// <reference lib="dom" />
/**
 * The site in a real browser (Debian chromium + playwright-core) against the
 * real API and a real, migrated Postgres with realistic monitoring rows:
 * it builds with no CDN, every page loads with no console error, no failed
 * and no foreign request and draws its charts (screenshots in
 * test-artifacts/site/), live pages update without a reload, the DE filter
 * equals SQL, the CSV equals the table, hostile text stays text.
 */
import assert from "node:assert/strict";
import { loadConfig } from "../config.ts";
import { startApi } from "../api/server.ts";
import { buildSite } from "./build.ts";
import { artifactPath, launchBrowser, openPage } from "../testing/browser.ts";
import { createTestDb } from "../testing/site_db.ts";
import { runTask } from "../testing/env.ts";
import {
  insertEvents,
  insertPipelineState,
  makeEvents,
} from "../testing/site_fixtures.ts";

const XSS = "<img src=x onerror=alert(1)>";
const PAGES = [
  "",
  "realtime",
  "geography",
  "health",
  "behaviour",
  "revenue",
  "search",
  "errors",
  "sales",
  "product",
  "users",
  "how-it-works",
  "alerts",
  "bench",
];
/** Pages fed by the live API: with monitoring rows they must draw charts. */
const LIVE = new Set(["realtime", "geography", "health"]);

Deno.test({
  name:
    "site: builds without CDN; every page loads clean in chromium; live, filters, CSV, text-not-HTML",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const db = await createTestDb("site");
    const out = await Deno.makeTempDir({ prefix: "logpipe-site-dist-" });
    const browser = await launchBrowser();
    let api: Awaited<ReturnType<typeof startApi>> | undefined;
    try {
      const now = new Date();
      await insertEvents(
        db.pool,
        makeEvents(1000, now, 600, 5, {
          999: {
            event_type: "search",
            search_query: XSS,
            level: "INFO",
            geo_country: "DE",
          },
        }),
      );
      await insertPipelineState(db.pool, now);

      await t.step(
        "the site builds (Framework under Deno, loaders, no CDN)",
        async () => {
          const res = await buildSite({
            projectRoot: loadConfig().projectRoot,
            env: db.env,
            outDir: out,
          });
          assert.ok(res.ok, res.output.slice(-3000));
          const html = await Deno.readTextFile(`${out}/realtime.html`);
          assert.doesNotMatch(
            html,
            /cdn\.jsdelivr|fonts\.googleapis|https?:\/\/(?!127\.0\.0\.1)[a-z]/i,
          );
        },
      );

      api = await startApi(db.config, { db: db.pool, port: 0, siteDir: out });
      const origin = api.url;

      for (const name of PAGES) {
        await t.step(`page /${name} loads clean and draws`, async () => {
          const { page, log, close } = await openPage(browser, origin);
          try {
            await page.goto(`${origin}/${name}`, { waitUntil: "networkidle" });
            await page.waitForTimeout(1500);
            await page.screenshot({
              path: await artifactPath(`${name || "index"}.png`),
              fullPage: true,
            });
            assert.deepEqual(
              log.consoleErrors,
              [],
              `console errors on /${name}`,
            );
            assert.deepEqual(
              log.failedRequests,
              [],
              `failed requests on /${name}`,
            );
            assert.deepEqual(
              log.foreignRequests,
              [],
              `requests off the origin on /${name}`,
            );
            assert.ok(await page.locator("h1").count() >= 1);
            // Table rows built with htl must land in their table: a row
            // template with whitespace around <tr> becomes a <span> wrapper
            // and the whole table collapses into inline text.
            assert.equal(
              await page.locator("tbody > :not(tr)").count(),
              0,
              `/${name} has table rows outside their table`,
            );
            if (LIVE.has(name)) {
              const drawn = await page.locator(
                "#observablehq-main svg [aria-label]",
              ).count();
              assert.ok(drawn > 0, `/${name} draws no chart`);
            } else if (
              !["", "how-it-works", "alerts", "bench"].includes(name)
            ) {
              // No marts in the test database: the page must say so.
              assert.ok(
                await page.locator(".no-data").count() > 0,
                `/${name} hides missing data`,
              );
            }
          } finally {
            await close();
          }
        });
      }

      await t.step(
        "real-time: hostile search query is text, no dialog",
        async () => {
          const { page, log, close } = await openPage(browser, origin);
          try {
            await page.goto(`${origin}/realtime`, { waitUntil: "networkidle" });
            const cell = page.locator("table.feed td.search_query", {
              hasText: XSS,
            });
            await cell.first().waitFor({ timeout: 10_000 });
            assert.equal(await cell.first().textContent(), XSS);
            assert.equal(await page.locator("table.feed img").count(), 0);
            await cell.first().click();
            await page.locator(".inspector h3").waitFor();
            assert.ok(
              (await page.locator(".inspector").textContent())!.includes(XSS),
            );
            assert.equal(await page.locator(".inspector img").count(), 0);
            await page.screenshot({
              path: await artifactPath("realtime-inspect.png"),
              fullPage: true,
            });
            assert.deepEqual(log.dialogs, []);
          } finally {
            await close();
          }
        },
      );

      await t.step(
        "real-time: country = DE equals SQL; CSV equals the feed row for row",
        async () => {
          const { page, close } = await openPage(browser, origin);
          try {
            await page.goto(`${origin}/realtime`, { waitUntil: "networkidle" });
            await page.locator(".filter-bar select").nth(2).selectOption({
              label: "DE · Germany",
            });
            const sql = await db.pool.query(
              `select sum(events)::int as n from monitoring.event_counts
              where geo_country = 'DE' and bucket > now() - interval '15 minutes'`,
            );
            const expected = sql.rows[0].n.toLocaleString("en-US");
            await page.locator('[data-kpi="events"] .big', {
              hasText: new RegExp(`^${expected}$`),
            })
              .waitFor({ timeout: 10_000 });
            await page.waitForFunction(() =>
              [...document.querySelectorAll("table.feed td.geo_country")].every(
                (td) => td.textContent === "DE",
              )
            );
            const rows = await page.locator("table.feed tbody tr").evaluateAll((
              trs,
            ) => trs.map((tr) => tr.getAttribute("data-event-id")));
            const feedSql = await db.pool.query(
              `select event_id from monitoring.recent_events
              where geo_country = 'DE' and event_ts > now() - interval '15 minutes'
              order by event_ts desc, event_id limit 100`,
            );
            assert.deepEqual(
              rows,
              feedSql.rows.map((r: { event_id: string }) => r.event_id),
            );
            const [download] = await Promise.all([
              page.waitForEvent("download"),
              page.locator("button.csv-download").first().click(),
            ]);
            const csv = await Deno.readTextFile((await download.path())!);
            const lines = csv.trim().split("\r\n");
            assert.equal(lines[0].split(",")[0], "event_ts");
            assert.equal(lines.length - 1, rows.length);
            const idCol = lines[0].split(",").indexOf("event_id");
            assert.deepEqual(
              lines.slice(1).map((l) => l.split(",").at(idCol)),
              rows,
            );
            for (const l of lines.slice(1)) assert.ok(l.includes(",DE,"), l);
          } finally {
            await close();
          }
        },
      );

      await t.step(
        "real-time: 1,000 new events change counters and feed within 10 s, no reload",
        async () => {
          const consumer = new Deno.Command(Deno.execPath(), {
            args: ["run", "-A", `${loadConfig().projectRoot}/tasks/consume.ts`],
            env: { ...db.env, LOGPIPE_LOG_LEVEL: "warn" },
            stdout: "null",
            stderr: "null",
          }).spawn();
          // Ready once it has joined the group and reported in.
          const ready = Date.now() + 60_000;
          while (Date.now() < ready) {
            const r = await db.pool.query(
              `select count(*)::int as n from monitoring.components
                where component = 'consumer' and state = 'running'
                  and updated_at > now() - interval '10 seconds'`,
            );
            if (r.rows[0].n > 0) break;
            await new Promise((r) => setTimeout(r, 500));
          }
          const { page, close } = await openPage(browser, origin);
          try {
            await page.goto(`${origin}/realtime`, { waitUntil: "networkidle" });
            const kpi = page.locator('[data-kpi="events"] .big');
            await kpi.filter({ hasText: /\d/ }).waitFor();
            const before = await kpi.textContent();
            const firstBefore = await page.locator("table.feed tbody tr")
              .first().getAttribute("data-event-id");
            await page.evaluate(
              () => ((globalThis as unknown as { marker: number }).marker = 42),
            );
            // 1,000 new events through the real pipeline: the producer sends
            // them to Kafka, the stream consumer (started above) commits them
            // and writes the live metrics the page polls.
            const produced = await runTask(db, "produce.ts", [
              "--count",
              "1000",
              "--rate",
              "5000",
              "--seed",
              "site-live",
              "--quiet",
            ]);
            assert.equal(produced.code, 0, produced.stderr);
            const t0 = Date.now();
            await page.waitForFunction(
              (b) =>
                document.querySelector('[data-kpi="events"] .big')
                  ?.textContent !== b,
              before,
              { timeout: 10_000 },
            );
            await page.waitForFunction(
              (f) =>
                document.querySelector("table.feed tbody tr")?.getAttribute(
                  "data-event-id",
                ) !== f,
              firstBefore,
              { timeout: 10_000 - (Date.now() - t0) },
            );
            assert.ok(Date.now() - t0 <= 10_000);
            assert.equal(
              await page.evaluate(() =>
                (globalThis as unknown as { marker: number }).marker
              ),
              42,
            );
          } finally {
            await close();
            consumer.kill("SIGTERM");
            await consumer.status;
          }
        },
      );
    } finally {
      await api?.shutdown();
      await browser.close();
      await Deno.remove(out, { recursive: true }).catch(() => {});
      await db.cleanup();
    }
  },
});
