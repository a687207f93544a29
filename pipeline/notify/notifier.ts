/**
 * The batch's notifier: Slack-compatible webhook for run success / failure
 * and every failed task try, e-mail to the operators when services are down.
 * With nothing configured a notification is only logged. No method ever
 * throws: a notification failure never fails a run.
 */
import type { NotifyConfig } from "../config.ts";
import { type Logger, logger } from "../log.ts";
import { sendEmail } from "./email.ts";
import {
  runKind,
  runMessage,
  type RunNotice,
  servicesDownEmail,
  taskFailureMessage,
  type TaskFailureNotice,
} from "./messages.ts";
import { postWebhook } from "./webhook.ts";
import type { ServiceCheck } from "../probes/verdicts.ts";

/** What the batch needs from a notifier (tests can record instead). */
export interface BatchNotifier {
  runFinished(n: RunNotice): Promise<void>;
  taskTryFailed(n: TaskFailureNotice): Promise<void>;
  servicesDown(
    dagId: string,
    runId: string,
    checks: ServiceCheck[],
    tries: number,
  ): Promise<void>;
}

/** Sends to the configured webhook and SMTP server; logs when unconfigured. */
export class Notifier implements BatchNotifier {
  readonly #cfg: NotifyConfig;
  readonly #log: Logger;

  constructor(cfg: NotifyConfig, log: Logger = logger("notify")) {
    this.#cfg = cfg;
    this.#log = log;
  }

  async #webhook(kind: string, payload: { text: string }): Promise<void> {
    const url = this.#cfg.slackWebhookUrl;
    if (!url) {
      this.#log.info("notification (no webhook configured)", {
        kind,
        text: payload.text,
      });
      return;
    }
    try {
      await postWebhook(url, payload);
      this.#log.debug("webhook notification sent", { kind });
    } catch (err) {
      this.#log.warn("webhook notification failed (run unaffected)", {
        kind,
        error: err instanceof Error ? err.message : String(err),
      });
    }
  }

  async runFinished(n: RunNotice): Promise<void> {
    await this.#webhook(runKind(n.state), runMessage(n));
  }

  async taskTryFailed(n: TaskFailureNotice): Promise<void> {
    await this.#webhook("task_failure", taskFailureMessage(n));
  }

  async servicesDown(
    dagId: string,
    runId: string,
    checks: ServiceCheck[],
    tries: number,
  ): Promise<void> {
    const msg = servicesDownEmail(dagId, runId, checks, tries);
    const { smtpUrl, emailTo, emailFrom } = this.#cfg;
    if (!smtpUrl || emailTo.length === 0) {
      this.#log.warn(
        "service-down e-mail (no SMTP server or recipients configured)",
        {
          subject: msg.subject,
          text: msg.text,
        },
      );
      return;
    }
    try {
      const info = await sendEmail(smtpUrl, emailFrom, emailTo, msg);
      this.#log.info("service-down e-mail sent", {
        to: emailTo,
        message_id: info.messageId,
      });
    } catch (err) {
      this.#log.warn("service-down e-mail failed (run unaffected)", {
        error: err instanceof Error ? err.message : String(err),
      });
    }
  }
}
