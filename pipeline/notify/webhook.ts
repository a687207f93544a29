/**
 * Slack-compatible incoming webhook: one JSON POST per message. A few quick
 * retries on network errors and 5xx / 429; anything else is the caller's to
 * log (a notification never fails a run).
 */

/** POSTs `payload` as JSON to `url`; throws after the last failed attempt. */
export async function postWebhook(
  url: string,
  payload: unknown,
  opts: { timeoutMs?: number; attempts?: number; retryDelayMs?: number } = {},
): Promise<void> {
  const attempts = opts.attempts ?? 3;
  let last: unknown;
  for (let i = 1; i <= attempts; i++) {
    try {
      const res = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(payload),
        signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000),
      });
      const body = await res.text().catch(() => "");
      if (res.ok) return;
      last = new Error(
        `webhook answered HTTP ${res.status}: ${body.slice(0, 200)}`,
      );
      if (res.status < 500 && res.status !== 429) break;
    } catch (err) {
      last = err;
    }
    if (i < attempts) {
      await new Promise((r) => setTimeout(r, (opts.retryDelayMs ?? 500) * i));
    }
  }
  throw last;
}
