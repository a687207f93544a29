/// <reference lib="dom" />
/**
 * The Content-Security-Policy in a real browser (chromium), served by the
 * real API: a page's own inline scripts run (their hashes are listed), but
 * script injected at run time (an `onerror` attribute, a new inline
 * <script>) does not. The site test loads every built Framework page under
 * the same policy with no console error.
 */
import assert from "node:assert/strict";
import { loadConfig } from "../config.ts";
import { createPool } from "../clients/postgres.ts";
import { startApi } from "../api/server.ts";
import { launchBrowser, openPage } from "../testing/browser.ts";

const PAGE = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>csp</title>
<script type="module">
window.ownScriptRan = true;
const main = document.querySelector("main");
// What an HTML-injection bug would let an event's text do:
main.innerHTML += '<img src="/nothing.png" onerror="window.injectedHandlerRan = true">';
const s = document.createElement("script");
s.textContent = "window.injectedScriptRan = true";
document.head.append(s);
</script>
</head><body><main></main></body></html>
`;

Deno.test({
  name:
    "CSP: the page's own inline script runs, injected handlers and scripts do not",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const site = await Deno.makeTempDir({ prefix: "logpipe-csp-" });
    await Deno.writeTextFile(`${site}/index.html`, PAGE);
    const config = loadConfig();
    const pool = createPool(config, { max: 1 });
    const api = await startApi(config, { db: pool, port: 0, siteDir: site });
    const browser = await launchBrowser();
    try {
      const { page, log, close } = await openPage(browser, api.url);
      try {
        await page.goto(`${api.url}/`, { waitUntil: "networkidle" });
        await page.waitForTimeout(300);
        const ran = await page.evaluate(() => {
          const w = window as unknown as Record<string, unknown>;
          return {
            own: w.ownScriptRan === true,
            handler: w.injectedHandlerRan === true,
            script: w.injectedScriptRan === true,
          };
        });
        assert.deepEqual(ran, { own: true, handler: false, script: false });
        // The browser says why: two CSP refusals, nothing else.
        assert.ok(
          log.consoleErrors.some((e) => /Content Security Policy/i.test(e)),
          log.consoleErrors.join("\n"),
        );
      } finally {
        await close();
      }
    } finally {
      await browser.close();
      await api.shutdown();
      await pool.end();
      await Deno.remove(site, { recursive: true });
    }
  },
});
