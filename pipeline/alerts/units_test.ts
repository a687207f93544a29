/**
 * Unit tests of the pure alerting logic: rule validation (each kind of bad
 * rule names its field), the default set and rule files, the state machine
 * (hysteresis, for_secs, min_events, renotify, cooldown, disable), and the
 * notification messages.
 */
import assert from "node:assert/strict";
import {
  type AlertRule,
  breaches,
  isMetricId,
  METRIC_IDS,
  metricInfo,
  recovered,
  RuleValidationError,
  slugify,
  UnknownMetricError,
  validateRule,
} from "./rules.ts";
import { readMetric } from "./metrics.ts";
import {
  DEFAULT_RULES,
  defaultRules,
  parseRuleFile,
  RuleFileError,
} from "./defaults.ts";
import { initialState, type RuleState, step } from "./state_machine.ts";
import { alertEmail, alertSlackPayload, formatValue } from "./messages.ts";

const BASE = {
  name: "High error rate",
  metric: "error_rate",
  window_secs: 300,
  comparison: ">",
  threshold: 15,
};

function fieldsOf(input: unknown): string[] {
  try {
    validateRule(input);
  } catch (err) {
    assert.ok(err instanceof RuleValidationError);
    return err.errors.map((e) => e.field);
  }
  return [];
}

Deno.test("validateRule: a minimal rule gets the documented defaults", () => {
  const r = validateRule(BASE);
  assert.equal(r.id, "high-error-rate");
  assert.deepEqual(r.filter, {});
  assert.equal(r.recover_threshold, null);
  assert.equal(r.severity, "warning");
  assert.deepEqual(r.channels, ["slack"]);
  assert.equal(r.enabled, true);
  assert.equal(r.renotify_secs, 3600);
});

Deno.test("validateRule: each kind of invalid rule names its field", () => {
  const cases: Array<[Record<string, unknown>, string]> = [
    [{ ...BASE, metric: "cpu_load" }, "metric"],
    [{ ...BASE, metric: 7 }, "metric"],
    [{ ...BASE, window_secs: -300 }, "window_secs"],
    [{ ...BASE, window_secs: 2.5 }, "window_secs"],
    [{ ...BASE, window_secs: "5m" }, "window_secs"],
    [{ ...BASE, threshold: "high" }, "threshold"],
    [{ ...BASE, threshold: null }, "threshold"],
    [{ ...BASE, threshold: 150 }, "threshold"], // a percentage
    [{ ...BASE, comparison: "=>" }, "comparison"],
    [{ ...BASE, severity: "page-me" }, "severity"],
    [{ ...BASE, channels: ["pager"] }, "channels"],
    [{ ...BASE, channels: "slack" }, "channels"],
    [{ ...BASE, min_events: -1 }, "min_events"],
    [{ ...BASE, enabled: "yes" }, "enabled"],
    [{ ...BASE, recover_threshold: 20 }, "recover_threshold"],
    [{ ...BASE, id: "Bad Id!" }, "id"],
    [{ ...BASE, name: "" }, "name"],
    [{ ...BASE, name: 42 }, "name"],
    [{ ...BASE, filter: { country: ["XX"] } }, "filter.country"],
    [{ ...BASE, filter: { planet: ["mars"] } }, "filter.planet"],
    [{ ...BASE, filter: { service: ["payment-service"] } }, "filter.service"],
    [{ ...BASE, filter: "DE" }, "filter"],
    [{ ...BASE, colour: "red" }, "colour"],
    [{ ...BASE, renotify_secs: 5 }, "renotify_secs"],
    [
      { ...BASE, metric: "consumer_lag_seconds", filter: { country: ["DE"] } },
      "filter",
    ],
  ];
  for (const [input, field] of cases) {
    assert.deepEqual(fieldsOf(input), [field], JSON.stringify(input));
  }
  for (
    const missing of [
      "name",
      "metric",
      "window_secs",
      "comparison",
      "threshold",
    ]
  ) {
    const input: Record<string, unknown> = { ...BASE };
    delete input[missing];
    assert.ok(fieldsOf(input).includes(missing), missing);
  }
  assert.deepEqual(fieldsOf([BASE]), ["(body)"]);
  const err = (() => {
    try {
      validateRule({ ...BASE, metric: "nope" });
    } catch (e) {
      return e as Error;
    }
  })();
  assert.match(err!.message, /field "metric": unknown metric "nope"/);
});

Deno.test("metric names are own properties only: constructor, __proto__ and friends are unknown", async () => {
  const inherited = [
    "constructor",
    "__proto__",
    "toString",
    "hasOwnProperty",
    "valueOf",
    "__defineGetter__",
  ];
  for (const metric of inherited) {
    assert.deepEqual(fieldsOf({ ...BASE, metric }), ["metric"], metric);
    assert.equal(isMetricId(metric), false);
    assert.throws(() => metricInfo(metric), UnknownMetricError);
  }
  // Parsed from JSON, a "__proto__" key is a field like any other: unknown.
  assert.deepEqual(
    fieldsOf(JSON.parse(`{"__proto__": {"metric": "error_rate"}, "name": "x",
      "metric": "error_rate", "window_secs": 60, "comparison": ">", "threshold": 1}`)),
    ["__proto__"],
  );
  for (const id of METRIC_IDS) assert.ok(isMetricId(id), id);
  // readMetric throws (it used to answer undefined) before touching the db.
  const db = {
    query: () => Promise.reject(new Error("no query expected")),
  };
  for (const metric of inherited) {
    await assert.rejects(
      () =>
        readMetric(
          db,
          { metric, filter: {}, window_secs: 60 } as unknown as AlertRule,
          new Date(),
        ),
      UnknownMetricError,
    );
  }
});

Deno.test("validateRule: filters are normalised; slugify makes ids", () => {
  const r = validateRule({
    ...BASE,
    filter: { country: "DE", event_type: ["search", "error", "search"] },
  });
  assert.deepEqual(r.filter, {
    country: ["DE"],
    event_type: ["error", "search"],
  });
  assert.equal(slugify("  Événements / min (DE) "), "evenements-min-de");
});

Deno.test("breaches / recovered: comparisons and hysteresis band", () => {
  const up = { comparison: ">" as const, threshold: 15, recover_threshold: 10 };
  assert.ok(breaches(up, 15.1));
  assert.ok(!breaches(up, 15));
  assert.ok(!recovered(up, 12), "inside the band: still firing");
  assert.ok(recovered(up, 9.9));
  const down = {
    comparison: "<=" as const,
    threshold: 1,
    recover_threshold: 5,
  };
  assert.ok(breaches(down, 1));
  assert.ok(!recovered(down, 3));
  assert.ok(recovered(down, 5.5));
  const plain = {
    comparison: ">=" as const,
    threshold: 3,
    recover_threshold: null,
  };
  assert.ok(recovered(plain, 2.99) && !recovered(plain, 3));
});

Deno.test("defaults: every default rule is valid, ids unique, all metrics covered", () => {
  const rules = defaultRules();
  assert.equal(new Set(rules.map((r) => r.id)).size, rules.length);
  for (const m of METRIC_IDS) {
    assert.ok(rules.some((r) => r.metric === m), `no default rule for ${m}`);
  }
  assert.ok(
    rules.some((r) => r.metric === "events_per_minute" && r.comparison === "<"),
  );
  assert.ok(
    rules.some((r) => r.metric === "events_per_minute" && r.comparison === ">"),
  );
  // A rule file with the defaults round-trips.
  assert.deepEqual(
    parseRuleFile(JSON.stringify({ rules: DEFAULT_RULES })),
    rules,
  );
});

Deno.test("parseRuleFile: names the file, rule and field; rejects duplicates", () => {
  assert.throws(() => parseRuleFile("{", "r.json"), /r\.json: not valid JSON/);
  assert.throws(() => parseRuleFile('{"x": 1}', "r.json"), /expected a list/);
  assert.throws(
    () =>
      parseRuleFile(
        JSON.stringify([BASE, { ...BASE, window_secs: -1 }]),
        "r.json",
      ),
    (e: Error) =>
      e instanceof RuleFileError &&
      /r\.json: rule 2 \("High error rate"\): field "window_secs"/.test(
        e.message,
      ),
  );
  assert.throws(
    () => parseRuleFile(JSON.stringify([BASE, BASE])),
    /duplicate id "high-error-rate"/,
  );
});

// ------------------------------------------------------- state machine ----

const RULE = validateRule({
  ...BASE,
  recover_threshold: 10,
  min_events: 100,
  renotify_secs: 600,
  cooldown_secs: 0,
});
const T0 = Date.parse("2026-01-01T00:00:00Z");
const at = (s: number) => new Date(T0 + s * 1000);

function run(
  rule: typeof RULE,
  seq: Array<[number, number | null, number?]>,
  start: RuleState = initialState(at(0)),
) {
  let s = start;
  const log: string[] = [];
  for (const [t, value, samples] of seq) {
    const r = step(rule, s, { value, samples: samples ?? 1000 }, at(t));
    for (const tr of r.transitions) log.push(`${t}:${tr.kind}`);
    for (const n of r.notifications) {
      log.push(`${t}:notify-${n.kind}#${n.episode}`);
    }
    s = r.state;
  }
  return { s, log };
}

Deno.test("state machine: fires once, stays quiet, resolves once (hysteresis)", () => {
  const { s, log } = run(RULE, [
    [0, 5],
    [15, 40], // breach → firing + one notification
    [30, 38],
    [45, 12], // under the threshold but inside the band: still firing
    [60, 9], // past the recover threshold → resolved + one message
    [75, 8],
  ]);
  assert.deepEqual(log, [
    "15:firing",
    "15:notify-firing#1",
    "60:resolved",
    "60:notify-resolved#1",
  ]);
  assert.equal(s.state, "ok");
  assert.equal(s.episode, 1);
});

Deno.test("state machine: too few samples is no data: nothing fires or resolves", () => {
  const quiet = run(RULE, [[0, 50, 2], [15, 100, 99]]);
  assert.deepEqual(quiet.log, []);
  const firing = run(RULE, [[0, 40], [15, 0, 3], [30, 0, 500]]);
  assert.deepEqual(firing.log, [
    "0:firing",
    "0:notify-firing#1",
    "30:resolved",
    "30:notify-resolved#1",
  ]);
  // A null value (no rows at all) is no data too.
  assert.deepEqual(run(RULE, [[0, null]]).log, []);
});

Deno.test("state machine: for_secs holds a pending state; a dip clears it", () => {
  const rule = { ...RULE, for_secs: 30 };
  const { log } = run(rule, [
    [0, 40],
    [15, 5], // cleared
    [30, 40],
    [45, 40],
    [60, 40], // held 30 s → firing
  ]);
  assert.deepEqual(log, [
    "0:pending",
    "15:cleared",
    "30:pending",
    "60:firing",
    "60:notify-firing#1",
  ]);
});

Deno.test("state machine: re-notifies every renotify_secs while firing", () => {
  const { log } = run(RULE, [
    [0, 40],
    [300, 40],
    [600, 40], // 600 s after the first message
    [900, 40],
    [1200, 40],
    [1210, 2],
  ]);
  assert.deepEqual(log, [
    "0:firing",
    "0:notify-firing#1",
    "600:renotify",
    "600:notify-renotify#1",
    "1200:renotify",
    "1200:notify-renotify#1",
    "1210:resolved",
    "1210:notify-resolved#1",
  ]);
  assert.deepEqual(
    run({ ...RULE, renotify_secs: 0 }, [[0, 40], [5000, 40]]).log,
    [
      "0:firing",
      "0:notify-firing#1",
    ],
  );
});

Deno.test("state machine: cooldown delays the next firing message of a flapping rule", () => {
  const rule = { ...RULE, cooldown_secs: 120 };
  const { log } = run(rule, [
    [0, 40],
    [15, 2], // resolved
    [30, 40], // fires again: within the cooldown, no message yet
    [45, 2], // resolves: its firing was never sent, so no resolved message
    [60, 40],
    [120, 40], // cooldown over: the firing message goes out now
  ]);
  assert.deepEqual(log, [
    "0:firing",
    "0:notify-firing#1",
    "15:resolved",
    "15:notify-resolved#1",
    "30:firing",
    "45:resolved",
    "60:firing",
    "120:notify-firing#3",
  ]);
});

Deno.test("state machine: disabling a firing rule resolves it with a message", () => {
  const { s } = run(RULE, [[0, 40]]);
  const r = step(
    { ...RULE, enabled: false },
    s,
    { value: 40, samples: 1000 },
    at(10),
  );
  assert.equal(r.state.state, "ok");
  assert.deepEqual(r.transitions.map((t) => t.kind), ["disabled"]);
  assert.deepEqual(r.notifications.map((n) => n.kind), ["resolved"]);
  // Re-enabled and still breaching: a new episode.
  const again = step(RULE, r.state, { value: 40, samples: 1000 }, at(20));
  assert.equal(again.state.episode, 2);
});

Deno.test("state machine: the stored state restores exactly (restart = no re-send)", () => {
  const { s } = run(RULE, [[0, 40]]);
  const restored: RuleState = JSON.parse(
    JSON.stringify(s),
    (k, v) =>
      typeof v === "string" && /At$|since$|Since$/.test(k) ? new Date(v) : v,
  );
  const r = step(RULE, restored, { value: 41, samples: 1000 }, at(15));
  assert.deepEqual(r.notifications, []);
  assert.deepEqual(r.transitions, []);
});

// ------------------------------------------------------------ messages ----

Deno.test("messages: rule, value and threshold in both channels; text stays text", () => {
  const rule = validateRule({
    ...BASE,
    name: "<b>Errors</b> & co",
    filter: { country: ["DE"] },
  });
  const notice = {
    kind: "firing" as const,
    rule,
    episode: 3,
    seq: 7,
    value: 41.234,
    samples: 1200,
    detail: { errors: 495, events: 1200 },
    at: at(0),
    firedAt: at(0),
  };
  const slack = alertSlackPayload(notice);
  assert.match(slack.text, /41\.2 %.*threshold &gt; 15 %/);
  const hostile = alertSlackPayload({
    ...notice,
    rule: { ...notice.rule, name: "<!channel> <https://evil.example|x> & co" },
  });
  assert.ok(!/[<>]/.test(hostile.text), hostile.text);
  assert.match(
    hostile.text,
    /&lt;!channel&gt; &lt;https:\/\/evil\.example\|x&gt; &amp; co/,
  );
  assert.equal(slack.logpipe.notificationId, `${rule.id}/3/firing/7`);
  assert.equal(slack.logpipe.value, 41.234);
  assert.equal(slack.logpipe.threshold, 15);
  const blocks = JSON.stringify(slack.blocks);
  assert.ok(!blocks.includes("<b>"), "mrkdwn-escaped");
  assert.ok(blocks.includes("&lt;b&gt;Errors&lt;/b&gt; &amp; co"));
  const mail = alertEmail(notice);
  assert.match(mail.subject, /\[CRITICAL\]|\[WARNING\]/);
  assert.match(mail.text, /Value: +41\.2 %/);
  assert.match(mail.text, /Threshold: +> 15 %/);
  assert.match(mail.text, /Filter: +country=DE/);
  const resolved = alertEmail({
    ...notice,
    kind: "resolved",
    value: 3,
    at: at(600),
  });
  assert.match(resolved.subject, /\[RESOLVED\]/);
  assert.match(resolved.text, /fired for 10 min/);
  assert.equal(formatValue("events_per_minute", 12345.6), "12,346 events/min");
  assert.equal(formatValue("consumer_lag_seconds", null), "no data");
});
