/**
 * API latency under the live pages' load: 20 requests/s for 30 s (10 s with
 * --quick) spread over the endpoints the pages poll, against monitoring
 * tables filled by the real producer and consumer. Target: p95 ≤ 50 ms.
 * There is no reference tool for our own API; the row says so.
 */
import { createTestEnv, runTask } from "../testing/env.ts";
import { startApi } from "../api/server.ts";
import { percentile } from "../consumer/metrics.ts";
import { type BenchRow, benchRow } from "./report.ts";
import { delay } from "../async.ts";

const PATHS = [
  "/api/overview",
  "/api/events/stats?window=15m",
  "/api/events/stats?window=15m&country=DE",
  "/api/events/recent?limit=50",
  "/api/events/recent?limit=50&event_type=search&device=mobile",
  "/api/events/cities",
  "/api/pipeline/throughput?window=15m",
  "/api/pipeline/lag",
  "/api/pipeline/dead-letters",
  "/api/batch/runs",
];

export async function benchApi(
  opts: { quick?: boolean; onProgress?: (m: string) => void } = {},
): Promise<BenchRow[]> {
  const say = opts.onProgress ?? (() => {});
  const t = await createTestEnv("bench_api");
  try {
    const events = opts.quick ? 20_000 : 100_000;
    say(`producing ${events} events and consuming them (fills monitoring.*)…`);
    const p = await runTask(t, "produce.ts", [
      "--count",
      String(events),
      "--seed",
      "bench-api",
      "--quiet",
    ]);
    if (p.code !== 0) {
      throw new Error(`produce failed: ${p.stderr.slice(-500)}`);
    }
    const c = await runTask(t, "consume.ts", ["--until-caught-up"]);
    if (c.code !== 0) {
      throw new Error(`consume failed: ${c.stderr.slice(-500)}`);
    }

    const api = await startApi(t.config, { port: 0, siteDir: null });
    try {
      const seconds = opts.quick ? 10 : 30;
      const rate = 20;
      const latencies: number[] = [];
      let failures = 0;
      say(`${rate} requests/s for ${seconds} s…`);
      const inflight: Promise<void>[] = [];
      const t0 = performance.now();
      for (let i = 0; i < seconds * rate; i++) {
        // Open-loop schedule: request i goes out at i / rate seconds, whether
        // or not earlier ones have answered (what polling pages do).
        const due = t0 + (i * 1000) / rate;
        const wait = due - performance.now();
        if (wait > 0) await delay(wait);
        const path = PATHS[i % PATHS.length];
        inflight.push((async () => {
          const s = performance.now();
          const res = await fetch(`${api.url}${path}`).catch(() => undefined);
          if (!res || !res.ok) failures++;
          await res?.body?.cancel().catch(() => {});
          latencies.push(performance.now() - s);
        })());
      }
      await Promise.all(inflight);
      latencies.sort((a, b) => a - b);
      const p50 = percentile(latencies, 50)!;
      const p95 = percentile(latencies, 95)!;
      const p99 = percentile(latencies, 99)!;
      return [
        benchRow({
          name:
            `API latency p95 at ${rate} req/s (${latencies.length} requests, ${PATHS.length} endpoints)`,
          ours: p95,
          unit: "ms",
          target: "p95 ≤ 50 ms",
          pass: p95 <= 50 && failures === 0,
          note: `p50 ${p50.toFixed(1)} ms, p99 ${
            p99.toFixed(1)
          } ms, ${failures} failed; no reference tool`,
        }),
      ];
    } finally {
      await api.shutdown();
    }
  } finally {
    await t.cleanup();
  }
}
