/**
 * What the notifications say: the original DAG's Slack messages (🎉 run
 * succeeded, 🔴 run failed, ⚠️ task failed) and its "Service Failure Alert"
 * e-mail, built as plain data so they are tested without a network.
 *
 * Event text never goes into HTML: e-mails are text/plain and the Slack
 * payload uses mrkdwn-escaped text only, the top-level `text` included
 * (Slack renders it as mrkdwn too: an unescaped `<!channel>` or
 * `<http://x|y>` in an error message would ping everyone or disguise a link).
 */
import { formatMs } from "../format.ts";
import {
  checkName,
  type ServiceCheck,
  servicesDown,
} from "../probes/verdicts.ts";

/** A run as notifications describe it. */
export interface RunNotice {
  dagId: string;
  runId: string;
  trigger: string;
  /** success_with_warnings: the run succeeded but set data aside (see `warnings`). */
  state: "success" | "success_with_warnings" | "failed";
  durationMs: number;
  rowsLoaded: number;
  filesLoaded: number;
  /** What the run set aside (quarantined rows and files), when it did. */
  warnings?: { count: number; summary: string; examples: string[] };
  /** The task that failed the run, and why. */
  failedTask?: string;
  error?: string;
  /** Names of failing dbt tests, when dbt test failed the run. */
  failingTests?: string[];
  tasks: Array<
    { task: string; state: string; tries: number; durationMs: number }
  >;
}

/** One failed try of a task. */
export interface TaskFailureNotice {
  dagId: string;
  runId: string;
  task: string;
  tryNumber: number;
  maxTries: number;
  error: string;
  durationMs: number;
  /** Set when another try follows. */
  retryInMs?: number;
  failingTests?: string[];
}

/** A Slack-compatible incoming-webhook payload (text + Block Kit). */
export interface SlackPayload {
  text: string;
  blocks: Array<Record<string, unknown>>;
  /** Machine-readable copy for non-Slack receivers (Slack ignores it). */
  logpipe: Record<string, unknown>;
}

/** Escapes the three characters Slack's mrkdwn treats as control. */
export function slackEscape(s: string): string {
  return s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(
    ">",
    "&gt;",
  );
}

function clip(s: string, max = 1500): string {
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

function fieldsBlock(fields: Array<[string, string]>) {
  return {
    type: "section",
    fields: fields.map(([k, v]) => ({
      type: "mrkdwn",
      text: `*${k}*\n${slackEscape(clip(v, 500))}`,
    })),
  };
}

/** The notification kind of a finished run. */
export function runKind(state: RunNotice["state"]): string {
  return state === "failed"
    ? "run_failure"
    : state === "success_with_warnings"
    ? "run_success_with_warnings"
    : "run_success";
}

/** The message for a finished run (success, with warnings, or failure). */
export function runMessage(n: RunNotice): SlackPayload {
  const ok = n.state !== "failed";
  const warned = n.state === "success_with_warnings";
  const head = ok
    ? `${warned ? "⚠️" : "🎉"} DAG ${n.dagId} run ${n.runId} succeeded${
      warned ? " with warnings" : ""
    } in ${
      formatMs(n.durationMs)
    }: ${n.filesLoaded} files, ${n.rowsLoaded} rows loaded${
      n.warnings
        ? `; ${n.warnings.summary}${
          n.warnings.examples.length
            ? `\n${n.warnings.examples.map((e) => `• ${e}`).join("\n")}`
            : ""
        }`
        : ""
    }`
    : `🔴 DAG ${n.dagId} run ${n.runId} failed at ${
      n.failedTask ?? "?"
    } after ${formatMs(n.durationMs)}: ${n.error ?? "unknown error"}`;
  const tests = n.failingTests?.length
    ? `\nFailing dbt tests: ${n.failingTests.join(", ")}`
    : "";
  const grid = n.tasks.map((t) =>
    `${t.state.padEnd(8)} ${t.task} (tries ${t.tries}, ${
      formatMs(t.durationMs)
    })`
  ).join("\n");
  const fields: Array<[string, string]> = [
    ["DAG", n.dagId],
    ["Run", n.runId],
    ["Trigger", n.trigger],
    ["Duration", formatMs(n.durationMs)],
    ["Rows loaded", String(n.rowsLoaded)],
  ];
  if (n.warnings) fields.push(["Quarantined", n.warnings.summary]);
  if (!ok) {
    fields.push(["Failed task", n.failedTask ?? "?"]);
    fields.push(["Error", n.error ?? ""]);
  }
  return {
    text: slackEscape(clip(head + tests, 3000)),
    blocks: [
      {
        type: "section",
        text: { type: "mrkdwn", text: slackEscape(clip(head + tests, 2900)) },
      },
      fieldsBlock(fields),
      {
        type: "section",
        text: {
          type: "mrkdwn",
          text: "```" + slackEscape(clip(grid, 2800)) + "```",
        },
      },
    ],
    logpipe: { kind: runKind(n.state), ...n },
  };
}

/** The message for one failed try of a task. */
export function taskFailureMessage(n: TaskFailureNotice): SlackPayload {
  const next = n.retryInMs !== undefined
    ? `, retrying in ${formatMs(n.retryInMs)}`
    : ", no tries left";
  const tests = n.failingTests?.length
    ? `\nFailing dbt tests: ${n.failingTests.join(", ")}`
    : "";
  const head =
    `⚠️ DAG ${n.dagId} run ${n.runId}: task ${n.task} failed (try ${n.tryNumber}/${n.maxTries}${next}) after ${
      formatMs(n.durationMs)
    }: ${n.error}${tests}`;
  return {
    text: slackEscape(clip(head, 3000)),
    blocks: [
      {
        type: "section",
        text: { type: "mrkdwn", text: slackEscape(clip(head, 2900)) },
      },
      fieldsBlock([
        ["DAG", n.dagId],
        ["Run", n.runId],
        ["Task", n.task],
        ["Try", `${n.tryNumber} of ${n.maxTries}`],
        ["Duration", formatMs(n.durationMs)],
        ["Error", n.error],
      ]),
    ],
    logpipe: { kind: "task_failure", ...n },
  };
}

/** A plain-text e-mail. */
export interface EmailMessage {
  subject: string;
  text: string;
}

/** The "Service Failure Alert" e-mail: which services are down, and why. */
export function servicesDownEmail(
  dagId: string,
  runId: string,
  checks: ServiceCheck[],
  tries: number,
): EmailMessage {
  const down = checks.filter((c) => !c.up);
  const names = servicesDown(checks).join(", ") || "unknown";
  const line = (c: ServiceCheck) => `  - ${checkName(c, checks)}: ${c.detail}`;
  const lines = [
    `The logpipe batch (DAG ${dagId}, run ${runId}) could not start: these services were down after ${tries} tries:`,
    "",
    ...down.map(line),
    "",
    "Services that answered:",
    ...checks.filter((c) => c.up).map(line),
    "",
    "Nothing was loaded by this run; the next scheduled run will load what is pending.",
  ];
  return {
    subject: `[logpipe] Service Failure Alert: ${names} down`,
    text: lines.join("\n"),
  };
}
