/**
 * Shared command-line plumbing for every `tasks/*.ts` entry point: flag
 * parsing with `node:util` parseArgs (jsr:@std/cli is unreachable here),
 * one-line errors with exit code 2, and `--help`.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { ConfigError, redactSecrets, setting } from "./config.ts";

/** A bad flag, value or sub-command: printed as one line, exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

export type FlagSpec = NonNullable<ParseArgsConfig["options"]>;

export interface ParsedCli<T extends FlagSpec> {
  values: {
    [K in keyof T]?: T[K]["type"] extends "boolean" ? boolean : string;
  };
  positionals: string[];
}

/**
 * Parses `args` against `flags` (plus `--help`). Prints `usage` and exits 0
 * on --help; throws UsageError on an unknown flag or a missing value.
 */
export function parseCli<T extends FlagSpec>(
  args: string[],
  flags: T,
  usage: string,
  { allowPositionals = false } = {},
): ParsedCli<T> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: { ...flags, help: { type: "boolean", short: "h" } },
      allowPositionals,
      strict: true,
    });
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    // node's messages are multi-line; keep the first sentence.
    throw new UsageError(msg.split("\n")[0].replace(/\. To specify.*$/, ""));
  }
  if ((parsed.values as Record<string, unknown>).help) {
    console.log(usage.trim());
    Deno.exit(0);
  }
  return parsed as unknown as ParsedCli<T>;
}

/** Parses an integer flag within [min, max]; UsageError names the flag. */
export function intFlag(
  name: string,
  value: string | undefined,
  fallback: number,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (value === undefined) return fallback;
  if (!/^-?\d+$/.test(value.trim())) {
    throw new UsageError(`--${name} must be an integer, got "${value}"`);
  }
  const n = Number(value);
  if (n < min || n > max) {
    throw new UsageError(
      `--${name} must be between ${min} and ${max}, got ${n}`,
    );
  }
  return n;
}

/** Parses a non-negative number flag within [min, max]. */
export function numberFlag(
  name: string,
  value: string | undefined,
  fallback: number,
  min = 0,
  max = Number.MAX_VALUE,
): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n)) {
    throw new UsageError(`--${name} must be a number, got "${value}"`);
  }
  if (n < min || n > max) {
    throw new UsageError(
      `--${name} must be between ${min} and ${max}, got ${n}`,
    );
  }
  return n;
}

/** Parses an ISO-8601 timestamp flag (UTC "Z" or an offset required). */
export function timeFlag(
  name: string,
  value: string | undefined,
): Date | undefined {
  if (value === undefined) return undefined;
  if (
    !/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2}))?$/
      .test(value)
  ) {
    throw new UsageError(
      `--${name} must be an ISO-8601 time like 2026-01-01T00:00:00Z, got "${value}"`,
    );
  }
  const d = new Date(value.length === 10 ? `${value}T00:00:00Z` : value);
  if (Number.isNaN(d.getTime())) {
    throw new UsageError(`--${name} is not a valid time: "${value}"`);
  }
  return d;
}

/**
 * Runs a task's main function: usage and configuration errors become one
 * line on stderr and exit 2; any other error exits 1 with its message.
 */
export async function runMain(
  main: () => Promise<number | void>,
): Promise<never> {
  try {
    const code = await main();
    Deno.exit(code ?? 0);
  } catch (err) {
    if (err instanceof UsageError || err instanceof ConfigError) {
      console.error(`error: ${err.message}`);
      Deno.exit(2);
    }
    // Expected failures (a service down, a run failed) read best as their
    // message; the stack is there with LOGPIPE_LOG_LEVEL=debug.
    const debug = setting("LOGPIPE_LOG_LEVEL") === "debug";
    console.error(
      `error: ${
        redactSecrets(
          err instanceof Error
            ? (debug ? err.stack ?? err.message : err.message)
            : String(err),
        )
      }`,
    );
    Deno.exit(1);
  }
}
