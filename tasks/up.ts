/**
 * `deno task up`: the whole pipeline on one machine. Starts (or connects to)
 * Kafka, HDFS and PostgreSQL, then runs the producer, the stream consumer, the
 * 10-minute batch schedule, the alert evaluator and the API + site, each as a
 * supervised process; prints every URL and a compact live status line.
 * Ctrl-C stops everything it started, in order (producer first, so the
 * consumer can commit what was produced), flushing and committing.
 */
import { intFlag, parseCli, runMain, UsageError } from "../pipeline/cli.ts";
import type { Config } from "../pipeline/config.ts";
import {
  servicesDown,
  servicesStatus,
  servicesUp,
} from "../pipeline/services/manager.ts";
import {
  type ComponentSpec,
  Supervisor,
  type SupervisorEvent,
} from "../pipeline/supervisor.ts";
import { createPool, type Pool } from "../pipeline/clients/postgres.ts";
import {
  readLiveProcessRecord,
  stopProcess,
  writeProcessRecord,
} from "../pipeline/services/process.ts";
import { rotateLogs } from "../pipeline/log.ts";
import { publishSite } from "../pipeline/site/build.ts";
import { CONSUMER_RUNTIME, PRODUCER_RUNTIME } from "../pipeline/runtime.ts";

const USAGE = `
usage: deno task up [options]

Starts Kafka, HDFS and PostgreSQL (or connects to them in external mode), the
producer, the stream consumer, the batch schedule (every 10 minutes, first run
soon after start), the alert evaluator and the API + site. Ctrl-C stops it all.

  --rate N               producer events per second (default 50)
  --seed S               producer seed (default: random per start)
  --no-producer          do not generate events (point logpipe at real traffic)
  --first-batch-after S  seconds until the first batch run (default 60)
  --keep-services        leave Kafka, HDFS and Postgres running on exit
`;

const STOP_ORDER = ["producer", "consumer", "batch", "alerts", "api"];

function say(line = "") {
  console.log(line);
}

function componentSpecs(opts: {
  rate: number;
  seed: string;
  producer: boolean;
  firstBatchAfter: number;
}): ComponentSpec[] {
  const specs: ComponentSpec[] = [
    { name: "api", args: ["tasks/api.ts"], stopGraceSec: 10 },
    {
      name: "consumer",
      args: [...CONSUMER_RUNTIME.denoArgs, "tasks/consume.ts"],
      env: CONSUMER_RUNTIME.env,
      stopGraceSec: 60,
    },
    {
      name: "batch",
      args: [
        "tasks/batch.ts",
        "--schedule",
        "--first-run-after",
        String(opts.firstBatchAfter),
      ],
      stopGraceSec: 60,
    },
  ];
  specs.push({ name: "alerts", args: ["tasks/alerts.ts"], stopGraceSec: 10 });
  if (opts.producer) {
    specs.push({
      name: "producer",
      args: [
        ...PRODUCER_RUNTIME.denoArgs,
        "tasks/produce.ts",
        "--rate",
        String(opts.rate),
        "--seed",
        opts.seed,
      ],
      env: PRODUCER_RUNTIME.env,
      stopGraceSec: 30,
    });
  }
  return specs;
}

function urlTable(config: Config): string[][] {
  const pg = config.postgres;
  // A wildcard bind (docker) is reached on loopback; the API answers only
  // the names on its Host allow-list.
  const apiHost = ["0.0.0.0", "::", "[::]"].includes(config.api.host)
    ? "127.0.0.1"
    : config.api.host;
  return [
    ["Site", `http://${apiHost}:${config.api.port}/`],
    ["API", `http://${apiHost}:${config.api.port}/api`],
    [
      "HDFS UI",
      config.hdfs.external
        ? config.hdfs.webhdfsUrl
        : `${config.hdfs.webhdfsUrl}/`,
    ],
    ["Kafka", config.kafka.brokers.join(",")],
    [
      "Power BI",
      `postgresql://${pg.biUser}@${pg.host}:${pg.port}/${pg.database} (password: ${
        pg.external
          ? "LOGPIPE_BI_PASSWORD"
          : `${config.localDir}/postgres/bi.password`
      })`,
    ],
    ["Logs", `${config.localDir}/logs/`],
  ];
}

/** One compact line: throughput, lag, raw rows, last batch, components. */
async function statusLine(
  pool: Pool,
  config: Config,
  sup: Supervisor,
): Promise<string> {
  const r = await pool.query(
    `select
       (select coalesce(sum(events_out), 0) from monitoring.consumer_stats
         where bucket > now() - interval '1 minute') as events_min,
       (select coalesce(sum(dead_letters), 0) from monitoring.consumer_stats
         where bucket > now() - interval '1 minute') as dead_min,
       (select coalesce(sum(lag_offsets), 0) from monitoring.consumer_lag where topic = $1) as lag,
       (select coalesce(sum(row_count), 0) from raw.load_ledger) as raw_rows,
       (select state || ' at ' || to_char(started_at at time zone 'UTC', 'HH24:MI')
          from ops.dag_runs order by started_at desc limit 1) as last_batch`,
    [config.kafka.topic],
  ).catch(() => undefined);
  const row = r?.rows[0] ?? {};
  const comps = sup.status().map((c) =>
    `${c.name}${c.state === "running" ? "" : `:${c.state}`}${
      c.restarts ? `(↻${c.restarts})` : ""
    }`
  ).join(" ");
  const n = (v: unknown) => Math.round(Number(v ?? 0)).toLocaleString("en-US");
  return `${new Date().toISOString().slice(11, 19)}Z  consumed ${
    n(Number(row.events_min ?? 0) / 60)
  }/s  dead ${n(row.dead_min)}/min  lag ${n(row.lag)}  raw ${
    n(row.raw_rows)
  }  batch ${row.last_batch ?? "not yet"}  [${comps}]`;
}

/**
 * Components run in their own sessions, so if a previous `up` was killed
 * hard they outlive it: stop them before starting new ones. A live previous
 * `up` is an error (two would produce and consume twice).
 */
async function reapOrphans(runFile: string): Promise<void> {
  const recorded = readLiveProcessRecord(runFile);
  if (recorded.up !== undefined && recorded.up !== Deno.pid) {
    throw new UsageError(
      `deno task up is already running (pid ${recorded.up})`,
    );
  }
  const orphans = recorded.children;
  if (orphans.length) {
    say(`stopping ${orphans.length} components left by a previous run…`);
  }
  await Promise.all(orphans.map((pid) => stopProcess(pid, 30_000)));
}

await runMain(async () => {
  const { values } = parseCli(Deno.args, {
    rate: { type: "string" },
    seed: { type: "string" },
    "no-producer": { type: "boolean" },
    "first-batch-after": { type: "string" },
    "keep-services": { type: "boolean" },
  }, USAGE);
  const rate = intFlag("rate", values.rate, 50, 1, 1_000_000);
  const firstBatchAfter = intFlag(
    "first-batch-after",
    values["first-batch-after"],
    60,
    0,
    3600,
  );
  const seed = values.seed ?? String(Math.floor(Math.random() * 2 ** 31));
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(seed)) {
    throw new UsageError(
      `--seed must be letters, digits, "_" or "-", got "${seed}"`,
    );
  }

  const t0 = Date.now();
  say("logpipe: starting services…");
  const before = await servicesStatus();
  const config = await servicesUp({ say: (l) => say(`  ${l}`) });
  const startedServices = before.some((s) => s.mode === "local" && !s.up);
  say(`services healthy in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  // The API serves the built site: build it once now if there is none yet
  // (the BI pages say "no data yet" until the first batch republishes it).
  try {
    Deno.statSync(`${config.projectRoot}/dist/index.html`);
  } catch {
    say("building the site (first start)…");
    const site = await publishSite({ projectRoot: config.projectRoot });
    say(
      site.ok
        ? `  site built in ${(site.ms / 1000).toFixed(1)} s`
        : `  site build failed; see deno task site:build`,
    );
  }

  const runFile = `${config.localDir}/run/up.json`;
  await reapOrphans(runFile);
  const writeRunFile = () => writeProcessRecord(runFile, Deno.pid, sup.pids());
  const sup = new Supervisor(config, (e: SupervisorEvent) => {
    if (e.kind === "started") writeRunFile();
    if (e.kind === "exited") {
      say(
        `\n! ${e.name} exited (${
          e.signal ?? `code ${e.code}`
        }); restarting in ${
          Math.round((e.restartInMs ?? 0) / 1000)
        } s — see ${config.localDir}/logs/${e.name}.log`,
      );
    } else if (e.kind === "started" && e.restart > 0) {
      say(`\n↻ ${e.name} restarted (pid ${e.pid}, restart #${e.restart})`);
    }
  });
  for (
    const spec of componentSpecs({
      rate,
      seed,
      producer: !values["no-producer"],
      firstBatchAfter,
    })
  ) {
    sup.start(spec);
  }

  say("");
  say("logpipe is up:");
  for (const [name, url] of urlTable(config)) say(`  ${name.padEnd(9)} ${url}`);
  say(
    `  ${"Running".padEnd(9)} ${
      sup.status().map((c) => `${c.name} (pid ${c.pid})`).join(", ")
    }`,
  );
  if (!values["no-producer"]) {
    say(`  ${"Producer".padEnd(9)} ${rate} events/s, seed ${seed}`);
  }
  say(
    `  ${
      "Batch".padEnd(9)
    } cron "${config.batch.cron}" (UTC), first run in ${firstBatchAfter} s`,
  );
  say("Ctrl-C stops everything.\n");

  const pool = createPool(config, { max: 1, applicationName: "logpipe-up" });
  const tty = Deno.stdout.isTerminal();
  let lastPrinted = 0;
  let lastRotation = 0;
  const ticker = setInterval(async () => {
    // Every log under logs/ (services and components) stays bounded.
    if (Date.now() - lastRotation > 60_000) {
      lastRotation = Date.now();
      for (const path of rotateLogs(`${config.localDir}/logs`)) {
        say(`\n(rotated ${path})`);
      }
    }
    const line = await statusLine(pool, config, sup);
    if (tty) {
      const enc = new TextEncoder();
      Deno.stdout.writeSync(
        enc.encode(
          `\r\x1b[2K${
            line.slice(0, (Deno.consoleSize?.().columns ?? 200) - 1)
          }`,
        ),
      );
    } else if (Date.now() - lastPrinted > 30_000) {
      lastPrinted = Date.now();
      say(line);
    }
  }, 5_000);

  const { promise: stopSignal, resolve } = Promise.withResolvers<string>();
  Deno.addSignalListener("SIGINT", () => resolve("SIGINT"));
  Deno.addSignalListener("SIGTERM", () => resolve("SIGTERM"));
  const signal = await stopSignal;
  clearInterval(ticker);
  say(`\n${signal}: stopping (${STOP_ORDER.join(" → ")})…`);
  await sup.stopInOrder(STOP_ORDER);
  for (const c of sup.status()) {
    say(
      `  ${c.name.padEnd(9)} stopped${
        c.lastExit ? ` (exit ${c.lastExit.signal ?? c.lastExit.code})` : ""
      }`,
    );
  }
  await pool.end().catch(() => {});
  await Deno.remove(runFile).catch(() => {});
  if (startedServices && !values["keep-services"]) {
    say("stopping services…");
    await servicesDown({ say: (l) => say(`  ${l}`), config });
  } else {
    say(
      `services left running (deno task services down stops them); ports ${config.ports.kafka}, ${config.ports.namenodeHttp}, ${config.ports.postgres}`,
    );
  }
  return 0;
});
