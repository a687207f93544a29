/**
 * Serves the built site (`dist/`) from the API's origin, so the live pages'
 * `fetch("/api/...")` needs no CORS and no other host. Framework builds with
 * clean URLs: `/realtime` is `realtime.html`, `/` is `index.html`.
 *
 * Only files really inside the root are served: a symlink (or a folder on
 * the way) that resolves outside it is a 404. Pages carry a CSP that allows
 * exactly their own inline scripts, by SHA-256 hash.
 */
import { extname, join, normalize } from "node:path";

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".csv": "text/csv; charset=utf-8",
  ".txt": "text/plain; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
  ".parquet": "application/vnd.apache.parquet",
  ".arrow": "application/vnd.apache.arrow.file",
  ".pbids": "application/json",
  ".wasm": "application/wasm",
};

/** Content-type for a file name (octet-stream when unknown). */
export function contentType(path: string): string {
  return TYPES[extname(path).toLowerCase()] ?? "application/octet-stream";
}

/**
 * The Content-Security-Policy: nothing may be loaded from, or sent to,
 * another origin (the site must work with no CDN and no Internet), and no
 * script runs unless it is a file of this origin or an inline script whose
 * hash is listed (`scriptHashes`, see inlineScriptHashes). Styles stay
 * 'unsafe-inline': Framework, Plot and Inputs set style attributes.
 */
export function contentSecurityPolicy(scriptHashes: string[] = []): string {
  return [
    "default-src 'self'",
    ["script-src 'self'", ...scriptHashes.map((h) => `'${h}'`)].join(" "),
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "connect-src 'self'",
    "font-src 'self' data:",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join("; ");
}

/** Security headers of every response (HTML pages get their own CSP). */
export const SECURITY_HEADERS: Record<string, string> = {
  "content-security-policy": contentSecurityPolicy(),
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

/**
 * `sha256-<base64>` of every inline `<script>` (one without `src`) of an
 * HTML page, as a CSP lists them. Framework writes each page's cells, the
 * sidebar and search bootstraps as inline scripts; they are fixed at build
 * time, so hashing the built file allows exactly them and nothing injected.
 */
export async function inlineScriptHashes(html: string): Promise<string[]> {
  const hashes = new Set<string>();
  for (const m of html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script\s*>/gi)) {
    if (/\ssrc\s*=/i.test(` ${m[1]}`)) continue;
    // The HTML parser turns CRLF and CR into LF before the browser hashes.
    const text = m[2].replace(/\r\n?/g, "\n");
    const digest = await crypto.subtle.digest(
      "SHA-256",
      new TextEncoder().encode(text),
    );
    const bytes = String.fromCharCode(...new Uint8Array(digest));
    hashes.add(`sha256-${btoa(bytes)}`);
  }
  return [...hashes];
}

// Hashes per page, keyed by path, size and mtime (a rebuild changes them).
const pageHashes = new Map<string, { stamp: string; hashes: string[] }>();

async function pageCsp(path: string, info: Deno.FileInfo, html: string) {
  const stamp = `${info.size}:${info.mtime?.getTime()}`;
  let entry = pageHashes.get(path);
  if (entry?.stamp !== stamp) {
    entry = { stamp, hashes: await inlineScriptHashes(html) };
    pageHashes.set(path, entry);
  }
  return contentSecurityPolicy(entry.hashes);
}

/**
 * Maps a URL path to a file under `root`, or undefined when the path escapes
 * the root or names nothing. Tries the path, `path.html`, `path/index.html`.
 */
export async function resolveStatic(
  root: string,
  urlPath: string,
): Promise<string | undefined> {
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return undefined;
  }
  if (decoded.includes("\0") || decoded.includes("\\")) return undefined;
  const rel = normalize(decoded).replace(/^(\.\.(\/|$))+/, "");
  if (rel.split("/").includes("..")) return undefined;
  // Dot-files (and Framework's .observablehq cache) are never served.
  if (rel.split("/").some((s) => s.startsWith("."))) return undefined;
  const base = join(root, rel);
  if (!base.startsWith(root)) return undefined;
  const candidates = decoded.endsWith("/")
    ? [join(base, "index.html")]
    : [base, `${base}.html`, join(base, "index.html")];
  let realRoot: string;
  try {
    realRoot = await Deno.realPath(root);
  } catch {
    return undefined;
  }
  for (const path of candidates) {
    try {
      const info = await Deno.stat(path);
      if (!info.isFile) continue;
      // A symlink in dist/ (or a linked folder on the way) must not lead
      // out of it: compare where the file really is.
      const real = await Deno.realPath(path);
      if (!real.startsWith(`${realRoot}/`)) return undefined;
      return path;
    } catch {
      // try the next candidate
    }
  }
  return undefined;
}

/** A response for a file under `root` (GET/HEAD), or a 404 page. */
export async function serveStatic(
  root: string,
  req: Request,
  urlPath: string,
): Promise<Response> {
  const path = await resolveStatic(root, urlPath);
  const headers = new Headers(SECURITY_HEADERS);
  if (!path) {
    const notFound = await resolveStatic(root, "/404");
    headers.set("content-type", "text/html; charset=utf-8");
    if (notFound && req.method === "GET") {
      const html = await Deno.readTextFile(notFound);
      headers.set(
        "content-security-policy",
        await pageCsp(notFound, await Deno.stat(notFound), html),
      );
      return new Response(html, { status: 404, headers });
    }
    headers.set("content-type", "text/plain; charset=utf-8");
    return new Response(req.method === "HEAD" ? null : "not found\n", {
      status: 404,
      headers,
    });
  }
  headers.set("content-type", contentType(path));
  // Framework content-hashes everything under /_*/; pages must revalidate.
  headers.set(
    "cache-control",
    /^\/_(node|observablehq|file|import|npm)\//.test(urlPath)
      ? "public, max-age=31536000, immutable"
      : "no-cache",
  );
  const info = await Deno.stat(path);
  if (extname(path).toLowerCase() === ".html") {
    const html = await Deno.readTextFile(path);
    headers.set("content-security-policy", await pageCsp(path, info, html));
    if (req.method === "HEAD") {
      headers.set("content-length", String(info.size));
      return new Response(null, { status: 200, headers });
    }
    return new Response(html, { status: 200, headers });
  }
  if (req.method === "HEAD") {
    headers.set("content-length", String(info.size));
    return new Response(null, { status: 200, headers });
  }
  const file = await Deno.open(path, { read: true });
  return new Response(file.readable, { status: 200, headers });
}
