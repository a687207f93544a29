import assert from "node:assert/strict";
import { logger } from "../log.ts";
import {
  runMessage,
  servicesDownEmail,
  slackEscape,
  taskFailureMessage,
} from "./messages.ts";
import { Notifier } from "./notifier.ts";
import { downCheck } from "../probes/verdicts.ts";
import { startSmtpReceiver, startWebhookReceiver } from "./receivers.ts";
import { postWebhook } from "./webhook.ts";

const run = {
  dagId: "logpipe_batch",
  runId: "manual__20260101T000000000Z__abcdef",
  trigger: "manual",
  durationMs: 65_000,
  rowsLoaded: 1200,
  filesLoaded: 6,
  tasks: [{
    task: "check_services.check_services",
    state: "success",
    tries: 1,
    durationMs: 120,
  }],
};

Deno.test("messages name DAG, run, task, try, error and duration", () => {
  const ok = runMessage({ ...run, state: "success" });
  assert.match(
    ok.text,
    /^🎉 DAG logpipe_batch run manual__\S+ succeeded in 1 min 5 s: 6 files, 1200 rows/,
  );
  const bad = runMessage({
    ...run,
    state: "failed",
    failedTask: "dbt.dbt_test",
    error: "dbt test: 1 failing",
    failingTests: ["unique_fact_event_event_sk"],
  });
  assert.match(bad.text, /🔴 .* failed at dbt\.dbt_test/);
  assert.match(bad.text, /Failing dbt tests: unique_fact_event_event_sk/);
  const t = taskFailureMessage({
    dagId: "logpipe_batch",
    runId: "r",
    task: "validate_and_process.load_raw_events",
    tryNumber: 1,
    maxTries: 4,
    error: "connect ECONNREFUSED",
    durationMs: 30,
    retryInMs: 5000,
  });
  assert.match(
    t.text,
    /⚠️ .*load_raw_events failed \(try 1\/4, retrying in 5\.0 s\).*ECONNREFUSED/,
  );
  assert.equal(t.logpipe.kind, "task_failure");
});

Deno.test("event text is escaped for Slack mrkdwn", () => {
  assert.equal(slackEscape("<script>&"), "&lt;script&gt;&amp;");
  const t = taskFailureMessage({
    dagId: "d",
    runId: "r",
    task: "x",
    tryNumber: 1,
    maxTries: 1,
    error: "<b>bad</b>",
    durationMs: 1,
  });
  const block = JSON.stringify(t.blocks);
  assert.ok(!block.includes("<b>"), "no raw HTML in blocks");
});

Deno.test("the top-level Slack text is escaped too", () => {
  const hostile = "<!channel> <http://evil.example|click> & co";
  const run1 = runMessage({
    ...run,
    state: "failed",
    failedTask: "x",
    error: hostile,
  });
  const task = taskFailureMessage({
    dagId: "d",
    runId: "r",
    task: "x",
    tryNumber: 1,
    maxTries: 1,
    error: hostile,
    durationMs: 1,
  });
  for (const m of [run1, task]) {
    assert.ok(!m.text.includes("<"), m.text);
    assert.match(
      m.text,
      /&lt;!channel&gt; &lt;http:\/\/evil\.example\|click&gt; &amp; co/,
    );
  }
});

Deno.test("webhooks: redirects are not followed; errors hide the URL's secret path", async () => {
  const target = startWebhookReceiver();
  const redirector = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () =>
      new Response(null, { status: 307, headers: { location: target.url } }),
  );
  const secretPath = "/services/T000/B000/s3cr3tPathToken";
  try {
    const from = `http://127.0.0.1:${redirector.addr.port}${secretPath}`;
    await assert.rejects(
      () => postWebhook(from, { text: "hi" }, { retryDelayMs: 1 }),
      (e: Error) =>
        /HTTP 307 \(a redirect; not followed\)/.test(e.message) &&
        !e.message.includes("s3cr3t"),
    );
    assert.equal(target.received.length, 0, "the redirect was followed");
    // A network error names the origin only (fetch quotes the whole URL).
    await assert.rejects(
      () =>
        postWebhook(`http://127.0.0.1:1${secretPath}`, {}, {
          attempts: 1,
        }),
      (e: Error) =>
        e.message.includes("http://127.0.0.1:1/…") &&
        !e.message.includes("s3cr3t"),
    );
  } finally {
    await redirector.shutdown();
    await target.close();
  }
});

Deno.test("service-down e-mail names the services that are down", () => {
  const m = servicesDownEmail("d", "r", [
    downCheck("hdfs", "NameNode", "connection refused"),
    { ...downCheck("kafka", "broker 1 of 1", "1 broker"), up: true },
  ], 3);
  assert.equal(m.subject, "[logpipe] Service Failure Alert: HDFS down");
  assert.match(m.text, /- HDFS: connection refused/);
  assert.match(m.text, /answered:\n {2}- Kafka: 1 broker/);
});

Deno.test("service-down e-mail: a service of several checks is named once, each check by role", () => {
  const m = servicesDownEmail("d", "r", [
    downCheck("kafka", "broker 1 of 2", "not registered"),
    downCheck("kafka", "broker 2 of 2", "not registered"),
    { ...downCheck("postgres", "database", "select 1 ok"), up: true },
  ], 1);
  assert.equal(m.subject, "[logpipe] Service Failure Alert: Kafka down");
  assert.match(m.text, /- Kafka broker 2 of 2: not registered/);
  assert.match(m.text, /- PostgreSQL: select 1 ok/);
});

Deno.test("notifier posts to a real webhook receiver and e-mails through a real SMTP server", async () => {
  const hook = startWebhookReceiver();
  const smtp = await startSmtpReceiver();
  try {
    const n = new Notifier({
      slackWebhookUrl: hook.url,
      smtpUrl: smtp.url,
      emailFrom: "logpipe@localhost",
      emailTo: ["ops@example.com", "oncall@example.com"],
    }, logger("notify-test"));
    await n.runFinished({ ...run, state: "success" });
    await n.servicesDown("logpipe_batch", "r1", [
      downCheck("hdfs", "NameNode", "NameNode down"),
    ], 3);
    assert.equal(hook.received.length, 1);
    assert.equal(hook.received[0].body.logpipe?.kind, "run_success");
    const mail = await smtp.waitFor(() => true);
    assert.deepEqual(mail.to, ["ops@example.com", "oncall@example.com"]);
    assert.match(mail.subject, /Service Failure Alert: HDFS down/);
    assert.match(mail.raw, /NameNode down/);
  } finally {
    await hook.close();
    await smtp.close();
  }
});

Deno.test("notification failures never throw; unconfigured channels only log", async () => {
  const hook = startWebhookReceiver({ status: 500 });
  try {
    const broken = new Notifier({
      slackWebhookUrl: hook.url,
      smtpUrl: "smtp://127.0.0.1:1",
      emailFrom: "a@b",
      emailTo: ["c@d"],
    }, logger("notify-test"));
    await broken.runFinished({ ...run, state: "failed", error: "x" });
    await broken.servicesDown("d", "r", [
      downCheck("kafka", "broker 1 of 1", "x"),
    ], 1);
    assert.equal(hook.received.length, 3, "5xx is retried, then given up");
    const none = new Notifier({
      slackWebhookUrl: undefined,
      smtpUrl: undefined,
      emailFrom: "a@b",
      emailTo: [],
    });
    await none.runFinished({ ...run, state: "success" });
    await none.servicesDown("d", "r", [], 1);
  } finally {
    await hook.close();
  }
});
