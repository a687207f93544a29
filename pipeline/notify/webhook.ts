/**
 * Slack-compatible incoming webhook: one JSON POST per message. A few quick
 * retries on network errors and 5xx / 429; anything else is the caller's to
 * log (a notification never fails a run).
 *
 * Redirects are not followed: the message would go wherever the answer
 * points (another host, plain http). The webhook URL is a secret (Slack's
 * path is the credential), so errors name only its origin.
 */
import { redactUrl } from "../config.ts";

/** POSTs `payload` as JSON to `url`; throws after the last failed attempt. */
export async function postWebhook(
  url: string,
  payload: unknown,
  opts: { timeoutMs?: number; attempts?: number; retryDelayMs?: number } = {},
): Promise<void> {
  const attempts = opts.attempts ?? 3;
  const shown = redactUrl(url);
  let last: Error | undefined;
  for (let i = 1; i <= attempts; i++) {
    try {
      const res = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(payload),
        redirect: "manual",
        signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000),
      });
      const body = await res.text().catch(() => "");
      if (res.ok) return;
      if (res.status >= 300 && res.status < 400) {
        last = new Error(
          `webhook ${shown} answered HTTP ${res.status} (a redirect; not followed)`,
        );
        break;
      }
      last = new Error(
        `webhook ${shown} answered HTTP ${res.status}: ${body.slice(0, 200)}`,
      );
      if (res.status < 500 && res.status !== 429) break;
    } catch (err) {
      // fetch's own messages quote the whole URL.
      const msg = err instanceof Error ? err.message : String(err);
      last = new Error(`webhook ${shown}: ${msg.replaceAll(url, shown)}`);
    }
    if (i < attempts) {
      await new Promise((r) => setTimeout(r, (opts.retryDelayMs ?? 500) * i));
    }
  }
  throw last;
}
