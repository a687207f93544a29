/**
 * `deno task produce`: generate e-commerce events and send them to Kafka
 * (or write them as NDJSON with --out). See pipeline/producer/producer.ts.
 */
import {
  intFlag,
  numberFlag,
  parseCli,
  runMain,
  timeFlag,
  UsageError,
} from "../pipeline/cli.ts";
import { loadConfig } from "../pipeline/config.ts";
import { ensureTopic } from "../pipeline/clients/kafka.ts";
import {
  DEFAULT_BATCH_SIZE,
  formatSummary,
  produce,
  type Progress,
} from "../pipeline/producer/producer.ts";

const USAGE = `
Usage: deno task produce [options]

Generates a seeded, coherent e-commerce event stream (schema v1) and sends it
to the Kafka topic ($LOGPIPE_TOPIC, default LogEvents): key = session_id,
header schema_version, acks=all, idempotent, gzip, batched.

Options:
  --count N            stop after N records (bad ones included)
  --rate R             records per second, held steady (default: as fast as
                       possible with --count/--duration, else 100/s)
  --duration D         stop after D (e.g. 90, 90s, 15m, 2h)
  --seed S             generator seed (default: random, printed in the summary)
  --start-time T       event time of the first event, ISO-8601 (default: now;
                       with --count and no --rate: a backfill ending now,
                       the event clock then runs at 1,000 events/s)
  --bad-rate P         share 0..1 of injected bad records, every kind in turn
                       (invalid UTF-8/JSON, missing fields, wrong types, 2 MB
                       payload, year 3000, HTML/SQL text, ...; default 0)
  --event-rate R       events per second of EVENT time (default: --rate,
                       else 1,000); e.g. --count 60000 --event-rate 0.1
                       spreads 60,000 events over a week of event time
  --daily-rhythm       vary the event-time rate by hour of day
  --out FILE|-         write NDJSON to FILE or stdout instead of Kafka
  --batch-size N       most records per Kafka request (default ${DEFAULT_BATCH_SIZE})
  --delivery-timeout D give up after D of failed sends (default 120s); the
                       exit code is then 1 and the summary counts the loss
  --summary-json FILE  also write the summary as JSON to FILE
  --parallel           generate and gzip in worker threads (faster when a
                       core is free; ~100 MB more memory)
  --quiet              no progress lines
  -h, --help           this help

Without --count and --duration it runs until Ctrl-C. Ctrl-C (or SIGTERM)
stops generating, flushes what was generated, prints the summary, exits 0;
a second Ctrl-C stops retrying. Exit 1 if records could not be delivered.
`;

/** Parses 90, 90s, 15m, 2h, 1500ms into milliseconds. */
export function parseDuration(name: string, value: string | undefined) {
  if (value === undefined) return undefined;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
  if (!m) {
    throw new UsageError(
      `--${name} must be a duration like 90, 90s, 15m or 2h, got "${value}"`,
    );
  }
  const ms = Number(m[1]) *
    { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? "s"]!;
  if (ms <= 0 || ms > 365 * 86_400_000) {
    throw new UsageError(`--${name} must be > 0 and at most a year`);
  }
  return ms;
}

if (import.meta.main) {
  runMain(async () => {
    const { values } = parseCli(Deno.args, {
      count: { type: "string" },
      rate: { type: "string" },
      duration: { type: "string" },
      seed: { type: "string" },
      "start-time": { type: "string" },
      "bad-rate": { type: "string" },
      "daily-rhythm": { type: "boolean" },
      "event-rate": { type: "string" },
      out: { type: "string" },
      "batch-size": { type: "string" },
      "delivery-timeout": { type: "string" },
      "summary-json": { type: "string" },
      parallel: { type: "boolean" },
      quiet: { type: "boolean" },
    }, USAGE);
    const count = values.count === undefined
      ? undefined
      : intFlag("count", values.count, 0, 1, 1e12);
    const durationMs = parseDuration("duration", values.duration);
    let rate = values.rate === undefined
      ? undefined
      : numberFlag("rate", values.rate, 0, 0.001, 10_000_000);
    if (rate === undefined && count === undefined && durationMs === undefined) {
      rate = 100; // an endless stream: a steady demo rate, not a flood
    }
    const badRate = numberFlag("bad-rate", values["bad-rate"], 0, 0, 1);
    // Without --rate the event clock runs at 1000 events/s (or --event-rate),
    // faster than the wall clock; a --count run then defaults to a backfill
    // that ENDS now, so no event lies in the future.
    const eventRateFlag = values["event-rate"] === undefined
      ? undefined
      : numberFlag("event-rate", values["event-rate"], 0, 0.0001, 10_000_000);
    const eventRate = eventRateFlag ?? rate ?? 1000;
    const startTime = timeFlag("start-time", values["start-time"])?.getTime() ??
      ((rate === undefined || eventRateFlag !== undefined) &&
          count !== undefined
        ? Date.now() - Math.ceil((count / eventRate) * 1000)
        : Date.now());
    const seed = values.seed ??
      crypto.getRandomValues(new Uint32Array(1))[0].toString(16);
    if (seed.length === 0 || seed.length > 200) {
      throw new UsageError("--seed must be 1..200 characters");
    }
    const batchSize = intFlag(
      "batch-size",
      values["batch-size"],
      DEFAULT_BATCH_SIZE,
      1,
      100_000,
    );
    const deliveryTimeoutMs = parseDuration(
      "delivery-timeout",
      values["delivery-timeout"],
    ) ?? 120_000;
    if (values.out !== undefined && values.out.trim() === "") {
      throw new UsageError("--out needs a file name or -");
    }
    const config = loadConfig();

    const stop = new AbortController();
    const abort = new AbortController();
    let signals = 0;
    const onSignal = () => {
      signals++;
      if (signals === 1) {
        console.error(
          "produce: stopping; flushing what was generated (Ctrl-C again to stop retrying)",
        );
        stop.abort();
      } else if (signals === 2) {
        abort.abort();
      } else {
        Deno.exit(130);
      }
    };
    Deno.addSignalListener("SIGINT", onSignal);
    Deno.addSignalListener("SIGTERM", onSignal);

    if (values.out === undefined) {
      // Create the topic with the configured partitions if it is missing;
      // the producer itself never auto-creates topics.
      await ensureTopic(config).catch((err) => {
        console.error(
          `produce: could not check/create topic: ${err.message ?? err}`,
        );
      });
    }
    const n = (x: number) => x.toLocaleString("en-US");
    const summary = await produce({
      config,
      seed,
      startTime,
      count,
      rate,
      eventRate,
      durationMs,
      badRate,
      dailyRhythm: values["daily-rhythm"] ?? false,
      out: values.out,
      batchSize,
      deliveryTimeoutMs,
      parallel: values.parallel ?? false,
      stop: stop.signal,
      abort: abort.signal,
      onProgress: values.quiet ? undefined : (p: Progress) =>
        console.error(
          `produce: ${n(p.sent)} sent · ${n(p.rate)}/s · ${
            n(p.generated - p.sent)
          } pending · ${n(p.retries)} retries · ${n(p.bad)} bad${
            p.lastError ? ` · Kafka unavailable: ${p.lastError}` : ""
          }`,
        ),
    });
    console.error(formatSummary(summary));
    if (values["summary-json"]) {
      await Deno.writeTextFile(
        values["summary-json"],
        JSON.stringify(summary, null, 2) + "\n",
      );
    }
    return summary.undelivered > 0 || summary.error ? 1 : 0;
  });
}
