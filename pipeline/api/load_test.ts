/**
 * The API under overload, bounded and on loopback only: many concurrent
 * clients, each sending its next request the moment the last one answered,
 * on the heaviest endpoints (7-day aggregates among them) over realistic
 * monitoring volumes; then the same load while Postgres is frozen with
 * SIGSTOP. The API is the real `deno task api` process; Postgres is a
 * throwaway cluster of our own (its own LOGPIPE_HOME and port offset), so
 * the shared one is never stopped.
 *
 * The pages are open before the load starts (every URL answered once: the
 * long-window results exist). Passes when, under load, every answer is 200
 * or 429 and /healthz answers 200; while Postgres is frozen, /healthz
 * answers 503 within HEALTH_ANSWER_MS every time and no request hangs past
 * the API's deadline; after SIGCONT everything answers 200 again. The full
 * run also holds the p99 latency under P99_TARGET_MS (the short run prints
 * it: tests do not assert speed on a machine shared with other work).
 *
 * In the suite: 50 clients for 5 s over a day of data. The full run the
 * issue asks for (200 clients for 60 s over 7 days, 20 s frozen) is opt-in:
 * LOGPIPE_TEST_API_LOAD=full (see README, "Security").
 */
import assert from "node:assert/strict";
import { type Config, loadConfig, setting } from "../config.ts";
import { withConnection } from "../clients/postgres.ts";
import { migrate } from "../postgres/migrate.ts";
import { ensureDirs, startService, stopService } from "../services/manager.ts";
import { bootstrapRoles, postgresPid } from "../services/postgres.ts";
import { childPids, portIsFree } from "../services/process.ts";
import {
  insertEvents,
  insertPipelineState,
  makeEvents,
} from "../testing/site_fixtures.ts";
import { REQUEST_TIMEOUT_MS } from "./server.ts";

const FULL = setting("LOGPIPE_TEST_API_LOAD") === "full";
const CLIENTS = FULL ? 200 : 50;
const LOAD_SECS = FULL ? 60 : 5;
const FROZEN_SECS = FULL ? 20 : 5;
const DAYS = FULL ? 7 : 1;
/** Client processes (one per core of the machine this was sized for). */
const GENERATORS = 2;
/** Countries in the generated counts (7 types × this × 3 devices per minute). */
const COUNTRIES = FULL
  ? ["US", "GB", "DE", "IN", "EG", "FR", "ES", "SA", "BR", "JP"]
  : ["US", "GB", "DE", "FR", "IN"];
/**
 * The p99 promise: a poll answers within half a second even with 200
 * clients hammering without pause on a 2-core machine shared with the
 * pipeline (a live page polls every 3-5 s, so this is far beyond real use).
 */
const P99_TARGET_MS = 500;
/**
 * /healthz's own deadline is 1 s; this leaves room for a machine busy with
 * other work (docker's health check waits 30 s by default).
 */
const HEALTH_ANSWER_MS = 3_000;

const WINDOWS = ["15m", "1h", "6h", "1d", "7d"];
/** The heaviest endpoints, with parameters varied so results differ. */
const URLS = [
  ...WINDOWS.flatMap((w) => [
    `/api/events/stats?window=${w}`,
    ...COUNTRIES.slice(0, 4).map((c) =>
      `/api/events/stats?window=${w}&country=${c}`
    ),
    `/api/events/stats?window=${w}&event_type=error,order_failed&device=mobile`,
    `/api/events/recent?window=${w}&limit=500`,
    `/api/events/cities?window=${w}`,
    `/api/pipeline/throughput?window=${w}`,
    `/api/pipeline/dead-letters?window=${w}`,
  ]),
  "/api/overview",
  "/api/pipeline/stages",
  "/api/batch/runs?limit=100",
];

interface Sample {
  ms: number;
  status: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

function summary(samples: Sample[], secs: number) {
  const ms = samples.map((s) => s.ms).sort((a, b) => a - b);
  const statuses: Record<number, number> = {};
  for (const s of samples) statuses[s.status] = (statuses[s.status] ?? 0) + 1;
  return {
    requests: samples.length,
    perSec: Math.round(samples.length / secs),
    statuses,
    p50: Math.round(percentile(ms, 0.5)),
    p95: Math.round(percentile(ms, 0.95)),
    p99: Math.round(percentile(ms, 0.99)),
    max: Math.round(ms.at(-1) ?? NaN),
  };
}

/**
 * `clients` closed-loop clients on URLS for `secs`, in GENERATORS processes
 * of their own (see load_client.ts).
 */
async function hammer(
  base: string,
  clients: number,
  secs: number,
): Promise<Sample[]> {
  const script = new URL("./load_client.ts", import.meta.url).pathname;
  const outputs = await Promise.all(
    Array.from({ length: GENERATORS }, (_, i) => {
      const share = Math.floor(clients / GENERATORS) +
        (i < clients % GENERATORS ? 1 : 0);
      return new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", script, base, String(share), String(secs), ...URLS],
        stdout: "piped",
        stderr: "inherit",
      }).output();
    }),
  );
  return outputs.flatMap((out) => {
    if (!out.success) throw new Error("a load client failed");
    const samples = JSON.parse(new TextDecoder().decode(out.stdout)) as [
      number,
      number,
    ][];
    return samples.map(([ms, status]) => ({ ms, status }));
  });
}

/** /healthz every 250 ms until `stop` resolves. */
async function probeHealth(
  base: string,
  stop: Promise<void>,
): Promise<(Sample & { body: string })[]> {
  const out: (Sample & { body: string })[] = [];
  let done = false;
  stop.then(() => done = true);
  while (!done) {
    const t0 = performance.now();
    try {
      const res = await fetch(`${base}/healthz`, {
        signal: AbortSignal.timeout(10_000),
      });
      out.push({
        ms: performance.now() - t0,
        status: res.status,
        body: await res.text(),
      });
    } catch {
      out.push({ ms: performance.now() - t0, status: 0, body: "" });
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return out;
}

/** Months of minutes of counts, as the consumer's roll-up leaves them. */
async function seedVolumes(config: Config): Promise<number> {
  return await withConnection(config.postgres.url, async (c) => {
    await c.query(
      `insert into monitoring.event_counts
         (bucket, bucket_secs, event_type, geo_country, device_type, level,
          events, orders, failed_orders, revenue)
       select m, 60, t, country, d, case when t = 'error' then 'ERROR' else 'INFO' end,
              1 + (random() * 40)::int,
              case when t = 'order_complete' then (random() * 5)::int else 0 end,
              case when t = 'order_failed' then (random() * 2)::int else 0 end,
              case when t = 'order_complete' then round((random() * 900)::numeric, 2) else 0 end
         from generate_series(date_trunc('minute', now()) - make_interval(days => $1),
                              date_trunc('minute', now()), interval '1 minute') as m,
              unnest(array['product_view','search','add_to_cart','purchase',
                           'order_complete','order_failed','error']) as t,
              unnest($2::text[]) as country,
              unnest(array['desktop','mobile','tablet']) as d
       on conflict do nothing`,
      [DAYS, COUNTRIES],
    );
    await c.query(
      `insert into monitoring.consumer_stats
         (bucket, consumer_id, records_in, events_out, dead_letters,
          files_written, bytes_written, latency_p50_ms, latency_p95_ms, latency_p99_ms)
       select m, 'load-test', 3000, 2990, 10, 6, 160000, 400, 900, 1400
         from generate_series(now() - make_interval(days => $1), now(),
                              interval '1 minute') as m
       on conflict do nothing`,
      [DAYS],
    );
    await c.query(
      `insert into monitoring.dead_letter_counts (bucket, reason, records)
       select m, r, 1 + (random() * 5)::int
         from generate_series(now() - make_interval(days => $1), now(),
                              interval '1 minute') as m,
              unnest(array['invalid_json','missing_field','out_of_range']) as r
       on conflict do nothing`,
      [DAYS],
    );
    await c.query("analyze");
    const { rows } = await c.query(
      "select count(*)::int as n from monitoring.event_counts",
    );
    return rows[0].n;
  });
}

Deno.test({
  name: `API load: ${CLIENTS} clients for ${LOAD_SECS} s → only 200/429${
    FULL ? `, p99 < ${P99_TARGET_MS} ms` : ""
  }; Postgres frozen → /healthz answers`,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    // A throwaway Postgres of our own, on a free port.
    let offset = 2000 + Math.floor(Math.random() * 4000);
    while (!portIsFree(5433 + offset)) offset++;
    const home = await Deno.makeTempDir({ prefix: "logpipe-load-" });
    const localEnv = {
      LOGPIPE_HOME: home,
      LOGPIPE_PORT_OFFSET: String(offset),
    };
    let config = loadConfig(localEnv);
    let api: Deno.ChildProcess | undefined;
    const frozen: number[] = [];
    /** The full run's missed targets (asserted last). */
    const speedMisses: string[] = [];
    try {
      ensureDirs(config);
      await startService("postgres", config);
      await bootstrapRoles(config);
      config = loadConfig(localEnv); // the generated password
      await migrate(config);
      await withConnection(config.postgres.url, async (c) => {
        await insertEvents(c, makeEvents(1000, new Date(), 900, 7));
        await insertPipelineState(c, new Date());
      });
      const rows = await seedVolumes(config);
      console.log(`seeded ${rows.toLocaleString("en-US")} event_counts rows`);

      // The real API process, as `deno task api` runs it.
      const env = Object.fromEntries(
        Object.entries(Deno.env.toObject()).filter(([k]) =>
          !k.startsWith("LOGPIPE_")
        ),
      );
      api = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          new URL("../../tasks/api.ts", import.meta.url).pathname,
          "--port",
          "0",
          "--no-site",
        ],
        env: { ...env, ...localEnv, LOGPIPE_LOG_LEVEL: "error" },
        clearEnv: true,
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      // Drain stderr so the API never blocks on a full pipe.
      api.stderr.pipeTo(new WritableStream()).catch(() => {});
      const reader = api.stdout.pipeThrough(new TextDecoderStream())
        .getReader();
      let banner = "";
      while (!/API: (http:\/\/\S+)\/api/.test(banner)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`the API exited: ${banner}`);
        banner += value;
      }
      reader.releaseLock();
      api.stdout.cancel().catch(() => {});
      const base = /API: (http:\/\/\S+)\/api/.exec(banner)![1];

      // 0. The pages are open: every URL has answered once.
      const warmUntil = Date.now() + (FULL ? 300_000 : 120_000);
      const cold = new Set(URLS);
      while (cold.size && Date.now() < warmUntil) {
        for (const path of [...cold]) {
          const res = await fetch(`${base}${path}`);
          await res.body?.cancel();
          if (res.status === 200) cold.delete(path);
        }
        if (cold.size) await new Promise((r) => setTimeout(r, 1000));
      }
      assert.deepEqual([...cold], [], "never answered");

      // 1. Load.
      const { promise: loadDone, resolve: endLoad } = Promise.withResolvers<
        void
      >();
      const healthUnderLoad = probeHealth(base, loadDone);
      const load = await hammer(base, CLIENTS, LOAD_SECS);
      endLoad();
      const loaded = summary(load, LOAD_SECS);
      const health1 = summary(await healthUnderLoad, LOAD_SECS);
      console.log("under load:", JSON.stringify(loaded));
      console.log("/healthz under load:", JSON.stringify(health1));
      const unexpected = Object.keys(loaded.statuses).filter((s) =>
        s !== "200" && s !== "429"
      );
      // The full run's targets are checked at the end, so a miss still
      // lets the frozen-Postgres half run and report.
      if (FULL && unexpected.length) {
        speedMisses.push(`answers ${JSON.stringify(loaded.statuses)}`);
      } else assert.deepEqual(unexpected, [], JSON.stringify(loaded.statuses));
      assert.ok((loaded.statuses[200] ?? 0) > 0, "nothing succeeded");
      if (FULL && loaded.p99 >= P99_TARGET_MS) {
        speedMisses.push(`p99 ${loaded.p99} ms ≥ ${P99_TARGET_MS} ms`);
      }
      // /healthz answers throughout (its own connection and deadline); on a
      // machine busy with other work its select 1 may miss that deadline,
      // so only the full run also asks for 200 every time.
      if (FULL && health1.max >= HEALTH_ANSWER_MS) {
        speedMisses.push(`/healthz took ${health1.max} ms under load`);
      }
      if (FULL && Object.keys(health1.statuses).join() !== "200") {
        speedMisses.push(
          `/healthz under load: ${JSON.stringify(health1.statuses)}`,
        );
      }

      // 2. Postgres frozen (the postmaster and every backend), same load.
      const postmaster = postgresPid(config)!;
      frozen.push(postmaster, ...childPids(postmaster));
      for (const pid of frozen) Deno.kill(pid, "SIGSTOP");
      const { promise: freezeDone, resolve: endFreeze } = Promise
        .withResolvers<void>();
      const healthFrozen = probeHealth(base, freezeDone);
      const stuck = await hammer(base, CLIENTS, FROZEN_SECS);
      endFreeze();
      const healthSamples = await healthFrozen;
      const frozenLoad = summary(stuck, FROZEN_SECS);
      const frozenHealth = summary(healthSamples, FROZEN_SECS);
      console.log("Postgres frozen:", JSON.stringify(frozenLoad));
      console.log("/healthz, Postgres frozen:", JSON.stringify(frozenHealth));
      for (const pid of frozen.splice(0)) Deno.kill(pid, "SIGCONT");

      // /healthz: every probe answered in time, saying "down" once the
      // database stopped answering (the first may still be in flight).
      assert.ok(
        frozenHealth.max < HEALTH_ANSWER_MS,
        `/healthz took ${frozenHealth.max} ms`,
      );
      assert.ok((frozenHealth.statuses[503] ?? 0) >= 2, "never said down");
      assert.ok(
        healthSamples.filter((s) => s.status === 503).every((s) =>
          JSON.parse(s.body).db === "down"
        ),
      );
      // No request hung: cached answers (200), busy (429) or the deadline (503).
      const badFrozen = Object.keys(frozenLoad.statuses).filter((s) =>
        !["200", "429", "503"].includes(s)
      );
      assert.deepEqual(badFrozen, [], JSON.stringify(frozenLoad.statuses));
      assert.ok(
        frozenLoad.max < REQUEST_TIMEOUT_MS + HEALTH_ANSWER_MS,
        `a request took ${frozenLoad.max} ms with Postgres frozen`,
      );

      // 3. Thawed: healthy again, every endpoint answers.
      const deadline = Date.now() + 20_000;
      let healthy = false;
      while (!healthy && Date.now() < deadline) {
        const res = await fetch(`${base}/healthz`);
        await res.body?.cancel();
        healthy = res.status === 200;
        if (!healthy) await new Promise((r) => setTimeout(r, 250));
      }
      assert.ok(healthy, "/healthz did not recover after SIGCONT");
      await new Promise((r) => setTimeout(r, 500)); // cached 503s are not kept
      for (const path of URLS) {
        const res = await fetch(`${base}${path}`);
        await res.body?.cancel();
        assert.equal(res.status, 200, path);
      }
      assert.deepEqual(speedMisses, [], "the full run's targets");
    } finally {
      for (const pid of frozen) {
        try {
          Deno.kill(pid, "SIGCONT");
        } catch { /* gone */ }
      }
      if (api) {
        try {
          api.kill("SIGTERM");
        } catch { /* gone */ }
        await api.status;
      }
      await stopService("postgres", config).catch(() => {});
      await Deno.remove(home, { recursive: true }).catch(() => {});
    }
  },
});
