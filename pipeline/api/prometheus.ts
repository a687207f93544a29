/**
 * `GET /metrics`: the live metrics in the Prometheus text exposition format
 * (version 0.0.4), for teams that watch their clusters with Prometheus and
 * Grafana. Everything is read from the tables the pipeline writes
 * (monitoring.*, ops.*), never from a component's memory, so one scrape of
 * the API sees the whole pipeline whichever process counted it.
 *
 * The tables keep counts per time bucket and drop old buckets, so there is
 * no total that only ever grows: rates and sums are gauges over a stated
 * trailing window (the HELP text says which), never counters that would
 * seem to reset when a bucket is dropped. The README lists every metric.
 */
import { REJECT_REASON_LIST } from "../events/schema.ts";
import type { Db } from "./queries.ts";

/** Content type of the text exposition format. */
export const PROMETHEUS_CONTENT_TYPE =
  "text/plain; version=0.0.4; charset=utf-8";

/** Trailing window of the throughput gauges, in seconds. */
export const RATE_WINDOW_SECS = 60;
/** Trailing window of the dead-letter and file gauges, in seconds. */
export const SUM_WINDOW_SECS = 3600;
/** A component silent for longer is down (as on the health page). */
const COMPONENT_STALE_SECS = 30;
/** Batch run states, each a series of logpipe_batch_last_run_state. */
const BATCH_STATES = [
  "running",
  "success",
  "success_with_warnings",
  "failed",
] as const;
/** Alert rule states, each a series of logpipe_alert_state. */
const ALERT_STATES = ["ok", "pending", "firing"] as const;

type Labels = Record<string, string | number>;

/** One metric family: name, type, help and its samples. */
interface Family {
  name: string;
  help: string;
  type: "gauge";
  samples: { labels?: Labels; value: number | null | undefined }[];
}

/** Escapes HELP text: backslash and newline. */
function escapeHelp(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

/** Escapes a label value: backslash, double quote and newline. */
function escapeLabel(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll(
    "\n",
    "\\n",
  );
}

/** A sample value as the format writes it (NaN, +Inf, -Inf spelled so). */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

/**
 * The text of metric families. A sample whose value is null or undefined
 * (no data, e.g. no latency measured in the window) is left out rather than
 * written as 0, which would be a false reading.
 */
export function renderFamilies(families: Family[]): string {
  const out: string[] = [];
  for (const f of families) {
    out.push(`# HELP ${f.name} ${escapeHelp(f.help)}`);
    out.push(`# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples) {
      if (s.value === null || s.value === undefined) continue;
      const labels = Object.entries(s.labels ?? {});
      const text = labels.length
        ? `{${
          labels.map(([k, v]) => `${k}="${escapeLabel(String(v))}"`).join(",")
        }}`
        : "";
      out.push(`${f.name}${text} ${formatValue(Number(s.value))}`);
    }
  }
  return out.join("\n") + "\n";
}

const num = (v: unknown): number | null =>
  v === null || v === undefined ? null : Number(v);

/** Reads the tables and renders every logpipe metric. */
export async function prometheusMetrics(db: Db): Promise<string> {
  const started = performance.now();
  const [stats, latency, lag, dead, batch, lastSuccess, alerts, components] =
    await Promise.all([
      db.query<
        { records_in: number; events_out: number; dead_letters: number }
      >(
        `select coalesce(sum(records_in), 0)::float8 as records_in,
                coalesce(sum(events_out), 0)::float8 as events_out,
                coalesce(sum(dead_letters), 0)::float8 as dead_letters
           from monitoring.consumer_stats
          where bucket > now() - make_interval(secs => $1)`,
        [RATE_WINDOW_SECS],
      ),
      // The newest bucket with latency measured, within the rate window;
      // several consumers: the worst of them, as the health page shows.
      db.query<{ p50: number; p95: number; p99: number }>(
        `select max(latency_p50_ms) as p50, max(latency_p95_ms) as p95,
                max(latency_p99_ms) as p99
           from monitoring.consumer_stats
          where bucket = (select max(bucket) from monitoring.consumer_stats
                           where bucket > now() - make_interval(secs => $1)
                             and latency_p50_ms is not null)`,
        [RATE_WINDOW_SECS],
      ),
      db.query<{
        topic: string;
        kafka_partition: number;
        committed_offset: number;
        end_offset: number;
        lag_offsets: number;
        lag_seconds: number;
      }>(
        `select topic, kafka_partition, committed_offset::float8 as committed_offset,
                end_offset::float8 as end_offset, lag_offsets::float8 as lag_offsets,
                lag_seconds
           from monitoring.consumer_lag order by topic, kafka_partition`,
      ),
      db.query<{ reason: string; records: number }>(
        `select reason, sum(records)::float8 as records
           from monitoring.dead_letter_counts
          where bucket > now() - make_interval(secs => $1)
          group by reason`,
        [SUM_WINDOW_SECS],
      ).then(async (d) => ({
        d,
        files: await db.query<{ files: number; bytes: number }>(
          `select coalesce(sum(files_written), 0)::float8 as files,
                  coalesce(sum(bytes_written), 0)::float8 as bytes
             from monitoring.consumer_stats
            where bucket > now() - make_interval(secs => $1)`,
          [SUM_WINDOW_SECS],
        ),
      })),
      db.query<{
        state: string;
        started: number;
        duration_s: number | null;
        rows_loaded: number;
      }>(
        `select state, extract(epoch from started_at)::float8 as started,
                (case when state = 'running'
                      then extract(epoch from now() - started_at)
                      else duration_ms / 1000.0 end)::float8 as duration_s,
                rows_loaded::float8 as rows_loaded
           from ops.dag_runs order by started_at desc limit 1`,
      ),
      db.query<{ ended: number }>(
        `select extract(epoch from max(ended_at))::float8 as ended
           from ops.dag_runs where state in ('success', 'success_with_warnings')`,
      ),
      db.query<{ id: string; severity: string; state: string }>(
        `select r.id, r.severity, coalesce(s.state, 'ok') as state
           from monitoring.alert_rules r
           left join monitoring.alert_state s on s.rule_id = r.id
          where r.enabled order by r.id`,
      ),
      db.query<{ component: string; up: boolean }>(
        `select component,
                bool_or(updated_at > now() - make_interval(secs => $1)
                        and state not in ('stopped', 'failed')) as up
           from monitoring.components group by component order by component`,
        [COMPONENT_STALE_SECS],
      ),
    ]);
  const s = stats.rows[0];
  const l = latency.rows[0];
  const run = batch.rows[0];
  const deadBy = new Map(dead.d.rows.map((r) => [r.reason, Number(r.records)]));
  // Every known reason is a series (0 when none), plus any other the table
  // holds (a reason added later), so a graph never starts from nothing.
  const reasons = [
    ...new Set<string>([...REJECT_REASON_LIST, ...deadBy.keys()]),
  ].sort();

  const families: Family[] = [
    {
      name: "logpipe_consumer_records_in_per_second",
      help:
        `Records the stream consumer read from Kafka, per second over the last ${RATE_WINDOW_SECS} s (monitoring.consumer_stats).`,
      type: "gauge",
      samples: [{ value: Number(s.records_in) / RATE_WINDOW_SECS }],
    },
    {
      name: "logpipe_consumer_events_out_per_second",
      help:
        `Valid events the stream consumer took in (counted on consumption; they reach the HDFS raw zone at its next file rotation), per second over the last ${RATE_WINDOW_SECS} s.`,
      type: "gauge",
      samples: [{ value: Number(s.events_out) / RATE_WINDOW_SECS }],
    },
    {
      name: "logpipe_consumer_dead_letters_per_second",
      help:
        `Records the stream consumer rejected (counted on consumption, bound for the dead-letter zone), per second over the last ${RATE_WINDOW_SECS} s.`,
      type: "gauge",
      samples: [{ value: Number(s.dead_letters) / RATE_WINDOW_SECS }],
    },
    {
      name: "logpipe_processing_latency_seconds",
      help:
        `Event time to counted in the live metrics, by quantile, of the newest 10-s bucket measured in the last ${RATE_WINDOW_SECS} s (absent when none was).`,
      type: "gauge",
      samples: [
        { labels: { quantile: "0.5" }, value: msToS(l?.p50) },
        { labels: { quantile: "0.95" }, value: msToS(l?.p95) },
        { labels: { quantile: "0.99" }, value: msToS(l?.p99) },
      ],
    },
    {
      name: "logpipe_consumer_lag_offsets",
      help:
        "Records in the partition not yet consumed (end offset minus consumed offset), as the consumer last measured it.",
      type: "gauge",
      samples: lag.rows.map((r) => ({
        labels: { topic: r.topic, partition: r.kafka_partition },
        value: Number(r.lag_offsets),
      })),
    },
    {
      name: "logpipe_consumer_lag_seconds",
      help:
        "Age of the oldest record not yet consumed, in seconds (a lower bound; 0 when caught up).",
      type: "gauge",
      samples: lag.rows.map((r) => ({
        labels: { topic: r.topic, partition: r.kafka_partition },
        value: Number(r.lag_seconds),
      })),
    },
    {
      name: "logpipe_consumer_committed_offset",
      help:
        "Next offset of the partition not yet durable in HDFS (what a restart resumes from).",
      type: "gauge",
      samples: lag.rows.map((r) => ({
        labels: { topic: r.topic, partition: r.kafka_partition },
        value: Number(r.committed_offset),
      })),
    },
    {
      name: "logpipe_kafka_end_offset",
      help: "End offset of the partition, as the consumer last read it.",
      type: "gauge",
      samples: lag.rows.map((r) => ({
        labels: { topic: r.topic, partition: r.kafka_partition },
        value: Number(r.end_offset),
      })),
    },
    {
      name: "logpipe_dead_letters_last_hour",
      help:
        `Records dead-lettered in the last ${SUM_WINDOW_SECS} s, by validation reason (monitoring.dead_letter_counts).`,
      type: "gauge",
      samples: reasons.map((reason) => ({
        labels: { reason },
        value: deadBy.get(reason) ?? 0,
      })),
    },
    {
      name: "logpipe_files_written_last_hour",
      help:
        `Files (Parquet and dead-letter NDJSON) the consumer committed to HDFS in the last ${SUM_WINDOW_SECS} s.`,
      type: "gauge",
      samples: [{ value: Number(dead.files.rows[0].files) }],
    },
    {
      name: "logpipe_bytes_written_last_hour",
      help: `Bytes of those files, in the last ${SUM_WINDOW_SECS} s.`,
      type: "gauge",
      samples: [{ value: Number(dead.files.rows[0].bytes) }],
    },
    {
      name: "logpipe_batch_last_run_state",
      help:
        "State of the newest batch run: 1 for its state, 0 for the others (absent before the first run).",
      type: "gauge",
      samples: run
        ? BATCH_STATES.map((state) => ({
          labels: { state },
          value: run.state === state ? 1 : 0,
        }))
        : [],
    },
    {
      name: "logpipe_batch_last_run_duration_seconds",
      help:
        "Duration of the newest batch run in seconds (while it runs: so far).",
      type: "gauge",
      samples: [{ value: num(run?.duration_s) }],
    },
    {
      name: "logpipe_batch_last_run_start_timestamp_seconds",
      help: "Start of the newest batch run, Unix time.",
      type: "gauge",
      samples: [{ value: num(run?.started) }],
    },
    {
      name: "logpipe_batch_last_run_rows_loaded",
      help: "Rows the newest batch run loaded into raw.events.",
      type: "gauge",
      samples: [{ value: num(run?.rows_loaded) }],
    },
    {
      name: "logpipe_batch_last_success_timestamp_seconds",
      help:
        "End of the newest successful batch run, Unix time (time() minus it: the age of the marts).",
      type: "gauge",
      samples: [{ value: num(lastSuccess.rows[0]?.ended) }],
    },
    {
      name: "logpipe_alert_state",
      help:
        "State of each enabled alert rule: 1 for its state (ok, pending, firing), 0 for the others.",
      type: "gauge",
      samples: alerts.rows.flatMap((a) =>
        ALERT_STATES.map((state) => ({
          labels: { rule: a.id, severity: a.severity, state },
          value: a.state === state ? 1 : 0,
        }))
      ),
    },
    {
      name: "logpipe_alerts_firing",
      help: "Enabled alert rules firing now.",
      type: "gauge",
      samples: [{
        value: alerts.rows.filter((a) => a.state === "firing").length,
      }],
    },
    {
      name: "logpipe_component_up",
      help:
        `1 when a component (consumer, producer, batch, api, ...) sent a heartbeat in the last ${COMPONENT_STALE_SECS} s.`,
      type: "gauge",
      samples: components.rows.map((c) => ({
        labels: { component: c.component },
        value: c.up ? 1 : 0,
      })),
    },
    {
      name: "logpipe_metrics_query_seconds",
      help: "Time the API took to read these metrics from Postgres.",
      type: "gauge",
      samples: [{ value: (performance.now() - started) / 1000 }],
    },
  ];
  return renderFamilies(families);
}

function msToS(ms: number | null | undefined): number | null {
  return ms === null || ms === undefined ? null : Number(ms) / 1000;
}
