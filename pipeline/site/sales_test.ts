// The Sales page shows what the marts hold: a real pipeline (produce →
// consume → batch with dbt) in an isolated environment, the site built from
// it, the page opened in chromium, its figures compared with SQL.
import assert from "node:assert/strict";
import { createTestEnv, runTask } from "../testing.ts";
import { withConnection } from "../clients/postgres.ts";
import { startApi } from "../api/server.ts";
import { buildSite } from "./build.ts";
import { artifactPath, launchBrowser, openPage } from "./browser.ts";

const num = (text: string) => Number(text.replace(/[^0-9.\-]/g, ""));

Deno.test({
  name: "the Sales page's figures equal SQL on the marts",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const t = await createTestEnv("sales_page", { partitions: 3 });
    const out = await Deno.makeTempDir({ prefix: "logpipe-sales-site-" });
    try {
      for (
        const [file, args] of [
          ["produce.ts", [
            "--count",
            "12000",
            "--seed",
            "sales",
            "--start-time",
            "2026-04-01T08:00:00Z",
            "--quiet",
          ]],
          ["consume.ts", ["--until-caught-up"]],
          ["batch.ts", []],
        ] as const
      ) {
        const r = await runTask(t, file, [...args]);
        assert.equal(
          r.code,
          0,
          `${file}: ${r.stdout}\n${r.stderr.slice(-2000)}`,
        );
      }
      const sql = await withConnection(
        t.config.postgres.url,
        async (c) =>
          (await c.query(
            `select sum(revenue)::numeric(14,2)::text as revenue,
                  sum(orders_completed)::int as completed,
                  sum(orders_placed)::int as placed
             from analytics.mart_daily_sales`,
          )).rows[0],
      );
      assert.ok(sql.completed > 0, "the pipeline produced completed orders");

      const site = await buildSite({
        projectRoot: t.config.projectRoot,
        env: t.env,
        outDir: out,
      });
      assert.ok(site.ok, site.output.slice(-3000));
      const api = await startApi(t.config, { port: 0, siteDir: out });
      const browser = await launchBrowser();
      try {
        const { page, log, close } = await openPage(browser, api.url);
        try {
          await page.goto(`${api.url}/sales`, { waitUntil: "networkidle" });
          const revenue = page.locator('[data-kpi="sales-revenue"] .big');
          await revenue.waitFor({ timeout: 15_000 });
          await page.screenshot({
            path: await artifactPath("sales-from-pipeline.png"),
            fullPage: true,
          });
          assert.equal(
            num(await revenue.innerText()).toFixed(2),
            Number(sql.revenue).toFixed(2),
          );
          const orders = page.locator('[data-kpi="sales-orders"]');
          assert.equal(
            num(await orders.locator(".big").innerText()),
            sql.completed,
          );
          assert.match(
            await orders.innerText(),
            new RegExp(`${sql.placed.toLocaleString("en-US")} placed`),
          );
          assert.deepEqual(log.consoleErrors, []);
          assert.deepEqual(log.failedRequests, []);
        } finally {
          await close();
        }
      } finally {
        await browser.close();
        await api.shutdown();
      }
    } finally {
      await Deno.remove(out, { recursive: true }).catch(() => {});
      await t.cleanup();
    }
  },
});
