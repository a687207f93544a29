/**
 * Serves the built site (`dist/`) from the API's origin, so the live pages'
 * `fetch("/api/...")` needs no CORS and no other host. Framework builds with
 * clean URLs: `/realtime` is `realtime.html`, `/` is `index.html`.
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
 * Security headers of every response: nothing may be loaded from, or sent
 * to, another origin (the site must work with no CDN and no Internet).
 */
export const SECURITY_HEADERS: Record<string, string> = {
  "content-security-policy": [
    "default-src 'self'",
    // Framework pages boot from an inline module script.
    "script-src 'self' 'unsafe-inline'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "connect-src 'self'",
    "font-src 'self' data:",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
  ].join("; "),
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

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
  for (const path of candidates) {
    try {
      const info = await Deno.stat(path);
      if (info.isFile) return path;
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
      return new Response(await Deno.readFile(notFound), {
        status: 404,
        headers,
      });
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
  if (req.method === "HEAD") {
    const info = await Deno.stat(path);
    headers.set("content-length", String(info.size));
    return new Response(null, { status: 200, headers });
  }
  const file = await Deno.open(path, { read: true });
  return new Response(file.readable, { status: 200, headers });
}
