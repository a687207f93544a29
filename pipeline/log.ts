/**
 * Structured log lines: one JSON object per line on stderr (so stdout stays
 * free for a command's real output), filtered by LOGPIPE_LOG_LEVEL (read
 * through config.ts, so `.env` counts too). Credentials in URLs are hidden
 * from every line. Also the size-bounded rotation of the log files under
 * `<LOGPIPE_HOME>/logs`.
 */
import { redactSecrets, setting } from "./config.ts";

const LEVELS = { debug: 10, info: 20, warn: 30, error: 40 } as const;
export type LogLevel = keyof typeof LEVELS;

// A malformed level is reported by loadConfig; here it only means "info".
let threshold: number = LEVELS[
  (setting("LOGPIPE_LOG_LEVEL") ?? "info") as LogLevel
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
          ? redactSecrets(v.message)
          : typeof v === "bigint"
          ? v.toString()
          : typeof v === "string"
          ? redactSecrets(v)
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

/** When a log file is rotated, and how many old files are kept. */
export interface RotationPolicy {
  /** Rotate once the file is larger than this. */
  maxBytes: number;
  /** Old files kept as `<name>.1` (newest) … `<name>.<keep>`. */
  keep: number;
}

/**
 * 50 MB × (1 + 3 old files) bounds each log at ~200 MB: days of a busy
 * pipeline at INFO, a few GB at most for every log together.
 */
export const LOG_ROTATION: RotationPolicy = {
  maxBytes: 50 * 1024 * 1024,
  keep: 3,
};

/**
 * Rotates `path` when it is larger than `policy.maxBytes`, by copy and
 * truncate: the running process keeps its file descriptor, and because
 * every writer of our logs opens them in append mode (sh `>>`, pg_ctl -l,
 * the supervisor) its next line lands at the start of the emptied file.
 * Lines written between the copy and the truncation are lost (logrotate's
 * copytruncate has the same window). Returns true when it rotated.
 */
export function rotateLog(
  path: string,
  policy: RotationPolicy = LOG_ROTATION,
): boolean {
  let size: number;
  try {
    size = Deno.statSync(path).size;
  } catch {
    return false;
  }
  if (size <= policy.maxBytes) return false;
  for (let i = policy.keep - 1; i >= 1; i--) {
    try {
      Deno.renameSync(`${path}.${i}`, `${path}.${i + 1}`);
    } catch { /* no such old file yet */ }
  }
  if (policy.keep >= 1) {
    // Old logs are as private as the live one.
    Deno.copyFileSync(path, `${path}.1`);
    Deno.chmodSync(`${path}.1`, 0o600);
  }
  Deno.truncateSync(path, 0);
  return true;
}

/** rotateLog for every `*.log` file in `dir`; returns the rotated paths. */
export function rotateLogs(
  dir: string,
  policy: RotationPolicy = LOG_ROTATION,
): string[] {
  const rotated: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch {
    return rotated;
  }
  for (const e of entries) {
    if (!e.isFile || !e.name.endsWith(".log")) continue;
    try {
      if (rotateLog(`${dir}/${e.name}`, policy)) {
        rotated.push(`${dir}/${e.name}`);
      }
    } catch { /* a file that vanished or cannot be read stays as it is */ }
  }
  return rotated;
}
