/// <reference lib="dom" />
/**
 * Drill-down on the analytics and BI pages, end to end: a real pipeline
 * (produce three days of events → consume → batch with dbt and the export)
 * in an isolated environment, the site built from it, each page opened in
 * chromium, its filters set, and the figures it recomputes in the browser
 * compared with SQL on the marts. Also: a CSV follows the filters, and the
 * Search loader read only the search and purchase partitions of fact_event,
 * and of them only some columns.
 */
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { createTestEnv, runTask } from "../testing/env.ts";
import { withConnection } from "../clients/postgres.ts";
import { createWebHdfs } from "../clients/webhdfs.ts";
import { latestExportDir } from "../zones/exports.ts";
import { startApi } from "../api/server.ts";
import { buildSite } from "./build.ts";
import { artifactPath, launchBrowser, openPage } from "../testing/browser.ts";
import type { ArchiveMeta } from "./loaders.ts";

const money = (x: number | string | null) =>
  Number(x ?? 0).toLocaleString("en-US", {
    minimumFractionDigits: 2,
    maximumFractionDigits: 2,
  });
const int = (x: number | string | null) =>
  Math.round(Number(x ?? 0)).toLocaleString("en-US");

/** The filter bar's inputs (docs/components/drill.js drillFilters). */
interface Filters {
  from?: string;
  to?: string;
  country?: string;
  device?: string;
  category?: string;
  event_type?: string;
}

async function setFilters(page: Page, f: Filters): Promise<void> {
  for (const [key, value] of Object.entries(f)) {
    const field = page.locator(`[data-filter="${key}"]`);
    if (key === "from" || key === "to") {
      await field.locator("input").fill(value);
    } else {
      await field.locator("select").selectOption({
        label: key === "country"
          ? `${value} · ${
            (await field.locator("option", { hasText: `${value} · ` })
              .first().textContent())?.split(" · ")[1]
          }`
          : value,
      });
    }
  }
}

/** Waits until the KPI's big number reads `expected` (10 s), or fails saying what it read. */
async function expectKpi(page: Page, id: string, expected: string) {
  const big = page.locator(`[data-kpi="${id}"] .big`);
  try {
    await page.waitForFunction(
      ([sel, want]) => document.querySelector(sel)?.textContent === want,
      [`[data-kpi="${id}"] .big`, expected] as const,
      { timeout: 10_000 },
    );
  } catch {
    assert.equal(await big.textContent(), expected, `KPI ${id}`);
  }
}

async function kpiNote(page: Page, id: string): Promise<string> {
  return (await page.locator(`[data-kpi="${id}"] .muted`).textContent()) ?? "";
}

Deno.test({
  name:
    "analytics and BI pages: filters recompute in the browser and equal SQL on the marts; CSV follows; loaders read only what they need",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const env = await createTestEnv("drill_pages", { partitions: 3 });
    const out = await Deno.makeTempDir({ prefix: "logpipe-drill-site-" });
    const sql = (q: string, params: unknown[] = []) =>
      withConnection(
        env.config.postgres.url,
        // deno-lint-ignore no-explicit-any
        async (c) => (await c.query(q, params)).rows as any[],
      );
    try {
      // 12,000 events over three days and a bit of event time.
      for (
        const [file, args] of [
          ["produce.ts", [
            "--count",
            "12000",
            "--seed",
            "drill",
            "--start-time",
            "2026-04-01T08:00:00Z",
            "--event-rate",
            "0.05",
            "--quiet",
          ]],
          ["consume.ts", ["--until-caught-up"]],
          ["batch.ts", []],
        ] as const
      ) {
        const r = await runTask(env, file, [...args]);
        assert.equal(
          r.code,
          0,
          `${file}: ${r.stdout}\n${r.stderr.slice(-2000)}`,
        );
      }
      const site = await buildSite({
        projectRoot: env.config.projectRoot,
        env: env.env,
        outDir: out,
      });
      assert.ok(site.ok, site.output.slice(-3000));
      const api = await startApi(env.config, { port: 0, siteDir: out });
      const browser = await launchBrowser();
      const open = async (name: string, ready: string) => {
        const opened = await openPage(browser, api.url);
        await opened.page.goto(`${api.url}/${name}`, {
          waitUntil: "networkidle",
        });
        try {
          await opened.page.locator(`[data-kpi="${ready}"] .big`).waitFor({
            timeout: 30_000,
          });
        } catch (err) {
          await opened.page.screenshot({
            path: await artifactPath(`drill-${name}-not-ready.png`),
            fullPage: true,
          });
          throw new Error(
            `/${name} drew no KPI ${ready}: ${err}; console: ${
              opened.log.consoleErrors.join(" | ")
            }; failed: ${opened.log.failedRequests.join(" | ")}; page: ${
              (await opened.page.locator("#observablehq-main").innerText())
                .slice(0, 1500)
            }`,
          );
        }
        return opened;
      };
      const clean = async (
        name: string,
        opened: Awaited<ReturnType<typeof open>>,
      ) => {
        await opened.page.screenshot({
          path: await artifactPath(`drill-${name}.png`),
          fullPage: true,
        });
        assert.deepEqual(opened.log.consoleErrors, [], `console on /${name}`);
        assert.deepEqual(opened.log.failedRequests, [], `failed on /${name}`);
        assert.deepEqual(opened.log.foreignRequests, [], `foreign /${name}`);
        await opened.close();
      };
      try {
        await t.step(
          "Sales: all, then DE on 2026-04-02..03; CSV follows",
          async () => {
            const o = await open("sales", "sales-revenue");
            const all = (await sql(
              `select sum(revenue)::text as revenue, sum(orders_completed)::int as completed,
                    sum(orders_placed)::int as placed
               from analytics.mart_daily_sales`,
            ))[0];
            assert.ok(
              all.completed > 0,
              "the pipeline produced completed orders",
            );
            await expectKpi(o.page, "sales-revenue", money(all.revenue));
            await expectKpi(o.page, "sales-orders", int(all.completed));
            assert.match(
              await kpiNote(o.page, "sales-orders"),
              new RegExp(`^${int(all.placed)} placed`),
            );
            await setFilters(o.page, {
              from: "2026-04-02",
              to: "2026-04-03",
              country: "DE",
            });
            const de = (await sql(
              `select sum(revenue)::text as revenue, sum(orders_completed)::int as completed
               from analytics.mart_daily_sales
              where geo_country = 'DE' and date_day between '2026-04-02' and '2026-04-03'`,
            ))[0];
            assert.ok(de.completed > 0);
            await expectKpi(o.page, "sales-revenue", money(de.revenue));
            await expectKpi(o.page, "sales-orders", int(de.completed));
            // The by-country table and its CSV follow the filters: one row, DE.
            const table = o.page.locator("figure.data-table", {
              has: o.page.locator("th", { hasText: "aov" }),
            });
            const [download] = await Promise.all([
              o.page.waitForEvent("download"),
              table.locator("button.csv-download").click(),
            ]);
            assert.match(
              download.suggestedFilename(),
              /2026-04-02_2026-04-03_DE/,
            );
            const lines = (await Deno.readTextFile((await download.path())!))
              .trim().split("\r\n");
            assert.deepEqual(lines[0].split(","), [
              "country",
              "revenue",
              "orders_completed",
              "aov",
            ]);
            assert.equal(lines.length, 2, lines.join("\n"));
            const [country, revenue, completed] = lines[1].split(",");
            assert.equal(country, "DE");
            assert.equal(
              Number(revenue).toFixed(2),
              Number(de.revenue).toFixed(2),
            );
            assert.equal(Number(completed), de.completed);
            await clean("sales", o);
          },
        );

        await t.step(
          "Revenue (HDFS export): mobile × Electronics",
          async () => {
            const o = await open("revenue", "revenue-revenue");
            await setFilters(o.page, {
              device: "mobile",
              category: "Electronics",
            });
            const r = (await sql(
              `select coalesce(sum(f.amount) filter (where f.status = 'completed'), 0)::text as revenue,
                    count(distinct f.order_id) filter (where f.status = 'completed')::int as completed,
                    count(distinct f.order_id) filter (where f.status = 'failed')::int as failed
               from analytics.fact_order f join analytics.dim_product p on p.product_sk = f.product_sk
              where f.device_type = 'mobile' and p.category = 'Electronics'`,
            ))[0];
            assert.ok(r.completed > 0);
            await expectKpi(o.page, "revenue-revenue", money(r.revenue));
            await expectKpi(o.page, "revenue-orders", int(r.completed));
            assert.match(
              await kpiNote(o.page, "revenue-failed"),
              new RegExp(`^${int(r.failed)} failed`),
            );
            await clean("revenue", o);
          },
        );

        await t.step(
          "Search (HDFS export): all = mart_search; IN × desktop = fact_event; partial read",
          async () => {
            const o = await open("search", "search-searches");
            const all = (await sql(
              `select sum(searches)::int as searches, sum(zero_result_searches)::int as zero
               from analytics.mart_search`,
            ))[0];
            await expectKpi(o.page, "search-searches", int(all.searches));
            await expectKpi(o.page, "search-zero", int(all.zero));
            await setFilters(o.page, { country: "IN", device: "desktop" });
            const f = (await sql(
              `select count(*)::int as searches, count(*) filter (where results_count = 0)::int as zero
               from analytics.fact_event
              where event_type = 'search' and geo_country = 'IN' and device_type = 'desktop'`,
            ))[0];
            assert.ok(f.searches > 0);
            await expectKpi(o.page, "search-searches", int(f.searches));
            await expectKpi(o.page, "search-zero", int(f.zero));
            await clean("search", o);

            // What the Search loader transferred: two partitions (search,
            // purchase) of fact_event, and less than those files hold.
            const metaFile = [...Deno.readDirSync(`${out}/_file/data/search`)]
              .find((e) => e.name.startsWith("meta."))!.name;
            const meta: ArchiveMeta = JSON.parse(
              await Deno.readTextFile(`${out}/_file/data/search/${metaFile}`),
            );
            const hdfs = createWebHdfs(env.config);
            const dir =
              (await latestExportDir(hdfs, env.config.hdfs.exportsDir))!;
            const factEvent = await hdfs.walk(`${dir}/fact_event`);
            const partitions = new Set(
              factEvent.map((f) => /event_type=([a-z_]+)/.exec(f.path)?.[1]),
            );
            assert.ok(partitions.size >= 7, [...partitions].join(","));
            const wanted = factEvent.filter((f) =>
              /event_type=(search|purchase)\//.test(f.path)
            );
            const wantedBytes = wanted.reduce((a, f) => a + f.length, 0);
            assert.equal(meta.read?.files, wanted.length);
            assert.equal(meta.read?.fileBytes, wantedBytes);
            assert.ok(
              meta.read!.bytesRead < wantedBytes,
              `read ${meta.read!.bytesRead} of ${wantedBytes} bytes`,
            );
            assert.ok(
              wantedBytes < factEvent.reduce((a, f) => a + f.length, 0) / 2,
            );
          },
        );

        await t.step(
          "User behaviour (HDFS export): 2026-04-02 × tablet; event type search",
          async () => {
            const o = await open("behaviour", "behaviour-sessions");
            await setFilters(o.page, {
              from: "2026-04-02",
              to: "2026-04-02",
              device: "tablet",
              event_type: "search",
            });
            const s = (await sql(
              `select count(*)::int as sessions, count(distinct user_id)::int as users,
                    count(*) filter (where funnel_step >= 4)::int as purchased
               from analytics.mart_sessions
              where session_date = '2026-04-02' and device_type = 'tablet'`,
            ))[0];
            const e = (await sql(
              `select sum(events)::int as events from analytics.mart_event_counts
              where date_day = '2026-04-02' and device_type = 'tablet' and event_type = 'search'`,
            ))[0];
            assert.ok(s.sessions > 0 && e.events > 0);
            await expectKpi(o.page, "behaviour-sessions", int(s.sessions));
            assert.equal(
              await kpiNote(o.page, "behaviour-sessions"),
              `${int(s.users)} users`,
            );
            await expectKpi(
              o.page,
              "behaviour-conversion",
              `${(100 * s.purchased / s.sessions).toFixed(1)} %`,
            );
            await expectKpi(o.page, "behaviour-events", int(e.events));
            await clean("behaviour", o);
          },
        );

        await t.step("Errors (HDFS export): US", async () => {
          const o = await open("errors", "errors-errors");
          await setFilters(o.page, { country: "US" });
          const r = (await sql(
            `select (select count(*) from analytics.fact_event
                      where event_type = 'error' and geo_country = 'US')::int as errors,
                    (select sum(events) from analytics.mart_event_counts
                      where geo_country = 'US')::int as events`,
          ))[0];
          assert.ok(r.errors > 0);
          await expectKpi(o.page, "errors-errors", int(r.errors));
          await expectKpi(
            o.page,
            "errors-rate",
            `${(100 * r.errors / r.events).toFixed(1)} %`,
          );
          assert.equal(
            await kpiNote(o.page, "errors-rate"),
            `of ${int(r.events)} events`,
          );
          await clean("errors", o);
        });

        await t.step("Product: GB × Books", async () => {
          const o = await open("product", "product-revenue");
          await setFilters(o.page, { country: "GB", category: "Books" });
          const r = (await sql(
            `select coalesce(sum(f.amount) filter (where f.status = 'completed'), 0)::text as revenue,
                    coalesce(sum(f.quantity) filter (where f.status = 'completed'), 0)::int as units
               from analytics.fact_order f
               join analytics.mart_product_performance p on p.product_id = f.product_id
              where f.geo_country = 'GB' and p.category = 'Books'`,
          ))[0];
          const v = (await sql(
            `select count(*)::int as views, count(distinct e.product_id)::int as viewed
               from analytics.fact_event e
               join analytics.mart_product_performance p on p.product_id = e.product_id
              where e.event_type = 'product_view' and e.geo_country = 'GB' and p.category = 'Books'`,
          ))[0];
          assert.ok(v.views > 0);
          await expectKpi(o.page, "product-revenue", money(r.revenue));
          await expectKpi(o.page, "product-units", int(r.units));
          assert.equal(
            await kpiNote(o.page, "product-revenue"),
            `${int(v.views)} views`,
          );
          assert.equal(
            await kpiNote(o.page, "product-products"),
            `${int(v.viewed)} viewed`,
          );
          await clean("product", o);
        });

        await t.step("Users: mobile", async () => {
          const o = await open("users", "users-active");
          await setFilters(o.page, { device: "mobile" });
          const r = (await sql(
            `select (select count(distinct user_id) from analytics.mart_sessions
                      where device_type = 'mobile')::int as active,
                    (select count(distinct user_id) from analytics.fact_order
                      where device_type = 'mobile' and status = 'completed')::int as buyers`,
          ))[0];
          assert.ok(r.buyers > 0);
          await expectKpi(o.page, "users-active", int(r.active));
          await expectKpi(o.page, "users-buyers", int(r.buyers));
          await clean("users", o);
        });
      } finally {
        await browser.close();
        await api.shutdown();
      }
    } finally {
      await Deno.remove(out, { recursive: true }).catch(() => {});
      await env.cleanup();
    }
  },
});
