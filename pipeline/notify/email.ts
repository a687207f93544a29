/**
 * E-mail over SMTP with nodemailer. The SMTP URL (smtp:// or smtps://, with
 * credentials if any) comes from LOGPIPE_SMTP_URL; messages are text/plain.
 */
import nodemailer from "nodemailer";
import type { EmailMessage } from "./messages.ts";

/** Sends `msg` from `from` to `to` through the server at `smtpUrl`. */
export async function sendEmail(
  smtpUrl: string,
  from: string,
  to: string[],
  msg: EmailMessage,
  opts: { timeoutMs?: number } = {},
): Promise<{ messageId: string; accepted: string[] }> {
  const url = new URL(smtpUrl);
  const timeout = opts.timeoutMs ?? 15_000;
  const transport = nodemailer.createTransport({
    host: url.hostname,
    port: url.port ? Number(url.port) : (url.protocol === "smtps:" ? 465 : 25),
    secure: url.protocol === "smtps:",
    auth: url.username
      ? {
        user: decodeURIComponent(url.username),
        pass: decodeURIComponent(url.password),
      }
      : undefined,
    connectionTimeout: timeout,
    greetingTimeout: timeout,
    socketTimeout: timeout,
  });
  try {
    const info = await transport.sendMail({
      from,
      to: to.join(", "),
      subject: msg.subject,
      text: msg.text,
    });
    return {
      messageId: String(info.messageId),
      accepted: (info.accepted ?? []).map(String),
    };
  } finally {
    transport.close();
  }
}
