/**
 * `deno task consume`: the stream consumer (Kafka → HDFS raw and dead-letter
 * zones exactly once, live metrics in Postgres). See
 * pipeline/consumer/stream_consumer.ts and pipeline/zones/commit.ts.
 */
import { intFlag, parseCli, runMain, UsageError } from "../pipeline/cli.ts";
import { loadConfig } from "../pipeline/config.ts";
import { ensureTopic } from "../pipeline/clients/kafka.ts";
import { migrate } from "../pipeline/postgres/migrate.ts";
import { logger } from "../pipeline/log.ts";
import { DEFAULT_LIMITS } from "../pipeline/consumer/micro_batch.ts";
import {
  DEFAULT_METRICS_INTERVAL_MS,
  FAIL_PHASES,
  type FailPhase,
  type Failpoint,
  StreamConsumer,
} from "../pipeline/consumer/stream_consumer.ts";

const DURATION_UNITS_MS: Record<string, number> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
};

/** `5m`, `30s`, `500ms`, `1h` → milliseconds (UsageError names the flag). */
function durationFlag(
  name: string,
  value: string | undefined,
  fallback: number,
  minMs: number,
  maxMs: number,
): number {
  if (value === undefined) return fallback;
  const m = /^(\d+)(ms|s|m|h)$/.exec(value.trim());
  if (!m) {
    throw new UsageError(
      `--${name} must be a duration like 500ms, 30s, 5m or 1h, got "${value}"`,
    );
  }
  const ms = Number(m[1]) * DURATION_UNITS_MS[m[2]];
  if (ms < minMs || ms > maxMs) {
    throw new UsageError(
      `--${name} must be between ${formatDuration(minMs)} and ${
        formatDuration(maxMs)
      }, got ${value}`,
    );
  }
  return ms;
}

function formatDuration(ms: number): string {
  for (const unit of ["h", "m", "s"]) {
    const u = DURATION_UNITS_MS[unit];
    if (ms % u === 0) return `${ms / u}${unit}`;
  }
  return `${ms}ms`;
}

const USAGE = `
Usage: deno task consume [options]

Consumes the event topic (LOGPIPE_TOPIC, default LogEvents) in consumer group
LOGPIPE_CONSUMER_GROUP and writes, exactly once, valid events as Parquet to
the HDFS raw zone and rejected records to the dead-letter zone. Live metrics
go to Postgres monitoring.* every few seconds. Ctrl-C / SIGTERM: commit the
open batches and exit 0 (a second signal exits at once, committing nothing
half-way: the next start resumes from what HDFS holds).

Options:
  --until-caught-up         commit everything up to the end offsets seen at
                            start, then exit 0 (tests, benchmarks, backfills)
  --rotate-interval D       commit a partition's open files this long after
                            their first record (e.g. 500ms, 30s, 5m; default
                            ${
  formatDuration(DEFAULT_LIMITS.rotateIntervalMs)
}). Live metrics do not wait for it.
  --max-batch-records N     ... or once they hold N records (default ${DEFAULT_LIMITS.maxRecords})
  --max-batch-mb N          ... or N MB of Kafka bytes (default ${
  DEFAULT_LIMITS.maxBytes / 1024 / 1024
})
  --max-batch-age-ms N      the same as --rotate-interval in milliseconds
  --metrics-interval-ms N   live-metrics write interval (default ${DEFAULT_METRICS_INTERVAL_MS})
  --no-metrics              do not write live metrics to Postgres
  --session-timeout-ms N    Kafka group session timeout (default 30000)
  --reset-to-earliest       when HDFS holds a partition beyond the end of
                            Kafka's log (topic re-created, broker data lost),
                            consume it again from its earliest offset instead
                            of stopping with an error (the range is logged and
                            counted in monitoring.skipped_offsets)
  --json                    print the final summary as JSON on stdout
  --failpoint PHASE:N[:stop]  TESTING ONLY: SIGKILL (or with :stop, SIGSTOP)
                            this process the N-th time PHASE is reached
                            (${FAIL_PHASES.join(", ")})
  -h, --help                this help
`;

function parseFailpoint(v: string | undefined): Failpoint | undefined {
  if (v === undefined) return undefined;
  const m = /^([a-z-]+):(\d+)(?::(kill|stop))?$/.exec(v);
  if (!m || !FAIL_PHASES.includes(m[1] as FailPhase) || Number(m[2]) < 1) {
    throw new UsageError(
      `--failpoint must be PHASE:N[:stop] with PHASE one of ${
        FAIL_PHASES.join(", ")
      }, got "${v}"`,
    );
  }
  return {
    phase: m[1] as FailPhase,
    hit: Number(m[2]),
    action: m[3] === "stop" ? "stop" : "kill",
  };
}

await runMain(async () => {
  const { values } = parseCli(Deno.args, {
    "until-caught-up": { type: "boolean" },
    "max-batch-records": { type: "string" },
    "max-batch-mb": { type: "string" },
    "rotate-interval": { type: "string" },
    "max-batch-age-ms": { type: "string" },
    "metrics-interval-ms": { type: "string" },
    "no-metrics": { type: "boolean" },
    "session-timeout-ms": { type: "string" },
    "reset-to-earliest": { type: "boolean" },
    json: { type: "boolean" },
    failpoint: { type: "string" },
  }, USAGE);
  const limits = {
    maxRecords: intFlag(
      "max-batch-records",
      values["max-batch-records"],
      DEFAULT_LIMITS.maxRecords,
      1,
      10_000_000,
    ),
    maxBytes: intFlag(
      "max-batch-mb",
      values["max-batch-mb"],
      DEFAULT_LIMITS.maxBytes / 1024 / 1024,
      1,
      4096,
    ) *
      1024 * 1024,
    rotateIntervalMs: values["max-batch-age-ms"] !== undefined
      ? intFlag(
        "max-batch-age-ms",
        values["max-batch-age-ms"],
        DEFAULT_LIMITS.rotateIntervalMs,
        10,
        24 * 3_600_000,
      )
      : durationFlag(
        "rotate-interval",
        values["rotate-interval"],
        DEFAULT_LIMITS.rotateIntervalMs,
        10,
        24 * 3_600_000,
      ),
  };
  const metricsIntervalMs = intFlag(
    "metrics-interval-ms",
    values["metrics-interval-ms"],
    DEFAULT_METRICS_INTERVAL_MS,
    200,
    600_000,
  );
  const sessionTimeoutMs = intFlag(
    "session-timeout-ms",
    values["session-timeout-ms"],
    30_000,
    6_000,
    300_000,
  );
  const failpoint = parseFailpoint(values.failpoint);
  const config = loadConfig();

  await ensureTopic(config);
  if (!values["no-metrics"]) {
    // Live metrics are not on the data path: with Postgres down the consumer
    // still runs (the metrics writer keeps retrying), so only warn here.
    await migrate(config).catch((err) =>
      logger("consumer").warn(
        "could not migrate monitoring tables now; continuing",
        {
          error: err,
        },
      )
    );
  }

  const consumer = new StreamConsumer({
    config,
    limits,
    untilCaughtUp: values["until-caught-up"] ?? false,
    metricsIntervalMs,
    sessionTimeoutMs,
    metrics: !values["no-metrics"],
    failpoint,
    resetToEarliest: values["reset-to-earliest"] ?? false,
  });
  let signals = 0;
  const onSignal = () => {
    if (++signals >= 2) {
      console.error(
        "second signal: exiting without committing the open batches",
      );
      Deno.exit(130);
    }
    consumer.stop();
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);

  const summary = await consumer.run();
  if (values.json) {
    console.log(JSON.stringify(summary));
  } else {
    const secs = summary.elapsedMs / 1000;
    console.log(
      `consumed ${summary.recordsIn} records in ${secs.toFixed(1)} s ` +
        `(${Math.round(summary.recordsIn / Math.max(secs, 0.001))}/s): ` +
        `${summary.eventsOut} events to the raw zone, ${summary.deadLetters} dead letters, ` +
        `${summary.filesWritten} files, ${
          (summary.bytesWritten / 1e6).toFixed(1)
        } MB` +
        (summary.caughtUp ? " — caught up" : ""),
    );
  }
  return 0;
});
