/**
 * Local notification receivers for tests and demos: an HTTP server that
 * records webhook POSTs (a stand-in Slack) and an SMTP server (smtp-server)
 * that records e-mails. Both bind to 127.0.0.1 on a free port.
 */
import { SMTPServer } from "smtp-server";
import { delay } from "../async.ts";

/** A received webhook call. */
export interface ReceivedWebhook {
  at: number;
  body: {
    text?: string;
    logpipe?: { kind?: string; [k: string]: unknown };
    [k: string]: unknown;
  };
}

/** A running webhook receiver. */
export interface WebhookReceiver {
  url: string;
  received: ReceivedWebhook[];
  /** Resolves when `pred` holds for a received message (or rejects after timeoutMs). */
  waitFor(
    pred: (m: ReceivedWebhook) => boolean,
    timeoutMs?: number,
  ): Promise<ReceivedWebhook>;
  close(): Promise<void>;
}

async function waitUntil<T>(
  find: () => T | undefined,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const hit = find();
    if (hit !== undefined) return hit;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await delay(50);
  }
}

/** Starts a webhook receiver answering 200 (or `status`) to every POST. */
export function startWebhookReceiver(
  opts: { status?: number } = {},
): WebhookReceiver {
  const received: ReceivedWebhook[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => {
      if (req.method !== "POST") {
        return new Response("POST only", { status: 405 });
      }
      try {
        received.push({ at: Date.now(), body: await req.json() });
      } catch {
        return new Response("bad json", { status: 400 });
      }
      return new Response("ok", { status: opts.status ?? 200 });
    },
  );
  const addr = server.addr as Deno.NetAddr;
  return {
    url: `http://127.0.0.1:${addr.port}/hooks/test`,
    received,
    waitFor: (pred, timeoutMs = 10_000) =>
      waitUntil(() => received.find(pred), timeoutMs, "a webhook message"),
    close: () => server.shutdown(),
  };
}

/** A received e-mail (raw RFC 5322 text plus envelope). */
export interface ReceivedMail {
  from: string;
  to: string[];
  raw: string;
  subject: string;
}

/** A running SMTP receiver. */
export interface SmtpReceiver {
  /** smtp://127.0.0.1:<port> */
  url: string;
  received: ReceivedMail[];
  waitFor(
    pred: (m: ReceivedMail) => boolean,
    timeoutMs?: number,
  ): Promise<ReceivedMail>;
  close(): Promise<void>;
}

/** Starts an SMTP server (no TLS, no auth) that keeps every message. */
export async function startSmtpReceiver(): Promise<SmtpReceiver> {
  const received: ReceivedMail[] = [];
  const server = new SMTPServer({
    secure: false,
    authOptional: true,
    disabledCommands: ["STARTTLS", "AUTH"],
    logger: false,
    onData(
      stream: AsyncIterable<Uint8Array> & NodeJS.ReadableStream,
      session: {
        envelope: {
          mailFrom: { address: string } | false;
          rcptTo: Array<{ address: string }>;
        };
      },
      callback: (err?: Error | null) => void,
    ) {
      const chunks: Uint8Array[] = [];
      stream.on("data", (c: Uint8Array) => chunks.push(c));
      stream.on("end", () => {
        const raw = new TextDecoder().decode(
          new Uint8Array(chunks.flatMap((c) => [...c])),
        );
        const subject =
          /^Subject: (.*(?:\r?\n[ \t].*)*)/m.exec(raw)?.[1]?.replace(
            /\r?\n[ \t]/g,
            " ",
          ) ?? "";
        received.push({
          from: session.envelope.mailFrom
            ? session.envelope.mailFrom.address
            : "",
          to: session.envelope.rcptTo.map((r) => r.address),
          raw,
          subject,
        });
        callback();
      });
    },
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      // deno-lint-ignore no-explicit-any
      resolve((server as any).server.address().port);
    });
  });
  return {
    url: `smtp://127.0.0.1:${port}`,
    received,
    waitFor: (pred, timeoutMs = 10_000) =>
      waitUntil(() => received.find(pred), timeoutMs, "an e-mail"),
    close: () => new Promise((r) => server.close(() => r())),
  };
}
