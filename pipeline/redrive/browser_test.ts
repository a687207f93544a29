/// <reference lib="dom" />
/**
 * The Dead letters page in a real browser (Debian chromium + playwright-core)
 * against the real API, a real HDFS dead-letter zone and a real, migrated
 * Postgres: newest first, the reason filter, Kafka coordinates, where a
 * redriven one went, and the original bytes as escaped TEXT (a value that is
 * markup creates no element and runs nothing; invisible characters and
 * bytes that are not UTF-8 show as escapes). The dead-letter files are
 * written as the consumer commits them (pipeline/zones).
 */
import assert from "node:assert/strict";
import { createPool } from "../clients/postgres.ts";
import { createWebHdfs } from "../clients/webhdfs.ts";
import { createTestEnv } from "../testing/env.ts";
import { startApi } from "../api/server.ts";
import { buildSite } from "../site/build.ts";
import { artifactPath, launchBrowser, openPage } from "../testing/browser.ts";
import { REJECT_REASONS } from "../events/schema.ts";
import {
  deadLetterPartitionDir,
  deadLetterRecord,
  formatDataFileName,
} from "../zones/mod.ts";

const XSS = "<img src=x onerror=alert(1)>";
const enc = new TextEncoder();

Deno.test({
  name:
    "dead letters page: newest first, reason filter, coordinates, redrive state, bytes as escaped text",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const env = await createTestEnv("dead_letters_site", { noTopic: true });
    const config = env.config;
    const topic = config.kafka.topic;
    const pool = createPool(config, { max: 2 });
    const out = await Deno.makeTempDir({ prefix: "logpipe-dl-site-" });
    const browser = await launchBrowser();
    let api: Awaited<ReturnType<typeof startApi>> | undefined;
    try {
      // Three dead letters, a minute apart (newest: the hostile one).
      const base = Date.now() - 180_000;
      const records = [
        {
          offset: 7,
          reason: "future_timestamp",
          value: enc.encode('{"event_ts":"2099-01-01T00:00:00.000Z"}'),
        },
        {
          offset: 8,
          reason: "invalid_utf8",
          value: new Uint8Array([...enc.encode("caf\u202e"), 0xff, 0x0a]),
        },
        { offset: 9, reason: "invalid_json", value: enc.encode(XSS) },
      ].map((r, i) =>
        deadLetterRecord(
          topic,
          2,
          {
            offset: String(r.offset),
            timestamp: String(base + i * 60_000),
            key: enc.encode(`sess_${i}`),
            value: r.value,
            headers: { schema_version: "1" },
          },
          r.reason,
          `detail of ${r.reason}`,
          "consumer-test",
          new Date(base + i * 60_000),
        )
      );
      const hdfs = createWebHdfs(config);
      for (const r of records) {
        const dir = `${config.hdfs.deadLetterDir}/${
          deadLetterPartitionDir(r.kafka_timestamp!.slice(0, 10))
        }`;
        await hdfs.mkdirs(dir);
        await hdfs.create(
          `${dir}/${
            formatDataFileName({
              topic,
              partition: 2,
              firstOffset: r.offset,
              lastOffset: r.offset,
              extension: "ndjson",
            })
          }`,
          `${JSON.stringify(r)}\n`,
        );
      }
      // The future-dated one was redriven to partition 1, offset 40.
      await pool.query(
        `insert into ops.redriven (dl_topic, dl_partition, dl_offset, reason, state,
                                   run_id, sent_at, topic, partition, "offset")
         values ($1, 2, 7, 'future_timestamp', 'sent', 'redrive-test', now(), $1, 1, 40)`,
        [topic],
      );

      const build = await buildSite({
        projectRoot: config.projectRoot,
        env: env.env,
        outDir: out,
      });
      assert.ok(build.ok, build.output.slice(-3000));
      api = await startApi(config, { db: pool, port: 0, siteDir: out });
      const { page, log, close } = await openPage(browser, api.url);
      try {
        await page.goto(`${api.url}/dead-letters`);
        const rows = page.locator('[data-section="dead-letters"] tbody tr');
        await page.waitForFunction(
          () =>
            document.querySelectorAll('[data-section="dead-letters"] tbody tr')
              .length === 3,
          undefined,
          { timeout: 30_000 },
        );
        const texts = await rows.allTextContents();
        // Newest first.
        assert.match(texts[0], /invalid_json/);
        assert.match(texts[1], /invalid_utf8/);
        assert.match(texts[2], /future_timestamp/);
        // The markup is text: no element, no script, no dialog.
        assert.ok(texts[0].includes(XSS), texts[0]);
        assert.equal(
          await page.locator('[data-section="dead-letters"] img').count(),
          0,
        );
        // Invisible characters and bytes that are not UTF-8 as escapes.
        assert.ok(texts[1].includes("caf\\u{202E}\\xFF\\n"), texts[1]);
        // Kafka coordinates and where the redriven one went.
        assert.ok(texts[2].includes("→ partition 1 offset 40"), texts[2]);
        const header = await page.locator(
          '[data-section="dead-letters"] thead th',
        ).allTextContents();
        const cells = await rows.nth(2).locator("td").allTextContents();
        assert.equal(cells[header.indexOf("partition")], "2");
        assert.equal(cells[header.indexOf("offset")], "7");

        // The reason filter.
        await page.locator("select").first().selectOption({
          label: `future_timestamp: ${REJECT_REASONS.future_timestamp}`,
        });
        await page.waitForFunction(
          () =>
            document.querySelectorAll('[data-section="dead-letters"] tbody tr')
              .length === 1,
          undefined,
          { timeout: 20_000 },
        );
        assert.match(
          await rows.first().textContent() ?? "",
          /future_timestamp/,
        );
        await page.screenshot({
          path: await artifactPath("dead-letters.png"),
          fullPage: true,
        });
        assert.deepEqual(log.dialogs, []);
        assert.deepEqual(log.consoleErrors, []);
        assert.deepEqual(log.failedRequests, []);
        assert.deepEqual(log.foreignRequests, []);
      } finally {
        await close();
      }
    } finally {
      await api?.shutdown();
      await browser.close();
      await pool.end();
      await Deno.remove(out, { recursive: true }).catch(() => {});
      await env.cleanup();
    }
  },
});
