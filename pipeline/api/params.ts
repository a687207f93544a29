/**
 * Query-string validation for the API. Every route declares the parameters it
 * accepts; anything else, or a malformed value, is a 400 with a message that
 * names the parameter. Values are parsed into typed values here, so queries
 * only ever receive checked data (and still bind it as SQL parameters).
 */

/** A client error: becomes an HTTP response with `status` and `{error}`. */
export class ApiError extends Error {
  override name = "ApiError";
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** Parses one raw value; throws ApiError(400) with a message on bad input. */
export type ParamParser<T> = (name: string, raw: string) => T;

/** A parameter spec: a parser plus an optional default. */
export interface ParamSpec<T> {
  parse: ParamParser<T>;
  default?: T;
}

type Parsed<S extends Record<string, ParamSpec<unknown>>> = {
  [K in keyof S]: S[K] extends ParamSpec<infer T>
    ? S[K]["default"] extends T ? T : T | undefined
    : never;
};

const bad = (name: string, msg: string) =>
  new ApiError(400, `parameter "${name}" ${msg}`);

// The enumerations of event schema v1: the API rejects anything else.
export { DEVICE_TYPES, EVENT_TYPES, LEVELS } from "../events/schema.ts";

/** Longest time window any endpoint accepts (the monitoring tables keep 7 days). */
export const MAX_WINDOW_SECS = 7 * 24 * 3600;

/** An integer within [min, max]. */
export function int(
  min: number,
  max: number,
  fallback?: number,
): ParamSpec<number> {
  return {
    default: fallback,
    parse(name, raw) {
      if (!/^-?\d{1,15}$/.test(raw)) throw bad(name, "must be an integer");
      const n = Number(raw);
      if (n < min || n > max) {
        throw bad(name, `must be between ${min} and ${max}`);
      }
      return n;
    },
  };
}

/** One of a fixed set of values (case-sensitive). */
export function oneOf<T extends string>(
  values: readonly T[],
  fallback?: T,
): ParamSpec<T> {
  return {
    default: fallback,
    parse(name, raw) {
      if (!(values as readonly string[]).includes(raw)) {
        throw bad(name, `must be one of ${values.join(", ")}`);
      }
      return raw as T;
    },
  };
}

/**
 * A comma-separated list of allowed values, e.g. `event_type=search,error`
 * (at most `values.length` distinct entries).
 */
export function listOf<T extends string>(
  values: readonly T[],
): ParamSpec<T[]> {
  return {
    parse(name, raw) {
      const items = raw.split(",").map((s) => s.trim()).filter(Boolean);
      if (items.length === 0) throw bad(name, "is empty");
      for (const item of items) {
        if (!(values as readonly string[]).includes(item)) {
          throw bad(name, `has "${clip(item)}"; allowed: ${values.join(", ")}`);
        }
      }
      return [...new Set(items)] as T[];
    },
  };
}

/** ISO-3166 alpha-2 country codes, comma-separated (e.g. `DE,FR`). */
export function countries(): ParamSpec<string[]> {
  return {
    parse(name, raw) {
      const items = raw.split(",").map((s) => s.trim()).filter(Boolean);
      if (items.length === 0) throw bad(name, "is empty");
      if (items.length > 50) throw bad(name, "has more than 50 countries");
      for (const item of items) {
        if (!/^[A-Z]{2}$/.test(item)) {
          throw bad(
            name,
            `has "${clip(item)}"; expected 2-letter upper-case country codes`,
          );
        }
      }
      return [...new Set(items)];
    },
  };
}

/**
 * A duration like `90s`, `15m`, `6h`, `7d` → seconds, within
 * [minSecs, maxSecs].
 */
export function duration(
  minSecs: number,
  maxSecs: number,
  fallback?: number,
): ParamSpec<number> {
  return {
    default: fallback,
    parse(name, raw) {
      const m = /^(\d{1,7})(s|m|h|d)$/.exec(raw);
      if (!m) {
        throw bad(name, "must be a duration like 30s, 15m, 6h or 1d");
      }
      const secs = Number(m[1]) *
        { s: 1, m: 60, h: 3600, d: 86400 }[m[2] as "s" | "m" | "h" | "d"];
      if (secs < minSecs || secs > maxSecs) {
        throw bad(
          name,
          `must be between ${formatDuration(minSecs)} and ${
            formatDuration(maxSecs)
          }`,
        );
      }
      return secs;
    },
  };
}

/** An identifier of letters, digits, `_`, `-`, `.`, `:` (event ids, run ids). */
export function ident(maxLength = 200): ParamSpec<string> {
  return {
    parse(name, raw) {
      if (!/^[A-Za-z0-9_.:\-]+$/.test(raw) || raw.length > maxLength) {
        throw bad(
          name,
          `must be 1-${maxLength} letters, digits, "_", "-", "." or ":"`,
        );
      }
      return raw;
    },
  };
}

/** Free text (e.g. a search filter), bounded in length, no control characters. */
export function text(maxLength = 100): ParamSpec<string> {
  return {
    parse(name, raw) {
      if (raw.length === 0) throw bad(name, "is empty");
      if (raw.length > maxLength) {
        throw bad(name, `is longer than ${maxLength} characters`);
      }
      // deno-lint-ignore no-control-regex
      if (/[\u0000-\u001f\u007f]/.test(raw)) {
        throw bad(name, "contains control characters");
      }
      return raw;
    },
  };
}

/** An ISO-8601 timestamp with a zone (`Z` or an offset). */
export function timestamp(): ParamSpec<Date> {
  return {
    parse(name, raw) {
      if (
        !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})$/
          .test(raw)
      ) {
        throw bad(name, "must be an ISO-8601 time like 2026-01-01T00:00:00Z");
      }
      const d = new Date(raw);
      if (Number.isNaN(d.getTime())) throw bad(name, "is not a valid time");
      return d;
    },
  };
}

/**
 * Validates `params` against `spec`: unknown or repeated parameters and bad
 * values throw ApiError(400); missing ones take their default.
 */
export function parseParams<S extends Record<string, ParamSpec<unknown>>>(
  params: URLSearchParams,
  spec: S,
): Parsed<S> {
  const out: Record<string, unknown> = {};
  const seen = new Set<string>();
  for (const [name, raw] of params) {
    if (!Object.hasOwn(spec, name)) {
      const allowed = Object.keys(spec);
      throw new ApiError(
        400,
        `unknown parameter "${clip(name)}"${
          allowed.length ? `; allowed: ${allowed.join(", ")}` : ""
        }`,
      );
    }
    if (seen.has(name)) throw bad(name, "is given more than once");
    seen.add(name);
    out[name] = spec[name].parse(name, raw);
  }
  for (const [name, s] of Object.entries(spec)) {
    if (!seen.has(name)) out[name] = s.default;
  }
  return out as Parsed<S>;
}

/** `3600` → `1h`; used in messages. */
export function formatDuration(secs: number): string {
  if (secs % 86400 === 0) return `${secs / 86400}d`;
  if (secs % 3600 === 0) return `${secs / 3600}h`;
  if (secs % 60 === 0) return `${secs / 60}m`;
  return `${secs}s`;
}

function clip(s: string): string {
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}
