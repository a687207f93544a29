/**
 * Headless Chromium (Debian's /usr/bin/chromium) driven by playwright-core,
 * for the site's browser tests: every console error, failed request and
 * request to anything but the site's own origin is recorded, and pages are
 * screenshotted into test-artifacts/.
 */
import { type Browser, chromium, type Page } from "playwright-core";
import { setting } from "../config.ts";

/** Where Debian installs chromium (`apt-get install -y chromium`). */
export const CHROMIUM = setting("LOGPIPE_CHROMIUM") ?? "/usr/bin/chromium";

export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

/** Launches Chromium; throws a clear error when it is not installed. */
export async function launchBrowser(): Promise<Browser> {
  try {
    await Deno.stat(CHROMIUM);
  } catch {
    throw new Error(
      `${CHROMIUM} not found: install it with "apt-get install -y chromium" (deno task setup --browser)`,
    );
  }
  return await chromium.launch({
    executablePath: CHROMIUM,
    args: CHROMIUM_ARGS,
    headless: true,
  });
}

/** What happened while a page was open. */
export interface PageLog {
  consoleErrors: string[];
  failedRequests: string[];
  /** Requests to any origin other than the site's (must stay empty). */
  foreignRequests: string[];
  dialogs: string[];
}

/** Opens a new page that records errors, failed and foreign requests, dialogs. */
export async function openPage(
  browser: Browser,
  origin: string,
  opts: { width?: number; height?: number } = {},
): Promise<{ page: Page; log: PageLog; close: () => Promise<void> }> {
  const context = await browser.newContext({
    viewport: { width: opts.width ?? 1400, height: opts.height ?? 1000 },
    acceptDownloads: true,
    colorScheme: "light",
  });
  const page = await context.newPage();
  const log: PageLog = {
    consoleErrors: [],
    failedRequests: [],
    foreignRequests: [],
    dialogs: [],
  };
  page.on("console", (msg) => {
    if (msg.type() === "error") log.consoleErrors.push(msg.text());
  });
  page.on("pageerror", (err) => log.consoleErrors.push(String(err)));
  page.on("dialog", async (dialog) => {
    log.dialogs.push(`${dialog.type()}: ${dialog.message()}`);
    await dialog.dismiss().catch(() => {});
  });
  page.on("request", (req) => {
    const url = req.url();
    if (!url.startsWith(origin) && !/^(data|blob|about):/.test(url)) {
      log.foreignRequests.push(url);
    }
  });
  page.on("requestfailed", (req) => {
    log.failedRequests.push(`${req.url()}: ${req.failure()?.errorText}`);
  });
  page.on("response", (res) => {
    if (res.status() >= 400) {
      log.failedRequests.push(`${res.url()}: HTTP ${res.status()}`);
    }
  });
  return { page, log, close: () => context.close() };
}

/** Path of a screenshot artefact (folder created). */
export async function artifactPath(name: string): Promise<string> {
  const dir = new URL("../../test-artifacts/site/", import.meta.url).pathname;
  await Deno.mkdir(dir, { recursive: true });
  return `${dir}${name}`;
}
