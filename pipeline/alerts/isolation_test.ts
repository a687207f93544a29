/**
 * One bad alert rule cannot stop the others (issue 13), on a real, migrated
 * Postgres and a local webhook receiver (a stand-in Slack):
 *
 * - the CHECK on monitoring.alert_rules.metric refuses `constructor` and
 *   lists exactly the metrics of rules.ts;
 * - a rule whose metric is `constructor` (a row from before the CHECK) and a
 *   rule whose metric query fails in SQL (which aborts the transaction) are
 *   evaluated first; the good rule after them still fires and notifies, and
 *   each bad rule carries its own error;
 * - when the evaluation as a whole fails, notifications queued before are
 *   still sent;
 * - `deno task alerts --check` refuses a rule file with metric
 *   `constructor` with exit code 2, naming the field.
 */
import assert from "node:assert/strict";
import { loadConfig } from "../config.ts";
import { createPool } from "../clients/postgres.ts";
import { createTestEnv } from "../testing/env.ts";
import { startWebhookReceiver } from "../notify/receivers.ts";
import { AlertEvaluator } from "./evaluator.ts";
import { METRIC_IDS, validateRule } from "./rules.ts";
import * as store from "./store.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

Deno.test({
  name:
    "alerts: a rule that throws at evaluation leaves the others firing and notifying",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const env = await createTestEnv("alerts_isolation", { noTopic: true });
    const hook = startWebhookReceiver();
    const config = loadConfig({
      ...Deno.env.toObject(),
      ...env.env,
      LOGPIPE_SLACK_WEBHOOK_URL: hook.url,
    });
    const pool = createPool(config, { max: 3 });
    const evaluator = new AlertEvaluator(config, {
      pool,
      seedDefaults: false,
      lag: () => Promise.resolve(null),
    });
    try {
      await t.step(
        "the metric CHECK lists exactly METRIC_IDS and refuses constructor",
        async () => {
          const { rows } = await pool.query<{ def: string; valid: boolean }>(
            `select pg_get_constraintdef(oid) as def, convalidated as valid
               from pg_constraint where conname = 'alert_rules_metric_known'`,
          );
          assert.equal(rows.length, 1);
          assert.ok(rows[0].valid, "the constraint is validated");
          const listed = [...rows[0].def.matchAll(/'([a-z0-9_]+)'::text/g)]
            .map((m) => m[1]);
          assert.deepEqual(listed.sort(), [...METRIC_IDS].sort());
          await assert.rejects(
            () =>
              pool.query(
                `insert into monitoring.alert_rules (id, name, metric, window_secs, comparison, threshold, severity)
                 values ('proto', 'proto', 'constructor', 60, '>', 1, 'info')`,
              ),
            (e: { code?: string }) => e.code === "23514",
          );
        },
      );

      await t.step(
        "bad rules first, then a good one: the good one fires and notifies",
        async () => {
          // 50 % errors over the last minute, as the consumer records them.
          await pool.query(
            `insert into monitoring.event_counts (bucket, event_type, geo_country, device_type, level, events)
             select date_bin('10 seconds', now() - make_interval(secs => s), timestamptz 'epoch'),
                    t, 'DE', 'mobile', l, n
               from generate_series(10, 50, 10) as s,
                    (values ('search', 'INFO', 50), ('error', 'ERROR', 50)) as v(t, l, n)`,
          );
          // Rules are evaluated by name: the two bad ones come first.
          await store.insertRule(
            pool,
            validateRule({
              id: "b-batch-late",
              name: "B: batch late (its table is gone)",
              metric: "minutes_since_last_batch",
              window_secs: 60,
              comparison: ">",
              threshold: 30,
            }),
          );
          await store.insertRule(
            pool,
            validateRule({
              id: "c-errors",
              name: "C: error rate",
              metric: "error_rate",
              window_secs: 60,
              comparison: ">",
              threshold: 20,
              min_events: 10,
              channels: ["slack"],
              renotify_secs: 0,
              cooldown_secs: 0,
            }),
          );
          // A rule stored before the CHECK existed (or written by hand).
          await pool.query(
            "alter table monitoring.alert_rules drop constraint alert_rules_metric_known",
          );
          await pool.query(
            `insert into monitoring.alert_rules (id, name, metric, window_secs, comparison, threshold, severity, channels)
             values ('a-proto', 'A: constructor', 'constructor', 60, '>', 1, 'critical', '{slack}')`,
          );
          // The batch metric's query now fails in SQL, aborting the transaction.
          await pool.query("alter table ops.dag_runs rename to dag_runs_gone");
          // A rule whose metric reads fine but whose state cannot be saved.
          await store.insertRule(
            pool,
            validateRule({
              id: "a2-state",
              name: "A2: state cannot be saved",
              metric: "error_rate",
              window_secs: 60,
              comparison: ">",
              threshold: 20,
              channels: [],
            }),
          );
          await pool.query(
            `create function monitoring.refuse_a2() returns trigger language plpgsql as $$
             begin
               if new.rule_id = 'a2-state' then raise exception 'state of a2-state refused'; end if;
               return new;
             end $$;
             create trigger refuse_a2 before insert or update on monitoring.alert_state
               for each row execute function monitoring.refuse_a2()`,
          );

          const tick = await evaluator.tick();
          assert.equal(tick.evaluated, true);
          assert.equal(tick.rules, 4);
          assert.equal(tick.errors, 3);
          assert.equal(tick.firing, 1);
          assert.equal(tick.sent, 1);
          const msg = await hook.waitFor(
            (m) => m.body.logpipe?.ruleId === "c-errors",
            5000,
          );
          assert.equal(msg.body.logpipe!.kind, "alert_firing");
          assert.equal(hook.received.length, 1);

          const states = new Map(
            (await pool.query<
              { rule_id: string; state: string; last_error: string | null }
            >(
              "select rule_id, state, last_error from monitoring.alert_state",
            )).rows.map((r) => [r.rule_id, r]),
          );
          assert.equal(states.get("c-errors")?.state, "firing");
          assert.equal(states.get("c-errors")?.last_error, null);
          assert.match(
            states.get("a-proto")?.last_error ?? "",
            /unknown metric "constructor"/,
          );
          assert.match(
            states.get("b-batch-late")?.last_error ?? "",
            /dag_runs/,
          );
          // Its error could not be stored either (same trigger): logged only.
          assert.equal(states.has("a2-state"), false);
          const events = await pool.query(
            "select rule_id, kind from monitoring.alert_events",
          );
          assert.deepEqual(events.rows, [
            { rule_id: "c-errors", kind: "firing" },
          ]);
        },
      );

      await t.step(
        "a failing evaluation still sends what was queued before",
        async () => {
          await pool.query(
            `insert into monitoring.alert_notifications (rule_id, episode, kind, seq, channel, payload)
             values ('c-errors', 99, 'renotify', 1, 'slack', $1::jsonb)`,
            [JSON.stringify({
              slack: { text: "queued before the failure" },
              email: { subject: "queued", text: "queued before the failure" },
            })],
          );
          await pool.query(
            "alter table monitoring.alert_state rename to alert_state_gone",
          );
          try {
            await assert.rejects(() => evaluator.tick(), /alert_state/);
            await hook.waitFor(
              (m) => m.body.text === "queued before the failure",
              5000,
            );
          } finally {
            await pool.query(
              "alter table monitoring.alert_state_gone rename to alert_state",
            );
            await pool.query(
              "alter table ops.dag_runs_gone rename to dag_runs",
            );
          }
          // Repaired: only the constructor rule still errs; nothing re-sent.
          await pool.query("drop trigger refuse_a2 on monitoring.alert_state");
          const tick = await evaluator.tick();
          assert.equal(tick.errors, 1);
          assert.equal(tick.firing, 2); // a2-state fires too (record only)
          assert.equal(tick.sent, 0);
          assert.equal(hook.received.length, 2);
        },
      );
    } finally {
      await evaluator.close();
      await pool.end();
      await hook.close();
      await env.cleanup();
    }
  },
});

Deno.test({
  name: "alerts --check: a rule file with metric constructor exits 2",
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "logpipe-rules-" });
    try {
      const check = async (metric: string) => {
        const file = `${dir}/${metric}.json`;
        await Deno.writeTextFile(
          file,
          JSON.stringify([{
            name: "proto",
            metric,
            window_secs: 60,
            comparison: ">",
            threshold: 1,
          }]),
        );
        const out = await new Deno.Command(Deno.execPath(), {
          args: ["run", "-A", "tasks/alerts.ts", "--check", "--rules", file],
          cwd: ROOT,
          stdout: "piped",
          stderr: "piped",
        }).output();
        return {
          code: out.code,
          stderr: new TextDecoder().decode(out.stderr).trim(),
        };
      };
      for (const metric of ["constructor", "__proto__", "toString"]) {
        const r = await check(metric);
        assert.equal(r.code, 2, r.stderr);
        assert.match(r.stderr, /field "metric": unknown metric/);
        assert.equal(r.stderr.split("\n").length, 1, r.stderr);
      }
      assert.equal((await check("error_rate")).code, 0);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
