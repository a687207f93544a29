/**
 * What alert notifications say, as plain data (tested without a network):
 * a Slack-compatible payload (text + Block Kit + a machine-readable
 * `logpipe` copy) and a text/plain e-mail, in the same shapes as the batch's
 * notifications (pipeline/notify/messages.ts). Rule names are user text:
 * they are mrkdwn-escaped for Slack and never put into HTML.
 */
import {
  type EmailMessage,
  slackEscape,
  type SlackPayload,
} from "../notify/messages.ts";
import { type AlertRule, describeCondition, metricInfo } from "./rules.ts";
import type { NotificationKind } from "./state_machine.ts";

/** Everything a notification describes. */
export interface AlertNotice {
  kind: NotificationKind;
  rule: Pick<
    AlertRule,
    | "id"
    | "name"
    | "metric"
    | "comparison"
    | "threshold"
    | "recover_threshold"
    | "window_secs"
    | "severity"
    | "filter"
  >;
  episode: number;
  seq: number;
  value: number | null;
  samples: number | null;
  detail: Record<string, unknown>;
  at: Date;
  /** When the episode started firing. */
  firedAt: Date | null;
  /** Extra reason (e.g. "rule disabled"). */
  reason?: string;
}

const ICON: Record<NotificationKind, string> = {
  firing: "🚨",
  renotify: "🔁",
  resolved: "✅",
};

/** A value with its metric's unit and sensible precision. */
export function formatValue(
  metric: AlertRule["metric"],
  v: number | null,
): string {
  if (v === null) return "no data";
  const unit = metricInfo(metric).unit;
  const digits = Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2;
  const n = v.toLocaleString("en-US", { maximumFractionDigits: digits });
  return unit === "%" ? `${n} %` : `${n} ${unit}`;
}

function filterText(f: AlertRule["filter"]): string {
  const parts = Object.entries(f).map(([k, v]) =>
    `${k}=${(v ?? []).join(",")}`
  );
  return parts.length ? parts.join(" ") : "all events";
}

function durationText(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 90) return `${s} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

/** The one-line headline of a notification. */
export function alertHeadline(n: AlertNotice): string {
  const value = formatValue(n.rule.metric, n.value);
  const thr = formatValue(n.rule.metric, n.rule.threshold);
  const sev = n.rule.severity.toUpperCase();
  switch (n.kind) {
    case "firing":
      return `${ICON.firing} [${sev}] ${n.rule.name}: ${n.rule.metric} is ${value} (threshold ${n.rule.comparison} ${thr})`;
    case "renotify":
      return `${ICON.renotify} [${sev}] still firing for ${
        durationText(n.at.getTime() - (n.firedAt?.getTime() ?? n.at.getTime()))
      }: ${n.rule.name}: ${n.rule.metric} is ${value} (threshold ${n.rule.comparison} ${thr})`;
    case "resolved":
      return `${ICON.resolved} [RESOLVED] ${n.rule.name}: ${n.rule.metric} is ${value}${
        n.reason ? ` (${n.reason})` : ""
      }, fired for ${
        durationText(n.at.getTime() - (n.firedAt?.getTime() ?? n.at.getTime()))
      }`;
  }
}

/** A stable id receivers can deduplicate on. */
export function notificationId(
  n: Pick<AlertNotice, "rule" | "episode" | "kind" | "seq">,
): string {
  return `${n.rule.id}/${n.episode}/${n.kind}/${n.seq}`;
}

/** The Slack-compatible webhook payload. */
export function alertSlackPayload(n: AlertNotice): SlackPayload {
  const head = alertHeadline(n);
  const fields: Array<[string, string]> = [
    ["Rule", n.rule.name],
    ["Condition", describeCondition(n.rule)],
    ["Value", formatValue(n.rule.metric, n.value)],
    [
      "Threshold",
      `${n.rule.comparison} ${formatValue(n.rule.metric, n.rule.threshold)}`,
    ],
    ["Severity", n.rule.severity],
    ["Filter", filterText(n.rule.filter)],
  ];
  return {
    // Slack renders the top-level text too (notifications, clients without
    // blocks): escaped like the blocks, or a rule named "<!channel>" pings.
    text: slackEscape(head),
    blocks: [
      { type: "section", text: { type: "mrkdwn", text: slackEscape(head) } },
      {
        type: "section",
        fields: fields.map(([k, v]) => ({
          type: "mrkdwn",
          text: `*${k}*\n${slackEscape(v.slice(0, 500))}`,
        })),
      },
    ],
    logpipe: {
      kind: `alert_${n.kind}`,
      notificationId: notificationId(n),
      ruleId: n.rule.id,
      ruleName: n.rule.name,
      metric: n.rule.metric,
      comparison: n.rule.comparison,
      threshold: n.rule.threshold,
      value: n.value,
      samples: n.samples,
      severity: n.rule.severity,
      episode: n.episode,
      filter: n.rule.filter,
      detail: n.detail,
      at: n.at.toISOString(),
      firedAt: n.firedAt?.toISOString() ?? null,
    },
  };
}

/** The plain-text e-mail. */
export function alertEmail(n: AlertNotice): EmailMessage {
  const lines = [
    alertHeadline(n),
    "",
    `Rule:       ${n.rule.name} (${n.rule.id})`,
    `Condition:  ${describeCondition(n.rule)}`,
    `Value:      ${formatValue(n.rule.metric, n.value)}`,
    `Threshold:  ${n.rule.comparison} ${
      formatValue(n.rule.metric, n.rule.threshold)
    }`,
    `Severity:   ${n.rule.severity}`,
    `Filter:     ${filterText(n.rule.filter)}`,
    `Details:    ${
      Object.entries(n.detail).map(([k, v]) => `${k}=${v}`).join(", ") || "-"
    }`,
    `At:         ${n.at.toISOString()}`,
    ...(n.firedAt ? [`Firing since: ${n.firedAt.toISOString()}`] : []),
    "",
    `Notification id: ${notificationId(n)}`,
  ];
  const tag = n.kind === "resolved"
    ? "RESOLVED"
    : n.rule.severity.toUpperCase();
  return {
    subject: `[logpipe alert] [${tag}] ${n.rule.name}`.slice(0, 200),
    text: lines.join("\n"),
  };
}
