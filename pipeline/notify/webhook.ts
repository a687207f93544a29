/**
 * Slack-compatible incoming webhook: one JSON POST per message. A few quick
 * retries on network errors and 5xx / 429; anything else is the caller's to
 * log (a notification never fails a run).
 *
 * Redirects are not followed: the message would go wherever the answer
 * points (another host, plain http). The webhook URL is a secret (Slack's
 * path is the credential), so errors name only its origin.
 */
import { retry } from "../async.ts";
import { redactUrl } from "../config.ts";

/** A failed POST; `retryable` is false for answers a retry cannot change (3xx, 4xx but 429). */
class WebhookError extends Error {
  constructor(message: string, readonly retryable: boolean) {
    super(message);
  }
}

/**
 * POSTs `payload` as JSON to `url`; throws after the last failed attempt.
 * The waits between attempts start at `retryDelayMs` and double.
 */
export async function postWebhook(
  url: string,
  payload: unknown,
  opts: { timeoutMs?: number; attempts?: number; retryDelayMs?: number } = {},
): Promise<void> {
  const shown = redactUrl(url);
  const postOnce = async () => {
    let res: Response;
    let body: string;
    try {
      res = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(payload),
        redirect: "manual",
        signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000),
      });
      body = await res.text().catch(() => "");
    } catch (err) {
      // fetch's own messages quote the whole URL.
      const msg = err instanceof Error ? err.message : String(err);
      throw new WebhookError(
        `webhook ${shown}: ${msg.replaceAll(url, shown)}`,
        true,
      );
    }
    if (res.ok) return;
    if (res.status >= 300 && res.status < 400) {
      throw new WebhookError(
        `webhook ${shown} answered HTTP ${res.status} (a redirect; not followed)`,
        false,
      );
    }
    throw new WebhookError(
      `webhook ${shown} answered HTTP ${res.status}: ${body.slice(0, 200)}`,
      res.status >= 500 || res.status === 429,
    );
  };
  await retry(postOnce, {
    maxAttempts: opts.attempts ?? 3,
    minTimeout: opts.retryDelayMs ?? 500,
    multiplier: 2,
    isRetryable: (err) => !(err instanceof WebhookError) || err.retryable,
  });
}
