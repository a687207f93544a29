/**
 * The alert rule model: what a rule is, the metrics it may watch, and the
 * one validator every entry point uses (API, JSON rule files, the default
 * set). Validation errors name the field, so the API can answer 400 with
 * the reason and a rule file fails with a line a person can act on.
 */
import { COUNTRIES, DEVICE_TYPES, EVENT_TYPES } from "../events/schema.ts";

/** How a metric's value compares with the threshold. */
export const COMPARISONS = [">", ">=", "<", "<="] as const;
export type Comparison = (typeof COMPARISONS)[number];

export const SEVERITIES = ["info", "warning", "critical"] as const;
export type Severity = (typeof SEVERITIES)[number];

export const CHANNELS = ["slack", "email"] as const;
export type Channel = (typeof CHANNELS)[number];

/** Filter dimensions of the live event counts. */
export const FILTER_KEYS = ["event_type", "country", "device"] as const;
export type FilterKey = (typeof FILTER_KEYS)[number];
export type RuleFilter = Partial<Record<FilterKey, string[]>>;

/** What the evaluator knows about a metric. */
export interface MetricInfo {
  label: string;
  unit: string;
  description: string;
  /** Accepts event filters (event type, country, device). */
  filterable: boolean;
  /** What "samples" counts (min_events compares against it); null = not gated. */
  samples: string | null;
  /** Shortest and longest window that makes sense for the metric. */
  minWindowSecs: number;
  maxWindowSecs: number;
}

/** Every metric a rule can watch, keyed by its id. */
export const METRICS = {
  error_rate: {
    label: "Error rate",
    unit: "%",
    description:
      "share of events with level ERROR in the window (monitoring.event_counts)",
    filterable: true,
    samples: "events",
    minWindowSecs: 10,
    maxWindowSecs: 86_400,
  },
  failed_order_rate: {
    label: "Failed-order rate",
    unit: "%",
    description:
      "order_failed / (order_complete + order_failed) in the window (monitoring.event_counts)",
    filterable: true,
    samples: "orders",
    minWindowSecs: 10,
    maxWindowSecs: 86_400,
  },
  events_per_minute: {
    label: "Events per minute",
    unit: "events/min",
    description:
      "events committed by the stream consumer per minute, averaged over the window; too low = the pipeline stalled, too high = a spike",
    filterable: true,
    samples: null,
    minWindowSecs: 10,
    maxWindowSecs: 86_400,
  },
  latency_p95_ms: {
    label: "Processing latency p95",
    unit: "ms",
    description:
      "event time → committed to HDFS, 95th percentile per 10 s bucket, averaged over the window weighted by events (monitoring.consumer_stats)",
    filterable: false,
    samples: "events",
    minWindowSecs: 10,
    maxWindowSecs: 86_400,
  },
  consumer_lag_seconds: {
    label: "Consumer lag",
    unit: "s",
    description:
      "age of the oldest record the stream consumer has not committed, worst partition (Kafka offsets + record timestamps; monitoring.consumer_lag when Kafka is unreachable)",
    filterable: false,
    samples: null,
    minWindowSecs: 10,
    maxWindowSecs: 86_400,
  },
  dead_letters_per_minute: {
    label: "Dead letters per minute",
    unit: "records/min",
    description:
      "records sent to the dead-letter zone per minute, averaged over the window (monitoring.dead_letter_counts)",
    filterable: false,
    samples: null,
    minWindowSecs: 10,
    maxWindowSecs: 86_400,
  },
  revenue_vs_hour_avg: {
    label: "Revenue vs. the same hour's average",
    unit: "%",
    description:
      "revenue of the trailing window as a percentage of the average revenue of the same time window on each of the previous 7 days that had traffic (100 = usual)",
    filterable: true,
    samples: "baseline days",
    minWindowSecs: 300,
    maxWindowSecs: 86_400,
  },
  skipped_offsets: {
    label: "Skipped Kafka offsets",
    unit: "records",
    description:
      "offsets the stream consumer did not read in the window: deleted by retention before they were read, missing between two records, or left behind by --reset-to-earliest (monitoring.skipped_offsets)",
    filterable: false,
    samples: null,
    minWindowSecs: 10,
    maxWindowSecs: 86_400,
  },
  minutes_since_last_batch: {
    label: "Minutes since the last successful batch",
    unit: "min",
    description:
      "minutes since the newest successful batch run ended (ops.dag_runs); the window is not used",
    filterable: false,
    samples: null,
    minWindowSecs: 10,
    maxWindowSecs: 86_400,
  },
} as const satisfies Record<string, MetricInfo>;

export type MetricId = keyof typeof METRICS;
export const METRIC_IDS = Object.keys(METRICS) as MetricId[];

/**
 * True when `id` names a metric of METRICS. An OWN-property lookup: `id in
 * METRICS` (or METRICS[id]) also sees what every object inherits, so
 * `constructor`, `__proto__` or `toString` would pass as metrics.
 */
export function isMetricId(id: unknown): id is MetricId {
  return typeof id === "string" && Object.hasOwn(METRICS, id);
}

/** A rule names a metric the evaluator does not know. */
export class UnknownMetricError extends Error {
  override name = "UnknownMetricError";
  constructor(readonly metric: string) {
    super(
      `unknown metric "${metric.slice(0, 60)}" (known: ${
        METRIC_IDS.join(", ")
      })`,
    );
  }
}

/** What the evaluator knows about `id`; throws UnknownMetricError otherwise. */
export function metricInfo(id: string): MetricInfo {
  if (!isMetricId(id)) throw new UnknownMetricError(id);
  return METRICS[id];
}

/** A validated rule, as stored in monitoring.alert_rules. */
export interface AlertRule {
  id: string;
  name: string;
  description: string;
  metric: MetricId;
  filter: RuleFilter;
  window_secs: number;
  comparison: Comparison;
  threshold: number;
  recover_threshold: number | null;
  min_events: number;
  for_secs: number;
  severity: Severity;
  channels: Channel[];
  renotify_secs: number;
  cooldown_secs: number;
  enabled: boolean;
}

/** One problem with a rule: the field and what is wrong with it. */
export interface FieldError {
  field: string;
  message: string;
}

/** A rule that failed validation; `message` names the first bad field. */
export class RuleValidationError extends Error {
  override name = "RuleValidationError";
  constructor(readonly errors: FieldError[]) {
    super(
      errors.map((e) => `field "${e.field}": ${e.message}`).join("; "),
    );
  }
}

const ID_RE = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const MAX_SECS = 7 * 86_400;

/** True for > and >= (the rule fires on high values). */
export function isUpward(c: Comparison): boolean {
  return c === ">" || c === ">=";
}

/** Makes an id from a name: "High error rate (DE)" → "high-error-rate-de". */
export function slugify(name: string): string {
  const s = name.toLowerCase().normalize("NFKD").replace(/\p{M}+/gu, "")
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "").slice(0, 56);
  return s || "rule";
}

type Raw = Record<string, unknown>;

const ALLOWED_FIELDS = new Set([
  "id",
  "name",
  "description",
  "metric",
  "filter",
  "window_secs",
  "comparison",
  "threshold",
  "recover_threshold",
  "min_events",
  "for_secs",
  "severity",
  "channels",
  "renotify_secs",
  "cooldown_secs",
  "enabled",
]);

/** Defaults for the optional fields of a new rule. */
export const RULE_DEFAULTS = {
  description: "",
  filter: {},
  recover_threshold: null,
  min_events: 0,
  for_secs: 0,
  severity: "warning",
  channels: ["slack"],
  renotify_secs: 3600,
  cooldown_secs: 300,
  enabled: true,
} as const;

// deno-lint-ignore no-control-regex -- rejecting control characters
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

/**
 * Reads a rule's fields one by one, collecting a FieldError for each bad
 * one (in the order read) instead of stopping at the first.
 */
class FieldReader {
  readonly errors: FieldError[] = [];
  constructor(readonly r: Raw) {}

  /** Records what is wrong with `field`. */
  err(field: string, message: string): void {
    this.errors.push({ field, message });
  }

  /** A trimmed string of at most `max` characters, no control characters. */
  str(field: string, max: number, required: boolean): string | undefined {
    const v = this.r[field];
    if (v === undefined || v === null) {
      if (required) this.err(field, "is required");
      return undefined;
    }
    if (typeof v !== "string") {
      this.err(field, `must be a string, got ${typeOf(v)}`);
      return undefined;
    }
    const t = v.trim();
    if (required && !t) this.err(field, "must not be empty");
    else if (t.length > max) {
      this.err(field, `must be at most ${max} characters`);
    } else if (CONTROL_CHARS.test(t)) {
      this.err(field, "must not contain control characters");
    }
    return t;
  }

  /** A finite number. */
  num(field: string, required: boolean): number | undefined {
    const v = this.r[field];
    if (v === undefined || v === null) {
      if (required) this.err(field, "is required");
      return undefined;
    }
    if (typeof v !== "number" || !Number.isFinite(v)) {
      this.err(field, `must be a finite number, got ${typeOf(v)}`);
      return undefined;
    }
    return v;
  }

  /** A whole number of seconds in [min, max]; `fallback` when absent or not an integer. */
  secs(field: string, min: number, max: number, fallback: number): number {
    const v = this.r[field];
    if (v === undefined) return fallback;
    if (typeof v !== "number" || !Number.isInteger(v)) {
      this.err(field, `must be an integer number of seconds, got ${typeOf(v)}`);
      return fallback;
    }
    if (v < min || v > max) {
      this.err(field, `must be between ${min} and ${max} seconds, got ${v}`);
    }
    return v;
  }
}

/** Rejects fields a rule does not have. */
function checkKnownFields(f: FieldReader): void {
  for (const k of Object.keys(f.r)) {
    if (!ALLOWED_FIELDS.has(k)) {
      f.err(k, `unknown field (allowed: ${[...ALLOWED_FIELDS].join(", ")})`);
    }
  }
}

/** name, description and id (made from the name when absent). */
function readNaming(f: FieldReader) {
  const name = f.str("name", 120, true);
  const description = f.str("description", 1000, false) ??
    RULE_DEFAULTS.description;
  let id = f.r.id === undefined ? undefined : f.str("id", 64, true);
  if (id !== undefined && !ID_RE.test(id)) {
    f.err("id", "must be 1-64 lowercase letters, digits, '-' or '_'");
  }
  id ??= name ? slugify(name) : undefined;
  return { name, description, id };
}

/** The metric, and the window its values are taken over (bounds by metric). */
function readMetric(f: FieldReader) {
  const { r } = f;
  let metric: MetricId | undefined;
  if (r.metric === undefined) f.err("metric", "is required");
  else if (typeof r.metric !== "string") {
    f.err("metric", `must be a string, got ${typeOf(r.metric)}`);
  } else if (!isMetricId(r.metric)) {
    f.err("metric", new UnknownMetricError(r.metric).message);
  } else metric = r.metric;
  const info: MetricInfo | undefined = metric ? METRICS[metric] : undefined;

  let windowSecs = 0;
  if (r.window_secs === undefined) f.err("window_secs", "is required");
  else {
    windowSecs = f.secs(
      "window_secs",
      info?.minWindowSecs ?? 10,
      info?.maxWindowSecs ?? 86_400,
      0,
    );
  }
  return { metric, info, windowSecs };
}

/**
 * comparison, threshold and recover_threshold: the recover threshold lies on
 * the safe side of the threshold; percentages lie in [0, 100].
 */
function readCondition(
  f: FieldReader,
  metric: MetricId | undefined,
  info: MetricInfo | undefined,
) {
  const { r } = f;
  let comparison: Comparison | undefined;
  if (r.comparison === undefined) f.err("comparison", "is required");
  else if (!COMPARISONS.includes(r.comparison as Comparison)) {
    f.err("comparison", `must be one of ${COMPARISONS.join(" ")}`);
  } else comparison = r.comparison as Comparison;

  const threshold = f.num("threshold", true);
  const recover = f.num("recover_threshold", false) ?? null;
  if (
    recover !== null && threshold !== undefined && comparison !== undefined
  ) {
    if (isUpward(comparison) && recover > threshold) {
      f.err(
        "recover_threshold",
        `must be at most the threshold (${threshold}) for "${comparison}" rules`,
      );
    }
    if (!isUpward(comparison) && recover < threshold) {
      f.err(
        "recover_threshold",
        `must be at least the threshold (${threshold}) for "${comparison}" rules`,
      );
    }
  }
  if (info?.unit === "%" && metric !== "revenue_vs_hour_avg") {
    for (
      const [field, v] of [["threshold", threshold], [
        "recover_threshold",
        recover,
      ]] as const
    ) {
      if (typeof v === "number" && (v < 0 || v > 100)) {
        f.err(
          field,
          `is a percentage for ${metric}: must be between 0 and 100`,
        );
      }
    }
  }
  return { comparison, threshold, recover };
}

/** min_events, for_secs, renotify_secs and cooldown_secs (defaults when absent). */
function readTiming(f: FieldReader) {
  const { r } = f;
  let minEvents: number = RULE_DEFAULTS.min_events;
  if (r.min_events !== undefined) {
    if (
      typeof r.min_events !== "number" || !Number.isInteger(r.min_events) ||
      r.min_events < 0 || r.min_events > 1e9
    ) {
      f.err("min_events", "must be an integer between 0 and 1000000000");
    } else minEvents = r.min_events;
  }
  const forSecs = f.secs("for_secs", 0, MAX_SECS, RULE_DEFAULTS.for_secs);
  const renotify = f.secs(
    "renotify_secs",
    0,
    MAX_SECS,
    RULE_DEFAULTS.renotify_secs,
  );
  if (renotify > 0 && renotify < 10) {
    f.err("renotify_secs", "must be 0 (never) or at least 10 seconds");
  }
  const cooldown = f.secs(
    "cooldown_secs",
    0,
    MAX_SECS,
    RULE_DEFAULTS.cooldown_secs,
  );
  return { minEvents, forSecs, renotify, cooldown };
}

/** severity, channels and enabled (defaults when absent). */
function readDelivery(f: FieldReader) {
  const { r } = f;
  let severity: Severity = RULE_DEFAULTS.severity;
  if (r.severity !== undefined) {
    if (!SEVERITIES.includes(r.severity as Severity)) {
      f.err("severity", `must be one of ${SEVERITIES.join(", ")}`);
    } else severity = r.severity as Severity;
  }

  let channels: Channel[] = [...RULE_DEFAULTS.channels];
  if (r.channels !== undefined) {
    if (
      !Array.isArray(r.channels) ||
      r.channels.some((c) => !CHANNELS.includes(c as Channel))
    ) {
      f.err(
        "channels",
        `must be a list of ${CHANNELS.join(", ")} (empty = record only)`,
      );
    } else channels = [...new Set(r.channels as Channel[])];
  }

  let enabled: boolean = RULE_DEFAULTS.enabled;
  if (r.enabled !== undefined) {
    if (typeof r.enabled !== "boolean") {
      f.err("enabled", `must be true or false, got ${typeOf(r.enabled)}`);
    } else enabled = r.enabled;
  }
  return { severity, channels, enabled };
}

/**
 * Validates `input` (parsed JSON) as a complete rule; fills optional fields
 * with RULE_DEFAULTS. Throws RuleValidationError listing every bad field.
 */
export function validateRule(input: unknown): AlertRule {
  if (input === null || typeof input !== "object" || Array.isArray(input)) {
    throw new RuleValidationError([{
      field: "(body)",
      message: "a rule must be a JSON object",
    }]);
  }
  const f = new FieldReader(input as Raw);
  checkKnownFields(f);
  const { name, description, id } = readNaming(f);
  const { metric, info, windowSecs } = readMetric(f);
  const { comparison, threshold, recover } = readCondition(f, metric, info);
  const { minEvents, forSecs, renotify, cooldown } = readTiming(f);
  const { severity, channels, enabled } = readDelivery(f);
  const filter = validateFilter(
    f.r.filter,
    info,
    metric,
    (field, message) => f.err(field, message),
  );

  if (f.errors.length) throw new RuleValidationError(f.errors);
  return {
    id: id!,
    name: name!,
    description,
    metric: metric!,
    filter,
    window_secs: windowSecs,
    comparison: comparison!,
    threshold: threshold!,
    recover_threshold: recover,
    min_events: minEvents,
    for_secs: forSecs,
    severity,
    channels,
    renotify_secs: renotify,
    cooldown_secs: cooldown,
    enabled,
  };
}

const FILTER_VALUES: Record<FilterKey, readonly string[]> = {
  event_type: EVENT_TYPES,
  country: Object.keys(COUNTRIES),
  device: DEVICE_TYPES,
};

function validateFilter(
  raw: unknown,
  info: MetricInfo | undefined,
  metric: string | undefined,
  err: (field: string, message: string) => void,
): RuleFilter {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== "object" || Array.isArray(raw)) {
    err("filter", 'must be an object like {"country": ["DE"]}');
    return {};
  }
  const out: RuleFilter = {};
  for (const [k, v] of Object.entries(raw as Raw)) {
    if (k === "service") {
      // monitoring.event_counts has no service dimension (yet).
      err(
        "filter.service",
        "is not supported: the live event counts carry no service dimension; filter by event_type instead",
      );
      continue;
    }
    if (!FILTER_KEYS.includes(k as FilterKey)) {
      err(`filter.${k}`, `unknown filter (known: ${FILTER_KEYS.join(", ")})`);
      continue;
    }
    const list = typeof v === "string" ? [v] : v;
    const allowed = FILTER_VALUES[k as FilterKey];
    if (
      !Array.isArray(list) || list.length === 0 ||
      list.some((x) => typeof x !== "string" || !allowed.includes(x))
    ) {
      err(
        `filter.${k}`,
        `must be a non-empty list of ${allowed.slice(0, 12).join(", ")}${
          allowed.length > 12 ? ", …" : ""
        }`,
      );
      continue;
    }
    out[k as FilterKey] = [...new Set(list as string[])].sort();
  }
  if (Object.keys(out).length && info && !info.filterable) {
    err("filter", `metric ${metric} takes no filter`);
  }
  return out;
}

function typeOf(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "string") return `the string "${v.slice(0, 40)}"`;
  return `a ${typeof v}`;
}

/** True when `value` breaches the rule's condition. */
export function breaches(
  rule: Pick<AlertRule, "comparison" | "threshold">,
  value: number,
): boolean {
  switch (rule.comparison) {
    case ">":
      return value > rule.threshold;
    case ">=":
      return value >= rule.threshold;
    case "<":
      return value < rule.threshold;
    case "<=":
      return value <= rule.threshold;
  }
}

/**
 * True when a firing rule may resolve: the value is back past the recover
 * threshold (hysteresis), or simply no longer breaching when there is none.
 */
export function recovered(
  rule: Pick<AlertRule, "comparison" | "threshold" | "recover_threshold">,
  value: number,
): boolean {
  if (rule.recover_threshold === null) return !breaches(rule, value);
  return isUpward(rule.comparison)
    ? value < rule.recover_threshold
    : value > rule.recover_threshold;
}

/** "error_rate > 15 % over 5 min" */
export function describeCondition(
  rule: Pick<AlertRule, "metric" | "comparison" | "threshold" | "window_secs">,
): string {
  const info = metricInfo(rule.metric);
  const unit = info.unit === "%" ? " %" : ` ${info.unit}`;
  const win = rule.metric === "minutes_since_last_batch"
    ? ""
    : ` over ${formatSecs(rule.window_secs)}`;
  return `${rule.metric} ${rule.comparison} ${rule.threshold}${unit}${win}`;
}

/** 300 → "5 min", 90 → "90 s", 7200 → "2 h". */
export function formatSecs(s: number): string {
  if (s % 3600 === 0) return `${s / 3600} h`;
  if (s % 60 === 0) return `${s / 60} min`;
  return `${s} s`;
}
