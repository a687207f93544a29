/**
 * `deno task alerts`: runs the alert evaluator alone (deno task up runs it
 * in-process). See pipeline/alerts/evaluator.ts.
 */
import { intFlag, parseCli, runMain, UsageError } from "../pipeline/cli.ts";
import { loadConfig } from "../pipeline/config.ts";
import { migrate } from "../pipeline/postgres/migrate.ts";
import {
  AlertEvaluator,
  startAlertEvaluator,
} from "../pipeline/alerts/evaluator.ts";
import { readRuleFile, RuleFileError } from "../pipeline/alerts/defaults.ts";

const USAGE = `
Usage: deno task alerts [options]

Evaluates the alert rules (monitoring.alert_rules) every interval against the
live metrics in Postgres and Kafka, records every transition in
monitoring.alert_events and notifies through LOGPIPE_SLACK_WEBHOOK_URL and
LOGPIPE_SMTP_URL / LOGPIPE_EMAIL_TO. The default rule set is created on the
first start. Ctrl-C / SIGTERM stops after the running evaluation.

Options:
  --interval S      seconds between evaluations, 1-300 (default 15)
  --rules FILE      sync the rules of this JSON file (kept in git) into the
                    database first: upsert them, delete file rules no longer
                    in it (see docs/alerts.md for the format)
  --check           only validate --rules FILE and exit (0 = valid)
  --once            evaluate once, send what it queued, print a summary, exit
  --no-defaults     do not create the default rules on first start
  -h, --help        this help
`;

await runMain(async () => {
  const { values } = parseCli(Deno.args, {
    interval: { type: "string" },
    rules: { type: "string" },
    check: { type: "boolean" },
    once: { type: "boolean" },
    "no-defaults": { type: "boolean" },
  }, USAGE);
  const interval = intFlag("interval", values.interval, 15, 1, 300);
  if (values.check) {
    if (!values.rules) throw new UsageError("--check needs --rules FILE");
    try {
      const rules = await readRuleFile(values.rules);
      console.log(`${values.rules}: ${rules.length} valid rules`);
      return 0;
    } catch (err) {
      if (err instanceof RuleFileError) throw new UsageError(err.message);
      throw err;
    }
  }
  if (values.rules) {
    // Fail fast, as a usage error, on a bad file before touching anything.
    try {
      await readRuleFile(values.rules);
    } catch (err) {
      if (err instanceof RuleFileError) throw new UsageError(err.message);
      throw err;
    }
  }
  const config = loadConfig();
  await migrate(config);
  const opts = {
    intervalMs: interval * 1000,
    rulesFile: values.rules,
    seedDefaults: !values["no-defaults"],
  };

  if (values.once) {
    const evaluator = new AlertEvaluator(config, opts);
    try {
      await evaluator.prepare();
      const t = await evaluator.tick();
      console.log(
        t.evaluated
          ? `evaluated ${t.rules} rules: ${t.firing} firing, ${t.transitions} transitions, ${t.queued} notifications queued, ${t.sent} sent, ${t.errors} errors`
          : "another evaluator holds the lock; nothing evaluated",
      );
      return t.errors ? 1 : 0;
    } finally {
      await evaluator.close();
    }
  }

  const running = await startAlertEvaluator(config, opts);
  console.log(`alert evaluator running every ${interval} s (Ctrl-C stops)`);
  const { promise, resolve } = Promise.withResolvers<void>();
  Deno.addSignalListener("SIGINT", () => resolve());
  Deno.addSignalListener("SIGTERM", () => resolve());
  await promise;
  await running.stop();
  return 0;
});
