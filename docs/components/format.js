// Number and time formatting shared by every page.
import * as d3 from "d3";

const integer = d3.format(",d");
const decimal = d3.format(",.2f");
const compact = d3.format(".3~s");

/** 12,345 (or "–" for null). */
export const fmtInt = (
  n,
) => (n == null || Number.isNaN(n) ? "–" : integer(Math.round(n)));
/** 1,234.50 */
export const fmtMoney = (
  n,
) => (n == null || Number.isNaN(n) ? "–" : decimal(n));
/** 12.3 % from a ratio. */
export const fmtPct = (
  r,
) => (r == null || Number.isNaN(r) ? "–" : `${(r * 100).toFixed(1)} %`);
/** 1.23 k */
export const fmtCompact = (
  n,
) => (n == null || Number.isNaN(n) ? "–" : compact(n));
/** 3.4 /s */
export const fmtRate = (
  n,
) => (n == null || Number.isNaN(n)
  ? "–"
  : `${n >= 10 ? n.toFixed(0) : n.toFixed(2)} /s`);
/** 1.2 MB */
export function fmtBytes(n) {
  if (n == null) return "–";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) (n /= 1000), i++;
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}
/** 850 ms / 3.2 s */
export const fmtMs = (
  ms,
) => (ms == null
  ? "–"
  : ms < 1000
  ? `${Math.round(ms)} ms`
  : `${(ms / 1000).toFixed(1)} s`);

/** "2026-01-01 12:00:00 UTC" */
export function fmtTime(t) {
  if (t == null) return "–";
  const d = t instanceof Date ? t : new Date(t);
  if (Number.isNaN(d.getTime())) return "–";
  return `${d.toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

/** "12 s ago", "3 min ago", "2 h ago", "4 d ago". */
export function fmtAgo(t, now = Date.now()) {
  if (t == null) return "never";
  const secs = Math.max(0, (now - new Date(t).getTime()) / 1000);
  if (secs < 90) return `${Math.round(secs)} s ago`;
  if (secs < 5400) return `${Math.round(secs / 60)} min ago`;
  if (secs < 172800) return `${Math.round(secs / 3600)} h ago`;
  return `${Math.round(secs / 86400)} d ago`;
}
