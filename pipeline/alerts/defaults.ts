/**
 * The default rule set (created once, on the first start of the evaluator
 * or the API) and rule files: JSON kept in git, validated with the same
 * validator as the API.
 *
 * Default thresholds are set against the generator's normal traffic: a
 * 0.5-2.5 % background error rate, incidents at 15-45 % in one service, about
 * 8-10 % failed orders (each rule's description says why; docs/alerts.md).
 */
import { type AlertRule, RuleValidationError, validateRule } from "./rules.ts";

/** The default rules, as a person would write them in a rule file. */
export const DEFAULT_RULES: Record<string, unknown>[] = [
  {
    id: "high-error-rate",
    name: "High error rate",
    description:
      "More than 15 % of events are errors over 5 minutes (normal: under 3 %). Resolves below 10 %.",
    metric: "error_rate",
    window_secs: 300,
    comparison: ">",
    threshold: 15,
    recover_threshold: 10,
    min_events: 200,
    severity: "critical",
    channels: ["slack", "email"],
    renotify_secs: 3600,
    cooldown_secs: 600,
  },
  {
    id: "high-failed-order-rate",
    name: "High failed-order rate",
    description:
      "More than 25 % of orders fail over 10 minutes (normal: about 10 %). Resolves below 18 %.",
    metric: "failed_order_rate",
    window_secs: 600,
    comparison: ">",
    threshold: 25,
    recover_threshold: 18,
    min_events: 50,
    severity: "warning",
    channels: ["slack"],
    renotify_secs: 3600,
    cooldown_secs: 600,
  },
  {
    id: "pipeline-stalled",
    name: "Pipeline stalled: too few events",
    description:
      "Fewer than 1 event per minute reached HDFS over 5 minutes: the producer or the consumer stopped.",
    metric: "events_per_minute",
    window_secs: 300,
    comparison: "<",
    threshold: 1,
    recover_threshold: 5,
    severity: "critical",
    channels: ["slack", "email"],
    renotify_secs: 3600,
    cooldown_secs: 600,
  },
  {
    id: "event-spike",
    name: "Event spike",
    description:
      "More than 60,000 events per minute over 5 minutes (1,000/s; the default producer sends 100/s).",
    metric: "events_per_minute",
    window_secs: 300,
    comparison: ">",
    threshold: 60000,
    recover_threshold: 40000,
    severity: "warning",
    channels: ["slack"],
    renotify_secs: 3600,
    cooldown_secs: 600,
  },
  {
    id: "slow-processing",
    name: "Slow processing (latency p95)",
    description:
      "Event time → committed to HDFS takes more than 60 s at the 95th percentile over 5 minutes.",
    metric: "latency_p95_ms",
    window_secs: 300,
    comparison: ">",
    threshold: 60000,
    recover_threshold: 30000,
    min_events: 100,
    severity: "warning",
    channels: ["slack"],
    renotify_secs: 3600,
    cooldown_secs: 600,
  },
  {
    id: "consumer-lag",
    name: "Consumer lagging",
    description:
      "The oldest record not yet committed to HDFS is more than 7 minutes old (files rotate every 5 minutes, so up to 5 is normal).",
    metric: "consumer_lag_seconds",
    window_secs: 60,
    comparison: ">",
    threshold: 420,
    recover_threshold: 330,
    severity: "critical",
    channels: ["slack", "email"],
    renotify_secs: 3600,
    cooldown_secs: 600,
  },
  {
    id: "dead-letters",
    name: "Dead letters",
    description:
      "More than 10 records per minute go to the dead-letter zone over 5 minutes.",
    metric: "dead_letters_per_minute",
    window_secs: 300,
    comparison: ">",
    threshold: 10,
    recover_threshold: 2,
    severity: "warning",
    channels: ["slack"],
    renotify_secs: 3600,
    cooldown_secs: 600,
  },
  {
    id: "revenue-drop",
    name: "Revenue drop",
    description:
      "Revenue of the last hour is under 50 % of the same hour's average over the previous 7 days (needs 3 days of history).",
    metric: "revenue_vs_hour_avg",
    window_secs: 3600,
    comparison: "<",
    threshold: 50,
    recover_threshold: 70,
    min_events: 3,
    severity: "warning",
    channels: ["slack"],
    renotify_secs: 10800,
    cooldown_secs: 3600,
  },
  {
    id: "batch-late",
    name: "Batch late",
    description:
      "No successful batch run for 30 minutes (it runs every 10; three missed runs).",
    metric: "minutes_since_last_batch",
    window_secs: 60,
    comparison: ">",
    threshold: 30,
    recover_threshold: 15,
    severity: "critical",
    channels: ["slack", "email"],
    renotify_secs: 3600,
    cooldown_secs: 600,
  },
  {
    id: "skipped-offsets",
    name: "Kafka offsets skipped",
    description:
      "The stream consumer did not read some offsets in the last hour (retention deleted them first, or a position reset): those records never reach HDFS.",
    metric: "skipped_offsets",
    window_secs: 3600,
    comparison: ">",
    threshold: 0,
    severity: "critical",
    channels: ["slack", "email"],
    renotify_secs: 3600,
    cooldown_secs: 600,
  },
];

/** The default rules, validated. */
export function defaultRules(): AlertRule[] {
  return DEFAULT_RULES.map((r) => validateRule(r));
}

/** A rule file that cannot be used; the message names the rule and field. */
export class RuleFileError extends Error {
  override name = "RuleFileError";
}

/**
 * Parses a rule file's text: `[rule, ...]` or `{"rules": [rule, ...]}`.
 * Every rule is validated; ids must be unique. Throws RuleFileError.
 */
export function parseRuleFile(text: string, path = "rules file"): AlertRule[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new RuleFileError(
      `${path}: not valid JSON (${err instanceof Error ? err.message : err})`,
    );
  }
  const list = Array.isArray(doc) ? doc : doc && typeof doc === "object" &&
      Array.isArray((doc as { rules?: unknown }).rules)
    ? (doc as { rules: unknown[] }).rules
    : undefined;
  if (!list) {
    throw new RuleFileError(
      `${path}: expected a list of rules or {"rules": [...]}`,
    );
  }
  const seen = new Set<string>();
  return list.map((raw, i) => {
    let rule: AlertRule;
    try {
      rule = validateRule(raw);
    } catch (err) {
      if (err instanceof RuleValidationError) {
        const label = raw && typeof raw === "object" &&
            typeof (raw as { name?: unknown }).name === "string"
          ? ` ("${(raw as { name: string }).name}")`
          : "";
        throw new RuleFileError(
          `${path}: rule ${i + 1}${label}: ${err.message}`,
        );
      }
      throw err;
    }
    if (seen.has(rule.id)) {
      throw new RuleFileError(
        `${path}: rule ${i + 1}: duplicate id "${rule.id}"`,
      );
    }
    seen.add(rule.id);
    return rule;
  });
}

/** Reads and parses a rule file. */
export async function readRuleFile(path: string): Promise<AlertRule[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    throw new RuleFileError(
      `cannot read rules file ${path}: ${
        err instanceof Error ? err.message : err
      }`,
    );
  }
  return parseRuleFile(text, path);
}
