/**
 * `/metrics` scraped from the real API over a real, migrated Postgres with
 * known monitoring and ops rows, and read back with a Prometheus text
 * format parser (npm parse-prometheus-text-format, a port of the Prometheus
 * Python client's parser): every family is declared, every name, label and
 * value is valid, and each value equals what the tables hold.
 */
import assert from "node:assert/strict";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { createTestEnv } from "../testing/env.ts";
import { createPool } from "../clients/postgres.ts";
import { REJECT_REASON_LIST } from "../events/schema.ts";
import { startApi } from "./server.ts";
import {
  formatValue,
  PROMETHEUS_CONTENT_TYPE,
  RATE_WINDOW_SECS,
  renderFamilies,
} from "./prometheus.ts";

interface ParsedFamily {
  name: string;
  help: string;
  type: string;
  metrics: { value?: string; labels?: Record<string, string> }[];
}

/** Parses `text` and checks what the parser itself lets pass. */
function parseStrict(text: string): Map<string, ParsedFamily> {
  const families = parsePrometheusTextFormat(text) as ParsedFamily[];
  const byName = new Map<string, ParsedFamily>();
  for (const f of families) {
    assert.match(f.name, /^[a-zA-Z_:][a-zA-Z0-9_:]*$/, `metric name ${f.name}`);
    assert.ok(!byName.has(f.name), `${f.name} declared twice`);
    assert.ok(f.help.length > 0, `${f.name} has HELP`);
    assert.equal(f.type, "GAUGE", `${f.name} is a gauge`);
    const series = new Set<string>();
    for (const m of f.metrics) {
      assert.ok(m.value !== undefined, `${f.name} sample has a value`);
      assert.ok(
        /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$|^NaN$|^[+-]Inf$/.test(
          m.value!,
        ),
        `${f.name} value ${m.value} is a float`,
      );
      for (const k of Object.keys(m.labels ?? {})) {
        assert.match(k, /^[a-zA-Z_][a-zA-Z0-9_]*$/, `label name ${k}`);
      }
      const key = JSON.stringify(m.labels ?? {});
      assert.ok(!series.has(key), `${f.name}${key} appears twice`);
      series.add(key);
    }
    byName.set(f.name, f);
  }
  return byName;
}

/** The value of `name` for the series whose labels include `labels`. */
function valueOf(
  families: Map<string, ParsedFamily>,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const f = families.get(name);
  assert.ok(f, `${name} is exposed`);
  const m = f.metrics.find((m) =>
    Object.entries(labels).every(([k, v]) => m.labels?.[k] === v)
  );
  return m?.value === undefined ? undefined : Number(m.value);
}

Deno.test("Prometheus text: HELP and label values are escaped, missing values left out, special floats spelled", () => {
  const hostile = 'a "quoted" back\\slash\nand a new line';
  const text = renderFamilies([
    {
      name: "logpipe_test_metric",
      help: `help with ${hostile}`,
      type: "gauge",
      samples: [
        { labels: { reason: hostile }, value: 1.5 },
        { labels: { reason: "nan" }, value: NaN },
        { labels: { reason: "inf" }, value: Infinity },
        { labels: { reason: "none" }, value: null },
      ],
    },
  ]);
  const f = parseStrict(text).get("logpipe_test_metric")!;
  assert.equal(f.help, `help with ${hostile}`);
  assert.deepEqual(f.metrics.map((m) => [m.labels?.reason, m.value]), [
    [hostile, "1.5"],
    ["nan", "NaN"],
    ["inf", "+Inf"],
  ]);
  assert.equal(formatValue(-Infinity), "-Inf");
  // Without the escaping the line would not parse at all.
  assert.throws(() =>
    parsePrometheusTextFormat(
      `# TYPE x gauge\nx{reason="${hostile}"} 1\n`,
    )
  );
});

Deno.test({
  name:
    "GET /metrics: throughput, lag, latency, dead letters by reason, files, batch state and duration, alert states, as the tables hold them",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const t = await createTestEnv("prometheus", { noTopic: true });
    const pool = createPool(t.config, { max: 2 });
    const weird = 'future "reason" \\ with\na new line';
    try {
      await pool.query(
        `insert into monitoring.consumer_stats
           (bucket, consumer_id, records_in, events_out, dead_letters, files_written,
            bytes_written, latency_p50_ms, latency_p95_ms, latency_p99_ms)
         values
           (date_bin('10 seconds', now() - interval '25 seconds', 'epoch'), 'c1', 1200, 1150, 50, 12, 120000, 400, 900, 1500),
           (date_bin('10 seconds', now() - interval '5 seconds', 'epoch'), 'c1', 600, 590, 10, 6, 60000, 300, 800, 1200),
           (date_bin('10 seconds', now() - interval '5 seconds', 'epoch'), 'c2', 300, 300, 0, 3, 30000, 350, 850, 1100),
           (date_bin('10 seconds', now() - interval '30 minutes', 'epoch'), 'c1', 9000, 9000, 0, 90, 900000, 100, 200, 300),
           (date_bin('10 seconds', now() - interval '3 hours', 'epoch'), 'c1', 7, 7, 0, 1000, 1, 1, 1, 1)`,
      );
      await pool.query(
        `insert into monitoring.consumer_lag
           (topic, kafka_partition, committed_offset, consumed_offset, end_offset, lag_offsets, lag_seconds)
         values ('LogEvents', 0, 1000, 1100, 1500, 400, 2.5), ('LogEvents', 1, 2000, 2000, 2000, 0, 0)`,
      );
      await pool.query(
        `insert into monitoring.dead_letter_counts (bucket, reason, records) values
           (now() - interval '1 minute', 'invalid_json', 7),
           (now() - interval '20 minutes', 'invalid_json', 3),
           (now() - interval '2 minutes', $1, 2),
           (now() - interval '2 hours', 'too_large', 99)`,
        [weird],
      );
      await pool.query(
        `insert into ops.dag_runs (run_id, dag_id, trigger, state, started_at, ended_at, duration_ms, rows_loaded)
         values ('r1', 'logpipe', 'schedule', 'success', now() - interval '20 minutes', now() - interval '19 minutes', 61000, 5000),
                ('r2', 'logpipe', 'manual', 'failed', now() - interval '10 minutes', now() - interval '9 minutes', 42500, 10)`,
      );
      await pool.query(
        `insert into monitoring.alert_rules (id, name, metric, window_secs, comparison, threshold, severity)
         values ('lag-high', 'Lag high', 'consumer_lag_seconds', 300, '>', 60, 'critical'),
                ('errors', 'Errors', 'error_rate', 300, '>', 0.05, 'warning'),
                ('never-evaluated', 'New', 'events_per_minute', 300, '<', 1, 'info')`,
      );
      await pool.query(
        `insert into monitoring.alert_state (rule_id, state) values ('lag-high', 'firing'), ('errors', 'pending')`,
      );
      await pool.query(
        `insert into monitoring.components (component, instance_id, state, started_at, updated_at)
         values ('consumer', 'a', 'running', now(), now()),
                ('producer', 'b', 'running', now() - interval '1 hour', now() - interval '5 minutes')`,
      );

      const api = await startApi(t.config, { port: 0, siteDir: null });
      try {
        const res = await fetch(`${api.url}/metrics`);
        assert.equal(res.status, 200);
        assert.equal(res.headers.get("content-type"), PROMETHEUS_CONTENT_TYPE);
        const text = await res.text();
        const m = parseStrict(text);

        const near = (a: number | undefined, b: number, what: string) =>
          assert.ok(
            a !== undefined && Math.abs(a - b) < 1e-9,
            `${what}: ${a} != ${b}`,
          );
        near(
          valueOf(m, "logpipe_consumer_records_in_per_second"),
          (1200 + 600 + 300) / RATE_WINDOW_SECS,
          "records in",
        );
        near(
          valueOf(m, "logpipe_consumer_events_out_per_second"),
          (1150 + 590 + 300) / RATE_WINDOW_SECS,
          "events out",
        );
        near(
          valueOf(m, "logpipe_consumer_dead_letters_per_second"),
          60 / RATE_WINDOW_SECS,
          "dead letters",
        );
        // The newest bucket, worst of its consumers.
        near(
          valueOf(m, "logpipe_processing_latency_seconds", {
            quantile: "0.95",
          }),
          0.85,
          "p95",
        );
        near(
          valueOf(m, "logpipe_processing_latency_seconds", {
            quantile: "0.99",
          }),
          1.2,
          "p99",
        );
        const p0 = { topic: "LogEvents", partition: "0" };
        near(valueOf(m, "logpipe_consumer_lag_offsets", p0), 400, "lag");
        near(valueOf(m, "logpipe_consumer_lag_seconds", p0), 2.5, "lag s");
        near(valueOf(m, "logpipe_consumer_committed_offset", p0), 1000, "co");
        near(valueOf(m, "logpipe_kafka_end_offset", p0), 1500, "end");
        near(
          valueOf(m, "logpipe_consumer_lag_offsets", {
            topic: "LogEvents",
            partition: "1",
          }),
          0,
          "lag p1",
        );
        near(
          valueOf(m, "logpipe_dead_letters_last_hour", {
            reason: "invalid_json",
          }),
          10,
          "invalid_json",
        );
        // The escaped reason round-trips; an old bucket is outside the hour.
        near(
          valueOf(m, "logpipe_dead_letters_last_hour", { reason: weird }),
          2,
          "weird",
        );
        near(
          valueOf(m, "logpipe_dead_letters_last_hour", { reason: "too_large" }),
          0,
          "too_large",
        );
        const reasons = m.get("logpipe_dead_letters_last_hour")!.metrics.map((
          x,
        ) => x.labels!.reason);
        for (const r of REJECT_REASON_LIST) assert.ok(reasons.includes(r), r);
        near(
          valueOf(m, "logpipe_files_written_last_hour"),
          12 + 6 + 3 + 90,
          "files",
        );
        near(
          valueOf(m, "logpipe_bytes_written_last_hour"),
          120000 + 60000 + 30000 + 900000,
          "bytes",
        );
        near(
          valueOf(m, "logpipe_batch_last_run_state", { state: "failed" }),
          1,
          "failed",
        );
        near(
          valueOf(m, "logpipe_batch_last_run_state", { state: "success" }),
          0,
          "success",
        );
        near(valueOf(m, "logpipe_batch_last_run_duration_seconds"), 42.5, "d");
        near(valueOf(m, "logpipe_batch_last_run_rows_loaded"), 10, "rows");
        const lastSuccess = valueOf(
          m,
          "logpipe_batch_last_success_timestamp_seconds",
        )!;
        assert.ok(
          Math.abs(lastSuccess - (Date.now() / 1000 - 19 * 60)) < 120,
          `last success ${lastSuccess}`,
        );
        near(
          valueOf(m, "logpipe_alert_state", {
            rule: "lag-high",
            severity: "critical",
            state: "firing",
          }),
          1,
          "firing",
        );
        near(
          valueOf(m, "logpipe_alert_state", {
            rule: "errors",
            state: "pending",
          }),
          1,
          "pending",
        );
        near(
          valueOf(m, "logpipe_alert_state", {
            rule: "never-evaluated",
            state: "ok",
          }),
          1,
          "ok",
        );
        near(valueOf(m, "logpipe_alerts_firing"), 1, "alerts firing");
        near(
          valueOf(m, "logpipe_component_up", { component: "consumer" }),
          1,
          "consumer up",
        );
        near(
          valueOf(m, "logpipe_component_up", { component: "producer" }),
          0,
          "producer stale",
        );

        // HEAD answers without a body; other methods and hosts are refused.
        const head = await fetch(`${api.url}/metrics`, { method: "HEAD" });
        assert.equal(head.status, 200);
        assert.equal(await head.text(), "");
        const post = await fetch(`${api.url}/metrics`, { method: "POST" });
        assert.equal(post.status, 405);
        await post.body?.cancel();
        const port = new URL(api.url).port;
        const evil = await new Deno.Command("curl", {
          args: [
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "Host: evil.example",
            `http://127.0.0.1:${port}/metrics`,
          ],
          stdout: "piped",
        }).output();
        assert.equal(new TextDecoder().decode(evil.stdout), "421");
      } finally {
        await api.shutdown();
      }

      // An empty database: no batch run, no lag, no latency; still valid.
      await pool.query(
        `truncate monitoring.consumer_stats, monitoring.consumer_lag, ops.dag_runs cascade`,
      );
      const empty = await startApi(t.config, { port: 0, siteDir: null });
      try {
        const m = parseStrict(
          await (await fetch(`${empty.url}/metrics`)).text(),
        );
        assert.equal(m.get("logpipe_batch_last_run_state")!.metrics.length, 0);
        assert.equal(
          m.get("logpipe_processing_latency_seconds")!.metrics.length,
          0,
        );
        assert.equal(valueOf(m, "logpipe_consumer_records_in_per_second"), 0);
      } finally {
        await empty.shutdown();
      }
    } finally {
      await pool.end();
      await t.cleanup();
    }
  },
});
