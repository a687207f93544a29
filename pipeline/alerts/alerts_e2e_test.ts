/**
 * Alerting end to end on the REAL services: generator records → real Kafka
 * topic → the real stream consumer (`tasks/consume.ts`, a subprocess) →
 * monitoring.* in a real Postgres → the evaluator → a local webhook receiver
 * (a stand-in Slack) and a local SMTP server. Windows and the evaluation
 * interval are shortened (seconds, not minutes) so the suite stays quick:
 *
 * - a burst with 40 % errors fires the error-rate rule within one interval
 *   after its window fills: exactly one message (rule, value, threshold) per
 *   channel; normal traffic again → exactly one resolved message;
 * - the producer stops → "events per minute below N" fires; the evaluator is
 *   restarted while it fires → no duplicate; traffic again → resolves once;
 * - the consumer stops → the lag-seconds rule fires (lag read from Kafka).
 */
import assert from "node:assert/strict";
import type { Producer } from "kafkajs";
import { loadConfig } from "../config.ts";
import { createKafka } from "../clients/kafka.ts";
import { createPool } from "../clients/postgres.ts";
import { createTestEnv } from "../testing/env.ts";
import { createGenerator, type GeneratedRecord } from "../events/generator.ts";
import { SCHEMA_VERSION } from "../events/schema.ts";
import { UuidV7Factory } from "../events/ids.ts";
import { Rng } from "../events/rng.ts";
import {
  type ReceivedWebhook,
  startSmtpReceiver,
  startWebhookReceiver,
} from "../notify/receivers.ts";
import { type RunningEvaluator, startAlertEvaluator } from "./evaluator.ts";
import { validateRule } from "./rules.ts";
import * as store from "./store.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const INTERVAL_MS = 1000;
const ERR_WINDOW = 15;

/** Normal and error records of the real generator, to mix at will. */
function recordPools(n: number) {
  const gen = createGenerator({
    seed: "alerts-e2e",
    startTime: Date.now(),
    rate: 100,
  });
  const errors: GeneratedRecord[] = [];
  const normal: GeneratedRecord[] = [];
  for (const r of gen) {
    if (!r.event) continue;
    (r.event.level === "ERROR" ? errors : normal).push(r);
    if (normal.length >= n && errors.length >= n / 2) break;
  }
  return { errors, normal };
}

/** Sends `perSec` records a second until stopped; `errorShare` of them errors. */
class Traffic {
  #timer: ReturnType<typeof setInterval> | undefined;
  #i = 0;
  #j = 0;
  #ids = new UuidV7Factory(new Rng("alerts-e2e-ids"));
  sent = 0;
  errorShare = 0;
  constructor(
    readonly producer: Producer,
    readonly topic: string,
    readonly pools: ReturnType<typeof recordPools>,
    readonly perSec = 100,
  ) {}
  start(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => this.#tick(), 250);
  }
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
  #tick(): void {
    const n = this.perSec / 4;
    const msgs = [];
    for (let k = 0; k < n; k++) {
      const isErr = (k + 0.5) / n < this.errorShare;
      const pool = isErr ? this.pools.errors : this.pools.normal;
      const r = pool[(isErr ? this.#i++ : this.#j++) % pool.length];
      // Records are reused: give each send a fresh UUIDv7 and the current
      // time, so every event is distinct and valid "now".
      const now = Date.now();
      const ev = {
        ...r.event!,
        event_id: this.#ids.next(now),
        event_ts: new Date(now).toISOString(),
      };
      msgs.push({
        key: r.key,
        value: JSON.stringify(ev),
        headers: { schema_version: String(SCHEMA_VERSION) },
      });
    }
    this.sent += msgs.length;
    this.producer.send({ topic: this.topic, acks: -1, messages: msgs }).catch(
      (e) => console.error("traffic send failed", e),
    );
  }
}

function spawnConsumer(env: Record<string, string>, logFile: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `${ROOT}tasks/consume.ts`,
      "--metrics-interval-ms",
      "500",
      "--max-batch-age-ms",
      "500",
    ],
    cwd: ROOT,
    env,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const file = Deno.openSync(logFile, {
    create: true,
    append: true,
    write: true,
  });
  const pump = Promise.all([
    child.stdout.pipeTo(file.writable, { preventClose: true }).catch(() => {}),
    child.stderr.pipeTo(
      new WritableStream({ write: (c) => void file.writeSync(c) }),
    ).catch(() => {}),
  ]).finally(() => file.close());
  return {
    async stop(signal: Deno.Signal = "SIGTERM") {
      try {
        child.kill(signal);
      } catch { /* already gone */ }
      await child.status;
      await pump;
    },
  };
}

async function waitUntil<T>(
  what: string,
  fn: () => Promise<T | undefined> | T | undefined,
  timeoutMs: number,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test({
  name:
    "alerts e2e: error burst, stalled producer, evaluator restart, stopped consumer",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const env = await createTestEnv("alerts_e2e", { partitions: 2 });
    const hook = startWebhookReceiver();
    const smtp = await startSmtpReceiver();
    const artifacts = `${ROOT}test-artifacts/alerts`;
    await Deno.mkdir(artifacts, { recursive: true });
    const consumerLog = `${artifacts}/consumer-${env.id}.log`;
    const config = loadConfig({
      ...Deno.env.toObject(),
      ...env.env,
      LOGPIPE_SLACK_WEBHOOK_URL: hook.url,
      LOGPIPE_SMTP_URL: smtp.url,
      LOGPIPE_EMAIL_TO: "oncall@example.com",
    });
    const pool = createPool(config, { max: 2 });
    const kafka = createKafka(config, { quiet: true });
    const producer = kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
    });
    await producer.connect();
    const traffic = new Traffic(
      producer,
      config.kafka.topic,
      recordPools(4000),
    );
    let consumer = spawnConsumer(env.env, consumerLog);
    let evaluator: RunningEvaluator | undefined;
    const startEvaluator = async () =>
      evaluator = await startAlertEvaluator(config, {
        intervalMs: INTERVAL_MS,
        seedDefaults: false,
      });
    const of = (rule: string, kind: string) => (m: ReceivedWebhook) =>
      m.body.logpipe?.ruleId === rule &&
      m.body.logpipe?.kind === `alert_${kind}`;
    const count = (rule: string, kind: string) =>
      hook.received.filter(of(rule, kind)).length;
    const state = async (id: string) =>
      (await pool.query(
        "select state, last_value, last_samples from monitoring.alert_state where rule_id = $1",
        [id],
      ))
        .rows[0] as {
          state: string;
          last_value: number | null;
          last_samples: number | null;
        } | undefined;

    try {
      for (
        const r of [
          {
            id: "err",
            name: "Error rate (test)",
            metric: "error_rate",
            window_secs: ERR_WINDOW,
            comparison: ">",
            threshold: 25,
            recover_threshold: 10,
            min_events: 200,
            severity: "critical",
            channels: ["slack", "email"],
            renotify_secs: 0,
            cooldown_secs: 0,
          },
          {
            id: "low",
            name: "Events per minute too low (test)",
            metric: "events_per_minute",
            window_secs: 10,
            comparison: "<",
            threshold: 600,
            recover_threshold: 1200,
            channels: ["slack"],
            renotify_secs: 0,
            cooldown_secs: 0,
          },
          {
            id: "lag",
            name: "Consumer lag (test)",
            metric: "consumer_lag_seconds",
            window_secs: 10,
            comparison: ">",
            threshold: 8,
            recover_threshold: 3,
            channels: ["slack"],
            renotify_secs: 0,
            cooldown_secs: 0,
          },
        ]
      ) {
        assert.ok(await store.insertRule(pool, validateRule(r)));
      }
      traffic.start();
      await startEvaluator();

      await t.step(
        "normal traffic: the error-rate rule is evaluated and ok",
        async () => {
          const s = await waitUntil(
            "err evaluated with enough events",
            async () => {
              const s = await state("err");
              return s && (s.last_samples ?? 0) >= 200 ? s : undefined;
            },
            60_000,
          );
          assert.equal(s.state, "ok");
          assert.ok(s.last_value! < 10, `normal error rate ${s.last_value}`);
          // No message of this rule (the lag and rate rules may see a
          // moment of lag when the machine is loaded: later steps test them).
          assert.deepEqual(
            hook.received.map((m) => m.body.logpipe).filter((lp) =>
              lp?.ruleId === "err"
            ),
            [],
            "no error-rate message under normal traffic",
          );
        },
      );

      await t.step(
        "a 40 % error burst fires once, with rule, value and threshold",
        async () => {
          traffic.errorShare = 0.4;
          const burstAt = Date.now();
          const msg = await hook.waitFor(of("err", "firing"), 60_000);
          const firedAfter = msg.at - burstAt;
          const lp = msg.body.logpipe as Record<string, unknown>;
          assert.equal(lp.ruleName, "Error rate (test)");
          assert.equal(lp.threshold, 25);
          assert.ok(
            (lp.value as number) > 25 && (lp.value as number) <= 41,
            `value ${lp.value}`,
          );
          assert.match(
            msg.body.text!,
            /Error rate \(test\).*error_rate is .* %.*threshold &gt; 25 %/,
          );
          // Within one evaluation interval after the window fills: the window
          // in whole 10 s buckets, plus the bucket still filling, the interval
          // and the consumer's commit + metrics delay (about a second).
          const bound = (Math.ceil(ERR_WINDOW / 10) * 10 + 10) * 1000 +
            INTERVAL_MS + 3000;
          console.log(
            `error-rate rule fired ${firedAfter} ms after the burst began (bound ${bound} ms)`,
          );
          assert.ok(firedAfter < bound, `fired after ${firedAfter} ms`);
          const mail = await smtp.waitFor(
            (m) => /Error rate \(test\)/.test(m.subject),
            15_000,
          );
          assert.match(mail.raw, /Threshold: +> 25 %/);
          await sleep(4000);
          assert.equal(count("err", "firing"), 1, "exactly one firing message");
          assert.equal(
            smtp.received.filter((m) => /Error rate/.test(m.subject)).length,
            1,
          );
        },
      );

      await t.step(
        "normal traffic again → exactly one resolved message",
        async () => {
          traffic.errorShare = 0;
          await hook.waitFor(of("err", "resolved"), 60_000);
          await sleep(3000);
          assert.equal(count("err", "resolved"), 1);
          assert.equal(count("err", "firing"), 1);
          const ev = await pool.query(
            "select kind, value, threshold from monitoring.alert_events where rule_id = 'err' order by id",
          );
          assert.deepEqual(ev.rows.map((r) => r.kind), ["firing", "resolved"]);
          assert.ok(ev.rows[0].value > 25 && ev.rows[1].value < 10);
        },
      );

      await t.step(
        "producer stops → events-per-minute rule fires",
        async () => {
          traffic.stop();
          const msg = await hook.waitFor(of("low", "firing"), 45_000);
          assert.ok((msg.body.logpipe!.value as number) < 600);
        },
      );

      await t.step(
        "evaluator restart while firing → no duplicate notification",
        async () => {
          await evaluator!.stop();
          await startEvaluator();
          // Several ticks of the new evaluator, still firing.
          const restartedAt = new Date();
          await sleep(5 * INTERVAL_MS);
          const ticked = await pool.query(
            "select last_evaluated_at from monitoring.alert_state where rule_id = 'low'",
          );
          assert.ok(
            ticked.rows[0].last_evaluated_at > restartedAt,
            "the new evaluator evaluated",
          );
          assert.equal((await state("low"))?.state, "firing");
          assert.equal(
            count("low", "firing"),
            1,
            "no re-send after the restart",
          );
          const sent = await pool.query(
            "select count(*)::int as n from monitoring.alert_notifications where rule_id = 'low' and kind = 'firing'",
          );
          assert.equal(sent.rows[0].n, 1);
        },
      );

      await t.step("producer restarts → resolves once", async () => {
        traffic.start();
        await hook.waitFor(of("low", "resolved"), 45_000);
        await sleep(2000);
        assert.equal(count("low", "resolved"), 1);
        assert.equal(count("low", "firing"), 1);
      });

      await t.step("consumer stops → lag rule fires (from Kafka)", async () => {
        assert.equal((await state("lag"))?.state, "ok");
        await consumer.stop("SIGKILL");
        const msg = await hook.waitFor(of("lag", "firing"), 60_000);
        const lp = msg.body.logpipe as {
          value: number;
          detail: Record<string, unknown>;
        };
        assert.ok(lp.value > 8, `lag ${lp.value}`);
        assert.equal(lp.detail.source, "kafka");
        assert.ok((lp.detail.lag_offsets as number) > 0);
      });

      await t.step("consumer restarts → lag resolves", async () => {
        consumer = spawnConsumer(env.env, consumerLog);
        await hook.waitFor(of("lag", "resolved"), 90_000);
        assert.equal(count("lag", "firing"), 1);
      });
    } finally {
      traffic.stop();
      await evaluator?.stop().catch(() => {});
      await consumer.stop().catch(() => {});
      await producer.disconnect().catch(() => {});
      await pool.end();
      await hook.close();
      await smtp.close();
      await env.cleanup();
    }
  },
});
