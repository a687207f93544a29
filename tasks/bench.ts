/**
 * `deno task bench`: every benchmark, each beside its reference tool on this
 * machine in this run (Kafka's ProducerPerformance and ConsumerPerformance,
 * psql \copy), printed as one table: ours, reference, ratio, target,
 * pass/short. The results also go to .local/bench/latest.json, which the
 * site's Benchmarks page shows: a partial run (--only) replaces only its own
 * suites' rows there (pipeline/bench/report.ts, mergeBenchReport).
 */
import { parseCli, runMain, UsageError } from "../pipeline/cli.ts";
import { loadConfig } from "../pipeline/config.ts";
import {
  type BenchReport,
  type BenchRow,
  type BenchRun,
  formatBenchTable,
  mergeBenchReport,
  parseBenchReport,
} from "../pipeline/bench/report.ts";
import { requireServices } from "../pipeline/testing/env.ts";
import { parsePeer, type Peer } from "../pipeline/bench/spark_flag.ts";
import {
  SOAK_FLAGS,
  SOAK_USAGE,
  soakMain,
  soakRequested,
} from "../pipeline/bench/soak.ts";

const USAGE = `
usage: deno task bench [--only NAMES] [--quick] [--json FILE] [--peer spark]
       deno task bench --soak [soak options] [--json FILE]

  Runs the benchmark suite against the real local services (started with
  \`deno task services up\`; each benchmark uses its own topic, HDFS root and
  database) and prints one table. Targets are for this 2-core machine.

  --only NAMES   comma-separated subset of: ${"${names}"}
  --quick        smaller inputs (a smoke run; figures are less stable)
  --json FILE    also write this run's rows as JSON to FILE
  (.local/bench/latest.json, the site's Benchmarks page, keeps the rows of
  suites not run this time, with the time they were measured)
  --peer spark   also run a PySpark Structured Streaming job beside the
                 consumer on the same topic (opt-in: installs pyspark and
                 Spark's Kafka connector, ~350 MB, on first use);
                 \`--only spark --peer spark\` runs only that comparison
${SOAK_USAGE}
`;

type Suite = (
  opts: { quick: boolean; say: (m: string) => void },
) => Promise<BenchRow[]>;

/** Text printed after the table (the Spark peer's "for the record"). */
const records: string[] = [];

/** Opt-in comparisons with other systems (`--peer`), run after the suites. */
const PEER_SUITES: Record<Peer, Suite> = {
  spark: async ({ quick, say }) => {
    const { benchSparkPeer } = await import("../pipeline/bench/spark.ts");
    const res = await benchSparkPeer({
      events: quick ? 100_000 : 1_000_000,
      onProgress: say,
    });
    records.push(res.record);
    return res.rows;
  },
};

/** The suites, in run order. Each module lives in pipeline/bench/. */
const SUITES: Record<string, Suite> = {
  validator: async ({ quick }) =>
    (await import("../pipeline/bench/validator.ts")).benchValidator({ quick }),
  producer: async ({ quick, say }) =>
    (await import("../pipeline/bench/producer.ts")).benchProducer({
      quick,
      onProgress: say,
    }),
  consumer: async ({ quick }) =>
    (await import("../pipeline/bench/consumer.ts")).benchConsumer(
      quick ? { events: 200_000, latencySeconds: 15 } : {},
    ),
  batch: async ({ quick, say }) =>
    (await import("../pipeline/bench/batch.ts")).benchBatch({
      loadEvents: quick ? 100_000 : 1_000_000,
      runEvents: quick ? 0 : 1_200_000,
      onProgress: say,
    }),
  dbt: async ({ quick, say }) =>
    (await import("../pipeline/bench/dbt.ts")).benchDbt({
      ...(quick ? { events: 100_000, incrementalEvents: 10_000 } : {}),
    }).then((rows) => {
      say(`${rows.length} rows`);
      return rows;
    }),
  api: async ({ quick, say }) =>
    (await import("../pipeline/bench/api.ts")).benchApi({
      quick,
      onProgress: say,
    }),
  freshness: async ({ quick, say }) =>
    (await import("../pipeline/bench/freshness.ts")).benchFreshness({
      quick,
      onProgress: say,
    }),
};

await runMain(async () => {
  const names = Object.keys(SUITES);
  const { values } = parseCli(Deno.args, {
    only: { type: "string" },
    quick: { type: "boolean" },
    json: { type: "string" },
    peer: { type: "string" },
    ...SOAK_FLAGS,
  }, USAGE.replace("${names}", names.join(", ")));
  const peer = parsePeer(values.peer);
  const only = values.only?.split(",").map((s) => s.trim()).filter(Boolean) ??
    [...names];
  for (const n of only) {
    if (n === peer) continue;
    if ((Object.keys(PEER_SUITES) as string[]).includes(n)) {
      throw new UsageError(
        `--only ${n} needs --peer ${n} (opt-in: it installs ~350 MB)`,
      );
    }
    if (!names.includes(n)) {
      throw new UsageError(
        `--only: unknown benchmark "${n}" (known: ${names.join(", ")})`,
      );
    }
  }
  if (peer && !only.includes(peer)) only.push(peer);
  if (values.json === "") throw new UsageError("--json needs a file name");
  // The soak starts a private instance of its own: no shared services needed.
  if (soakRequested(values)) {
    if (peer) throw new UsageError("--peer does not go with --soak");
    return await soakMain(values, values.json);
  }

  const config = loadConfig();
  await requireServices(config);
  const rows: BenchRun["rows"] = [];
  const started = new Date();
  for (const name of only) {
    const say = (m: string) => console.error(`[bench ${name}] ${m}`);
    say("running…");
    const t0 = performance.now();
    try {
      const suite = name === peer ? PEER_SUITES[peer] : SUITES[name];
      const got = await suite({ quick: !!values.quick, say });
      rows.push(...got.map((r) => ({ ...r, suite: name })));
      say(`done in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      say(`failed: ${msg}`);
      rows.push({
        suite: name,
        name: `${name} (failed)`,
        ours: NaN,
        unit: "",
        target: "runs",
        pass: false,
        note: msg.split("\n")[0].slice(0, 160),
      });
    }
  }
  console.log(
    `\nlogpipe benchmarks, ${started.toISOString()}${
      values.quick ? " (quick)" : ""
    }\n`,
  );
  console.log(formatBenchTable(rows));
  for (const text of records) console.log(`\n${text}`);
  const run: BenchRun = {
    at: started.toISOString(),
    quick: !!values.quick,
    suites: only,
    complete: names.every((n) => only.includes(n)),
    optInSuites: Object.keys(PEER_SUITES),
    rows,
  };
  const latestPath = `${config.localDir}/bench/latest.json`;
  let previous: BenchReport | undefined;
  try {
    previous = parseBenchReport(
      JSON.parse(Deno.readTextFileSync(latestPath)),
    );
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) {
      console.error(`${latestPath} unreadable (${err}): replaced`);
    }
  }
  const latest = mergeBenchReport(previous, run);
  Deno.mkdirSync(`${config.localDir}/bench`, { recursive: true });
  Deno.writeTextFileSync(latestPath, JSON.stringify(latest, null, 2));
  const kept = latest.rows.length - rows.length;
  if (kept > 0) {
    console.log(
      `\n${latestPath}: ${kept} rows of other suites kept from earlier runs`,
    );
  }
  if (values.json) {
    Deno.writeTextFileSync(
      values.json,
      JSON.stringify(mergeBenchReport(undefined, run), null, 2),
    );
  }
  const short = rows.filter((r) => !r.pass);
  console.log(
    `\n${rows.length - short.length} of ${rows.length} targets met${
      short.length ? `; short: ${short.map((r) => r.name).join("; ")}` : ""
    }`,
  );
  // Benchmarks report, they do not fail: a slow machine is not a broken build.
  return 0;
});
