/**
 * Structured log lines: one JSON object per line on stderr (so stdout stays
 * free for a command's real output), filtered by LOGPIPE_LOG_LEVEL.
 */
const LEVELS = { debug: 10, info: 20, warn: 30, error: 40 } as const;
export type LogLevel = keyof typeof LEVELS;

let threshold: number = LEVELS[
  (Deno.env.get("LOGPIPE_LOG_LEVEL") as LogLevel | undefined) ?? "info"
] ?? LEVELS.info;

/** Changes the minimum level printed. */
export function setLogLevel(level: LogLevel): void {
  threshold = LEVELS[level];
}

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** A logger whose lines carry `component`. */
export function logger(component: string): Logger {
  const emit = (
    level: LogLevel,
    msg: string,
    fields?: Record<string, unknown>,
  ) => {
    if (LEVELS[level] < threshold) return;
    const line = JSON.stringify(
      {
        ts: new Date().toISOString(),
        level,
        component,
        msg,
        ...fields,
      },
      (_k, v) =>
        v instanceof Error
          ? v.message
          : typeof v === "bigint"
          ? v.toString()
          : v,
    );
    console.error(line);
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
  };
}
