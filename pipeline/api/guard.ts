/**
 * What keeps the API standing against hostile or excessive clients:
 *
 * - the Host allow-list (DNS rebinding): a page on an attacker's domain that
 *   re-resolves to 127.0.0.1 reaches the API with its own name in `Host`;
 *   only loopback names on the API's port and the configured
 *   LOGPIPE_API_ALLOWED_HOSTS are answered, anything else gets 421;
 * - a cap on the database work in flight (429 beyond it), so a flood of
 *   distinct requests queues nowhere and cannot starve `/healthz`;
 * - a short per-(route, parameters) result cache with single flight:
 *   identical concurrent requests share one query, and polling pages reuse
 *   a result for a moment instead of re-running it;
 * - request bodies read with a byte cap, so an oversized body is refused
 *   before it is held in memory.
 */
import type { ApiConfig } from "../config.ts";
import { ApiError } from "./params.ts";

const LOOPBACK_NAMES = ["127.0.0.1", "localhost", "[::1]"];

/** `host` as it appears in a Host header (IPv6 literals in brackets). */
function hostForHeader(host: string): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}

/**
 * A predicate over `Host` header values (lower-case `name` or `name:port`):
 * loopback names and the bind address on `port`, plus the configured
 * allowed hosts (a bare name there also matches with no port, as behind a
 * reverse proxy on 80/443).
 */
export function hostAllowList(
  api: Pick<ApiConfig, "host" | "allowedHosts">,
  port: number,
): (host: string) => boolean {
  const allowed = new Set<string>();
  const names = [...LOOPBACK_NAMES];
  // A specific bind address is a name clients may use too; a wildcard
  // (0.0.0.0, ::) is not a name anyone connects to.
  if (!["0.0.0.0", "::", "[::]"].includes(api.host)) {
    names.push(hostForHeader(api.host.toLowerCase()));
  }
  for (const name of names) {
    allowed.add(`${name}:${port}`);
    if (port === 80) allowed.add(name);
  }
  for (const entry of api.allowedHosts) {
    allowed.add(entry);
    if (!/:\d+$/.test(entry)) allowed.add(`${entry}:${port}`);
  }
  return (host) => allowed.has(host.toLowerCase());
}

/**
 * True when `origin` (an Origin header) names an allowed host over http or
 * https. `null` (sandboxed frames, file: pages) is never allowed.
 */
export function originAllowed(
  origin: string,
  isAllowedHost: (host: string) => boolean,
): boolean {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return false;
  // URL.host drops a default port; an allowed bare name covers that case.
  return isAllowedHost(url.host);
}

/** No slot came free within the limiter's wait (answered 429). */
export class BusyError extends Error {
  constructor(waitMs: number) {
    super(`no slot came free within ${waitMs} ms`);
    this.name = "BusyError";
  }
}

/**
 * At most `max` units of work at once. `tryAcquire` answers at once: a
 * release function, or undefined when full. `acquire` may also wait, in a
 * FIFO queue of at most `maxQueue`, up to `maxWaitMs` for a slot: a page
 * that opens with a few more requests than there are slots (the health page
 * sends nine) is served a moment later instead of refused, while a flood
 * still gets its 429 at once (queue full) or after the short wait.
 */
export class ConcurrencyLimiter {
  #inFlight = 0;
  #waiting: ((release: () => void) => void)[] = [];
  constructor(
    readonly max: number,
    readonly maxQueue = 0,
    readonly maxWaitMs = 0,
  ) {}

  get inFlight(): number {
    return this.#inFlight;
  }

  /** Callers waiting for a slot. */
  get queued(): number {
    return this.#waiting.length;
  }

  tryAcquire(): (() => void) | undefined {
    if (this.#inFlight >= this.max) return undefined;
    this.#inFlight++;
    return this.#releaser();
  }

  /**
   * A slot now or after a wait: undefined when the queue is full; a
   * promise of the release function, rejected with BusyError when no slot
   * came free within maxWaitMs.
   */
  acquire(): Promise<() => void> | undefined {
    const now = this.tryAcquire();
    if (now) return Promise.resolve(now);
    if (this.#waiting.length >= this.maxQueue) return undefined;
    return new Promise((resolve, reject) => {
      const grant = (release: () => void) => {
        clearTimeout(timer);
        resolve(release);
      };
      const timer = setTimeout(() => {
        const i = this.#waiting.indexOf(grant);
        if (i >= 0) this.#waiting.splice(i, 1);
        reject(new BusyError(this.maxWaitMs));
      }, this.maxWaitMs);
      this.#waiting.push(grant);
    });
  }

  /** Releases once; a freed slot goes straight to the first waiter. */
  #releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiting.shift();
      if (next) next(this.#releaser());
      else this.#inFlight--;
    };
  }
}

interface CacheEntry {
  at: number;
  ttlMs: number;
  staleMs: number;
  value: Promise<unknown>;
  settled: boolean;
  /** The refresh in flight, if any. */
  refresh?: Promise<unknown>;
}

/**
 * Results by key for `ttlMs` after they were computed, and in-flight
 * computations shared by every caller of the same key (single flight). A
 * failed computation is not kept. Bounded to `maxEntries` (oldest first out).
 *
 * With `staleMs`, a result older than its TTL is still answered for that
 * long while one refresh runs in the background (stale-while-revalidate):
 * an expensive result (a 7-day aggregate) never makes a caller wait once it
 * exists, and a refresh that fails or cannot start keeps the old one.
 */
export class ResultCache {
  #entries = new Map<string, CacheEntry>();
  constructor(readonly maxEntries = 1000) {}

  /**
   * The cached or in-flight value of `key`, else `compute()`'s. `compute`
   * is only called when nothing usable is there; it returns undefined when
   * it may not run now (the caller answers 429).
   */
  get(
    key: string,
    ttlMs: number,
    compute: () => Promise<unknown> | undefined,
    staleMs = 0,
  ): Promise<unknown> | undefined {
    const now = Date.now();
    const hit = this.#entries.get(key);
    if (hit && (!hit.settled || now - hit.at <= hit.ttlMs)) return hit.value;
    if (hit && now - hit.at <= hit.ttlMs + hit.staleMs) {
      if (!hit.refresh) {
        const fresh = compute();
        if (fresh) {
          hit.refresh = fresh;
          fresh.then(
            () => {
              if (this.#entries.get(key) === hit) {
                this.#store(key, fresh, ttlMs, staleMs, true);
              }
            },
            () => hit.refresh = undefined,
          );
        }
      }
      return hit.value;
    }
    // Too old to answer: wait for the refresh already running, if one is.
    if (hit?.refresh) return hit.refresh;
    const value = compute();
    if (value === undefined) return undefined;
    this.#store(key, value, ttlMs, staleMs, false);
    return value;
  }

  #store(
    key: string,
    value: Promise<unknown>,
    ttlMs: number,
    staleMs: number,
    settled: boolean,
  ): void {
    const entry: CacheEntry = {
      at: Date.now(),
      ttlMs,
      staleMs,
      value,
      settled,
    };
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    if (!settled) {
      value.then(
        () => {
          entry.settled = true;
          entry.at = Date.now();
        },
        () => {
          if (this.#entries.get(key) === entry) this.#entries.delete(key);
        },
      );
    }
    while (this.#entries.size > this.maxEntries) {
      const oldest = this.#entries.keys().next().value as string;
      this.#entries.delete(oldest);
    }
  }

  /** Forgets every result (after a write, readers must see it at once). */
  clear(): void {
    this.#entries.clear();
  }

  get size(): number {
    return this.#entries.size;
  }
}

/**
 * The request body as text, refused with 413 as soon as more than
 * `maxBytes` arrived (a lying or missing content-length changes nothing).
 */
export async function readTextCapped(
  req: Request,
  maxBytes: number,
  what = "the body",
): Promise<string> {
  const tooBig = () =>
    new ApiError(413, `${what} must be under ${maxBytes} bytes`);
  const declared = Number(req.headers.get("content-length") ?? "0");
  if (declared > maxBytes) throw tooBig();
  if (!req.body) return "";
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel().catch(() => {});
      throw tooBig();
    }
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let offset = 0;
  for (const c of chunks) {
    all.set(c, offset);
    offset += c.byteLength;
  }
  return new TextDecoder().decode(all);
}
