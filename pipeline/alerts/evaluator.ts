/**
 * The alert evaluator: every interval (default 15 s) it reads each enabled
 * rule's metric, steps the rule's state machine (state_machine.ts), and in
 * ONE transaction saves the new state, records every transition in
 * monitoring.alert_events and queues the notifications it calls for in the
 * monitoring.alert_notifications outbox. After the commit the outbox is
 * sent (Slack-compatible webhook, e-mail; pipeline/notify) and each message
 * marked sent.
 *
 * Why an outbox: the decision "notify" is stored with the state that caused
 * it, so a restarted evaluator neither re-sends (the state says the episode
 * was notified) nor loses a message (a queued one is sent on start). The
 * only duplicate left is a crash between a successful send and marking it
 * sent; every message carries a notification id receivers can dedupe on.
 *
 * Several evaluators (deno task up and deno task alerts) may run against one
 * database: a transaction-level advisory lock makes exactly one evaluate a
 * tick, and outbox rows are claimed with FOR UPDATE SKIP LOCKED.
 */
import type { Admin } from "kafkajs";
import type { Config } from "../config.ts";
import { createKafka } from "../clients/kafka.ts";
import { createPool, type Pool, withTransaction } from "../clients/postgres.ts";
import { logger } from "../log.ts";
import { postWebhook } from "../notify/webhook.ts";
import { sendEmail } from "../notify/email.ts";
import type { EmailMessage, SlackPayload } from "../notify/messages.ts";
import { readRuleFile } from "./defaults.ts";
import {
  alertEmail,
  type AlertNotice,
  alertSlackPayload,
  formatValue,
} from "./messages.ts";
import {
  type Db,
  lagFromKafka,
  lagFromMonitoring,
  type LagReader,
  type LagReading,
  type Reading,
  readMetric,
} from "./metrics.ts";
import { describeCondition } from "./rules.ts";
import { initialState, type RuleState, step } from "./state_machine.ts";
import * as store from "./store.ts";
import { deadline } from "../async.ts";

const log = logger("alerts");

/** Advisory lock key: one evaluator per database evaluates a tick. */
const EVAL_LOCK = "logpipe.alerts.evaluator";
/** A queued notification older than this is dropped, not sent late. */
const OUTBOX_MAX_AGE_MS = 3_600_000;
const OUTBOX_MAX_ATTEMPTS = 5;

export interface EvaluatorOptions {
  /** Evaluation interval (default 15 s). */
  intervalMs?: number;
  /** A JSON rule file synced into the database at start (see defaults.ts). */
  rulesFile?: string;
  /** Create the default rule set on first start (default true). */
  seedDefaults?: boolean;
  /** A pg Pool to use (default: a new one, closed by stop()). */
  pool?: Pool;
  /**
   * Consumer-lag source; default: Kafka (group offsets + record timestamps),
   * falling back to monitoring.consumer_lag when Kafka does not answer.
   */
  lag?: LagReader;
  /** Clock (tests). */
  now?: () => Date;
  /** Called after every tick. */
  onTick?: (t: TickSummary) => void;
}

/** What one tick did. */
export interface TickSummary {
  at: Date;
  /** False when another evaluator held the lock. */
  evaluated: boolean;
  rules: number;
  firing: number;
  transitions: number;
  queued: number;
  sent: number;
  errors: number;
}

interface OutboxPayload {
  slack: SlackPayload;
  email: EmailMessage;
}

/** The evaluator; use startAlertEvaluator to run it on a timer. */
export class AlertEvaluator {
  readonly pool: Pool;
  readonly #ownPool: boolean;
  readonly #now: () => Date;
  readonly #lag: LagReader;
  #admin: Admin | undefined;
  readonly instanceId = `alerts-${crypto.randomUUID().slice(0, 8)}`;
  readonly #startedAt = new Date();

  constructor(readonly config: Config, readonly opts: EvaluatorOptions = {}) {
    this.pool = opts.pool ??
      createPool(config, { max: 3, applicationName: "logpipe-alerts" });
    this.#ownPool = !opts.pool;
    this.#now = opts.now ?? (() => new Date());
    this.#lag = opts.lag ?? ((now) => this.#kafkaLag(now));
  }

  /** Seeds the defaults (once per database) and syncs the rule file. */
  async prepare(): Promise<void> {
    if (this.opts.seedDefaults ?? true) {
      const n = await store.seedDefaults(this.pool);
      if (n) log.info("created the default alert rules", { rules: n });
    }
    if (this.opts.rulesFile) {
      const rules = await readRuleFile(this.opts.rulesFile);
      const r = await store.syncRuleFile(this.pool, rules);
      log.info("synced the alert rules file", {
        file: this.opts.rulesFile,
        ...r,
      });
    }
  }

  async #kafkaLag(now: Date): Promise<LagReading | null> {
    try {
      if (!this.#admin) {
        const admin = createKafka(this.config, { quiet: true, retries: 1 })
          .admin();
        await deadline(admin.connect(), 5_000, {
          message: "Kafka admin connect timed out after 5000 ms",
        });
        this.#admin = admin;
      }
      return await deadline(
        lagFromKafka(
          this.#admin,
          this.config.kafka.topic,
          this.config.kafka.consumerGroup,
          now,
        ),
        10_000,
        { message: "Kafka lag read timed out after 10000 ms" },
      );
    } catch (err) {
      log.warn(
        "consumer lag from Kafka failed; using monitoring.consumer_lag",
        {
          error: err,
        },
      );
      await this.#admin?.disconnect().catch(() => {});
      this.#admin = undefined;
      return await lagFromMonitoring(this.pool, now);
    }
  }

  /** Evaluates every rule once and sends what the tick queued. */
  async tick(): Promise<TickSummary> {
    const now = this.#now();
    const summary: TickSummary = {
      at: now,
      evaluated: false,
      rules: 0,
      firing: 0,
      transitions: 0,
      queued: 0,
      sent: 0,
      errors: 0,
    };
    let failure: unknown;
    try {
      await withTransaction(this.pool, async (c) => {
        const lock = await c.query<{ ok: boolean }>(
          "select pg_try_advisory_xact_lock(hashtext($1)) as ok",
          [EVAL_LOCK],
        );
        if (!lock.rows[0].ok) return;
        summary.evaluated = true;
        await this.#evaluate(c, now, summary);
      });
    } catch (err) {
      // Whatever failed here, notifications queued before (by an earlier
      // tick or another evaluator) are still sent below.
      failure = err;
    }
    summary.sent = await this.dispatch();
    this.opts.onTick?.(summary);
    if (failure !== undefined) throw failure;
    return summary;
  }

  async #evaluate(db: Db, now: Date, summary: TickSummary): Promise<void> {
    const rules = await store.listRules(db);
    const states = await store.loadStates(db);
    summary.rules = rules.length;
    // One lag reading per tick, shared by every lag rule.
    let lag: Promise<LagReading | null> | undefined;
    const lagOnce: LagReader = () => (lag ??= this.#lag(now));

    for (const rule of rules) {
      // Each rule in its own savepoint: whatever one rule does (an unknown
      // metric, a failing query that aborts the transaction, a bad row), the
      // others are evaluated and the tick commits what they queued.
      await db.query("savepoint alert_rule");
      try {
        const counts = await this.#evaluateRule(
          db,
          rule,
          states.get(rule.id),
          now,
          lagOnce,
        );
        await db.query("release savepoint alert_rule");
        summary.firing += counts.firing;
        summary.transitions += counts.transitions;
        summary.queued += counts.queued;
        summary.errors += counts.errors;
      } catch (err) {
        await db.query("rollback to savepoint alert_rule");
        summary.errors++;
        const error = errorText(err);
        log.warn("alert rule evaluation failed; the other rules go on", {
          rule: rule.id,
          error,
        });
        await this.#recordRuleError(db, rule, states.get(rule.id), error, now);
      }
    }
    await db.query(
      `insert into monitoring.components (component, instance_id, state, detail, started_at, updated_at)
       values ('alerts', $1, 'running', $2::jsonb, $3, now())
       on conflict (component, instance_id) do update
         set state = excluded.state, detail = excluded.detail, updated_at = now()`,
      [
        this.instanceId,
        JSON.stringify({ rules: summary.rules, firing: summary.firing }),
        this.#startedAt,
      ],
    );
  }

  /**
   * Evaluates one rule: reads its metric, steps its state machine, saves the
   * state, records transitions and queues notifications. A metric read that
   * fails (even an SQL error, which aborts the transaction) is rolled back
   * to its own savepoint and recorded as the rule's error, its state kept.
   */
  async #evaluateRule(
    db: Db,
    rule: store.StoredRule,
    stored: RuleState | undefined,
    now: Date,
    lag: LagReader,
  ): Promise<
    { firing: number; transitions: number; queued: number; errors: number }
  > {
    const counts = { firing: 0, transitions: 0, queued: 0, errors: 0 };
    const prev = stored ?? await this.#initialState(db, rule.id, now);
    let reading: Reading = { value: null, samples: null, detail: {} };
    let error: string | null = null;
    if (rule.enabled) {
      await db.query("savepoint alert_metric");
      try {
        reading = await readMetric(db, rule, now, lag);
        await db.query("release savepoint alert_metric");
      } catch (err) {
        await db.query("rollback to savepoint alert_metric");
        error = errorText(err);
        counts.errors++;
        log.warn("metric read failed", { rule: rule.id, error });
      }
    }
    const res = error
      ? { state: prev, transitions: [], notifications: [], noData: true }
      : step(rule, prev, reading, now);
    await store.saveState(db, rule.id, res.state, {
      value: reading.value,
      samples: reading.samples,
      error,
      version: rule.version,
    }, now);
    if (res.state.state === "firing") counts.firing++;
    for (const t of res.transitions) {
      counts.transitions++;
      const message = `${t.kind}: ${rule.metric} is ${
        formatValue(rule.metric, reading.value)
      } (${describeCondition(rule)})`;
      await store.insertEvent(db, {
        rule_id: rule.id,
        rule_name: rule.name,
        episode: res.state.episode,
        kind: t.kind,
        from_state: t.from,
        to_state: t.to,
        value: reading.value,
        threshold: rule.threshold,
        comparison: rule.comparison,
        samples: reading.samples,
        severity: rule.severity,
        metric: rule.metric,
        message,
        at: now,
      });
      log.info("alert transition", {
        rule: rule.id,
        kind: t.kind,
        from: t.from,
        to: t.to,
        value: reading.value,
        threshold: rule.threshold,
      });
    }
    for (const n of res.notifications) {
      const notice: AlertNotice = {
        kind: n.kind,
        rule,
        episode: n.episode,
        seq: n.seq,
        value: reading.value,
        samples: reading.samples,
        detail: reading.detail,
        at: now,
        firedAt: res.state.firedAt,
        reason: !rule.enabled ? "rule disabled" : undefined,
      };
      const payload: OutboxPayload = {
        slack: alertSlackPayload(notice),
        email: alertEmail(notice),
      };
      for (const channel of rule.channels) {
        await store.enqueueNotification(db, {
          ruleId: rule.id,
          episode: n.episode,
          kind: n.kind,
          seq: n.seq,
          channel,
          payload,
        });
        counts.queued++;
      }
    }
    return counts;
  }

  /** The state of a rule evaluated for the first time (episode counters resume). */
  async #initialState(db: Db, ruleId: string, now: Date): Promise<RuleState> {
    const counters = await store.nextCounters(db, ruleId);
    return { ...initialState(now, counters.episode), notifySeq: counters.seq };
  }

  /**
   * After a rule's savepoint was rolled back: keeps its state as it was and
   * records the error (shown by the API and the site). Best effort, in its
   * own savepoint: if even that fails, the error is only logged.
   */
  async #recordRuleError(
    db: Db,
    rule: store.StoredRule,
    stored: RuleState | undefined,
    error: string,
    now: Date,
  ): Promise<void> {
    await db.query("savepoint alert_rule_error");
    try {
      const prev = stored ?? await this.#initialState(db, rule.id, now);
      await store.saveState(db, rule.id, prev, {
        value: null,
        samples: null,
        error: error.slice(0, 1000),
        version: rule.version,
      }, now);
      await db.query("release savepoint alert_rule_error");
    } catch (err) {
      await db.query("rollback to savepoint alert_rule_error");
      log.warn("could not record the rule's error", {
        rule: rule.id,
        error: errorText(err),
      });
    }
  }

  /**
   * Sends queued notifications (oldest first) and marks each sent; returns
   * how many went out. A failed send stays queued for the next tick, up to
   * OUTBOX_MAX_ATTEMPTS; one older than an hour is expired, not sent late.
   */
  async dispatch(): Promise<number> {
    let sent = 0;
    const tried: number[] = [];
    for (;;) {
      const done = await withTransaction(this.pool, async (c) => {
        const { rows } = await c.query<{
          id: number;
          channel: string;
          payload: OutboxPayload;
          attempts: number;
          created_at: Date;
          rule_id: string;
          kind: string;
        }>(
          `select id, channel, payload, attempts, created_at, rule_id, kind
             from monitoring.alert_notifications
            where status = 'pending' and not (id = any($1::bigint[]))
            order by id limit 1
            for update skip locked`,
          [tried],
        );
        const n = rows[0];
        if (!n) return true;
        tried.push(n.id);
        const mark = (status: string, error: string | null) =>
          c.query(
            `update monitoring.alert_notifications
                set status = $2, error = $3, attempts = attempts + 1,
                    sent_at = case when $2 = 'sent' then now() else sent_at end
              where id = $1`,
            [n.id, status, error],
          );
        if (Date.now() - n.created_at.getTime() > OUTBOX_MAX_AGE_MS) {
          await mark("expired", "queued more than an hour ago");
          return false;
        }
        const { slackWebhookUrl, smtpUrl, emailFrom, emailTo } =
          this.config.notify;
        try {
          if (n.channel === "slack") {
            if (!slackWebhookUrl) {
              log.info("alert notification (no webhook configured)", {
                text: n.payload.slack.text,
              });
              await mark("skipped", "LOGPIPE_SLACK_WEBHOOK_URL is not set");
              return false;
            }
            await postWebhook(slackWebhookUrl, n.payload.slack, {
              attempts: 2,
              timeoutMs: 10_000,
            });
          } else if (n.channel === "email") {
            if (!smtpUrl || emailTo.length === 0) {
              log.info(
                "alert e-mail (no SMTP server or recipients configured)",
                {
                  subject: n.payload.email.subject,
                },
              );
              await mark(
                "skipped",
                "LOGPIPE_SMTP_URL or LOGPIPE_EMAIL_TO is not set",
              );
              return false;
            }
            await sendEmail(smtpUrl, emailFrom, emailTo, n.payload.email, {
              timeoutMs: 10_000,
            });
          } else {
            await mark("skipped", `unknown channel ${n.channel}`);
            return false;
          }
          await mark("sent", null);
          sent++;
          log.info("alert notification sent", {
            rule: n.rule_id,
            kind: n.kind,
            channel: n.channel,
          });
        } catch (err) {
          const msg = err instanceof Error ? err.message : String(err);
          const final = n.attempts + 1 >= OUTBOX_MAX_ATTEMPTS;
          await mark(final ? "failed" : "pending", msg.slice(0, 500));
          log.warn("alert notification failed", {
            rule: n.rule_id,
            channel: n.channel,
            error: msg,
            final,
          });
        }
        return false;
      });
      if (done) return sent;
    }
  }

  /** Closes what the evaluator opened. */
  async close(): Promise<void> {
    await this.#admin?.disconnect().catch(() => {});
    await this.pool.query(
      `update monitoring.components set state = 'stopped', updated_at = now()
        where component = 'alerts' and instance_id = $1`,
      [this.instanceId],
    ).catch(() => {});
    if (this.#ownPool) await this.pool.end();
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A running evaluator. */
export interface RunningEvaluator {
  evaluator: AlertEvaluator;
  /** Stops the timer, waits for a running tick, closes connections. */
  stop(): Promise<void>;
}

/**
 * Starts the evaluator for `deno task up` and `deno task alerts`: seeds the
 * defaults, syncs the rule file, evaluates at once and then every
 * intervalMs. A failing tick is logged and retried at the next interval.
 */
export async function startAlertEvaluator(
  config: Config,
  opts: EvaluatorOptions = {},
): Promise<RunningEvaluator> {
  const evaluator = new AlertEvaluator(config, opts);
  try {
    await evaluator.prepare();
  } catch (err) {
    await evaluator.close();
    throw err;
  }
  const interval = opts.intervalMs ?? 15_000;
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let running: Promise<void> = Promise.resolve();
  const loop = () => {
    if (stopped) return;
    const started = Date.now();
    running = evaluator.tick().then(
      () => {},
      (err) => log.error("alert evaluation failed", { error: err }),
    ).finally(() => {
      if (!stopped) {
        timer = setTimeout(
          loop,
          Math.max(0, interval - (Date.now() - started)),
        );
      }
    });
  };
  loop();
  log.info("alert evaluator started", {
    intervalMs: interval,
    instance: evaluator.instanceId,
  });
  return {
    evaluator,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
      await evaluator.close();
    },
  };
}
