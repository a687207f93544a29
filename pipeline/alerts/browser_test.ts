/// <reference lib="dom" />
/**
 * The Alerts page in a real browser (Debian chromium + playwright-core)
 * against the real API and a real, migrated Postgres: a rule edited through
 * the page's form takes effect at the next evaluation (it fires, the webhook
 * receiver gets the message, the page and the health page show it firing);
 * an invalid edit shows the API's 400 reason naming the field; rule names
 * stay text. Monitoring rows are written the way the consumer writes them.
 */
import assert from "node:assert/strict";
import { loadConfig } from "../config.ts";
import { createPool } from "../clients/postgres.ts";
import { createTestEnv } from "../testing/env.ts";
import { startApi } from "../api/server.ts";
import { buildSite } from "../site/build.ts";
import { artifactPath, launchBrowser, openPage } from "../testing/browser.ts";
import { startWebhookReceiver } from "../notify/receivers.ts";
import { AlertEvaluator } from "./evaluator.ts";
import { validateRule } from "./rules.ts";
import * as store from "./store.ts";

const XSS = "<img src=x onerror=alert(1)>";

Deno.test({
  name:
    "alerts page: an edit through the site takes effect at the next evaluation",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const env = await createTestEnv("alerts_browser", { noTopic: true });
    const hook = startWebhookReceiver();
    const config = loadConfig({
      ...Deno.env.toObject(),
      ...env.env,
      LOGPIPE_SLACK_WEBHOOK_URL: hook.url,
    });
    const pool = createPool(config, { max: 3 });
    const out = await Deno.makeTempDir({ prefix: "logpipe-alerts-site-" });
    const browser = await launchBrowser();
    const evaluator = new AlertEvaluator(config, {
      seedDefaults: false,
      lag: () => Promise.resolve(null),
    });
    let api: Awaited<ReturnType<typeof startApi>> | undefined;
    try {
      const build = await buildSite({
        projectRoot: config.projectRoot,
        env: env.env,
        outDir: out,
      });
      assert.ok(build.ok, build.output.slice(-3000));
      await store.insertRule(
        pool,
        validateRule({
          id: "site-errors",
          name: `Site errors ${XSS}`,
          metric: "error_rate",
          window_secs: 60,
          comparison: ">",
          threshold: 50,
          min_events: 10,
          channels: ["slack"],
          cooldown_secs: 0,
        }),
      );
      // 30 % errors over the last minute.
      await pool.query(
        `insert into monitoring.event_counts (bucket, event_type, geo_country, device_type, level, events)
         select date_bin('10 seconds', now() - make_interval(secs => s), timestamptz 'epoch'),
                t, 'DE', 'mobile', l, n
           from generate_series(10, 70, 10) as s,
                (values ('search', 'INFO', 70), ('error', 'ERROR', 30)) as v(t, l, n)`,
      );
      assert.equal((await evaluator.tick()).firing, 0);

      api = await startApi(config, {
        db: pool,
        port: 0,
        siteDir: out,
      });
      const { page, log, close } = await openPage(browser, api.url);
      try {
        await page.goto(`${api.url}/alerts`);
        const row = page.locator(
          'table.alert-rules tr[data-rule="site-errors"]',
        );
        await row.waitFor({ timeout: 20_000 });
        // The hostile name is shown as text, not as an element.
        assert.ok((await row.textContent())!.includes(XSS));
        assert.equal(await page.locator("table.alert-rules img").count(), 0);
        assert.equal(
          await page.locator('[data-testid="no-firing"]').count(),
          1,
        );

        // An invalid edit: the API's reason, naming the field, is shown.
        await row.locator("button.edit").click();
        const form = page.locator('form.rule-form[data-mode="edit"]');
        await form.waitFor();
        await form.locator('input[name="window_secs"]').fill("-5");
        await form.locator('button[type="submit"]').click();
        await page.locator(".form-status.error", {
          hasText: 'field "window_secs"',
        })
          .waitFor({ timeout: 10_000 });

        // A valid edit: threshold 50 → 20.
        await form.locator('input[name="window_secs"]').fill("60");
        await form.locator('input[name="threshold"]').fill("20");
        await form.locator('button[type="submit"]').click();
        await page.locator(".form-status.ok").waitFor({ timeout: 10_000 });
        const stored = await store.getRule(pool, "site-errors");
        assert.equal(stored?.threshold, 20);
        assert.equal(stored?.version, 2);

        // The next evaluation uses the edited rule.
        const tick = await evaluator.tick();
        assert.equal(tick.firing, 1);
        const msg = await hook.waitFor(
          (m) => m.body.logpipe?.ruleId === "site-errors",
          5000,
        );
        assert.equal(msg.body.logpipe!.threshold, 20);
        assert.ok(Math.abs((msg.body.logpipe!.value as number) - 30) < 0.01);

        // The page shows it firing (polls every 3 s), and so does health.
        await page.locator('.alert-firing[data-rule="site-errors"]').waitFor({
          timeout: 15_000,
        });
        await page.screenshot({
          path: await artifactPath("alerts.png"),
          fullPage: true,
        });
        await page.goto(`${api.url}/health`);
        await page.locator(
          '[data-section="alerts"] .alert-firing[data-rule="site-errors"]',
        )
          .waitFor({ timeout: 15_000 });

        // Disable through the page → resolved at the next evaluation.
        await page.goto(`${api.url}/alerts`);
        await page.locator('tr[data-rule="site-errors"] button.toggle').click();
        await waitFor(async () =>
          (await store.getRule(pool, "site-errors"))?.enabled === false
        );
        await evaluator.tick();
        await hook.waitFor(
          (m) => m.body.logpipe?.kind === "alert_resolved",
          5000,
        );

        // The deliberate 400 is logged by the browser as a failed resource;
        // so is a 429, the API's designed answer when it is busy (the page
        // keeps its data and polls again): on a loaded machine the live
        // polls meet it. Anything else (a CSP violation, a script error)
        // fails the test.
        assert.deepEqual(
          log.consoleErrors.filter((e) => !/status of (400|429)\b/.test(e)),
          [],
        );
        assert.deepEqual(log.foreignRequests, []);
        assert.deepEqual(
          log.failedRequests.filter((r) =>
            !r.includes("/api/alerts/rules/") && !/: HTTP 429$/.test(r)
          ),
          [],
          "only the deliberate 400 (and a busy 429 of a poll) may fail",
        );
        assert.deepEqual(log.dialogs, []);
      } finally {
        await close();
      }
    } finally {
      await api?.shutdown();
      await evaluator.close();
      await browser.close();
      await pool.end();
      await hook.close();
      await Deno.remove(out, { recursive: true }).catch(() => {});
      await env.cleanup();
    }
  },
});

async function waitFor(fn: () => Promise<boolean>, timeoutMs = 10_000) {
  const end = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 100));
  }
}
