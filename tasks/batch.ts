/**
 * `deno task batch`: one run of the batch DAG now, with a run summary.
 * Exit 0 = success, 1 = the run failed, 75 = another run holds the lock
 * (nothing done), 2 = bad flags or configuration.
 */
import {
  numberFlag,
  parseCli,
  runMain,
  timeFlag,
  UsageError,
} from "../pipeline/cli.ts";
import { loadConfig } from "../pipeline/config.ts";
import { runDag, TASK_GROUPS, type TaskGroup } from "../pipeline/batch/dag.ts";
import { formatSummary } from "../pipeline/batch/summary.ts";
import {
  type ReloadFilter,
  selectQuarantine,
} from "../pipeline/batch/reload.ts";
import { QUARANTINE_REASONS } from "../pipeline/batch/quarantine.ts";
import { createPool } from "../pipeline/clients/postgres.ts";
import {
  BATCH_FAIL_PHASES,
  parseBatchFailpoint,
} from "../pipeline/batch/failpoints.ts";
import { scheduleBatch } from "../pipeline/batch/scheduler.ts";
import { republishAfterBatch } from "../pipeline/site/build.ts";
import { migrate } from "../pipeline/postgres/migrate.ts";
import { logger } from "../pipeline/log.ts";

const USAGE = `
Usage: deno task batch [options]

Runs the batch DAG once: check_services → load new raw-zone files into
raw.* (+ catalogs, validation) → dbt snapshot/run/test → export marts to HDFS
→ compact the small files of closed hours. Data Postgres refuses is
quarantined, never fails the run. Prints a run summary; the run and every
task try are recorded in ops.*.

Options:
  --schedule              run on the schedule (LOGPIPE_BATCH_CRON, UTC) until
                          SIGINT/SIGTERM (what \`deno task up\` runs)
  --first-run-after SECONDS  with --schedule: also run once this soon after start
  --backfill              reload a time range instead of new files: every hour
                          partition overlapping [--from, --to) is deleted from
                          raw.* and reloaded from HDFS, then dbt runs again
  --from TIME             start of the backfill range (ISO-8601, e.g. 2026-01-01T10:00:00Z)
  --to TIME               end of the backfill range (exclusive)
  --reload-quarantine     after a fix, retry quarantined rows and files (all, or
                          those --reason / --id select) in this run: what loads
                          goes into raw.events and on through dbt and the
                          export; what still fails stays quarantined
  --reason REASONS        with --reload-quarantine: comma-separated reasons
                          (${QUARANTINE_REASONS.join(", ")})
  --id IDS                with --reload-quarantine: comma-separated raw.quarantine ids
  --dry-run               with --reload-quarantine: list what would be retried, run nothing
  --skip GROUPS           comma-separated task groups not to run (${
  TASK_GROUPS.join(", ")
})
  --no-site               do not rebuild the site after a successful run (by
                          default every successful run, manual or scheduled,
                          republishes dist/ and the dbt docs; so does
                          LOGPIPE_SITE_PUBLISH=false)
  --retry-delay SECONDS   first retry delay of every task (default 5; doubles per retry)
  --max-retry-delay SECONDS  cap of a retry delay (default 120)
  --failpoint PHASE:N     TESTING ONLY: SIGKILL this process the N-th time
                          PHASE is reached (${BATCH_FAIL_PHASES.join(", ")})
  -h, --help              this help

Exit codes: 0 success (also when data was quarantined: the summary says
what), 1 run failed, 75 another run is in progress, 2 usage error.
Configuration: LOGPIPE_* variables (see .env.example); notifications go to
LOGPIPE_SLACK_WEBHOOK_URL and LOGPIPE_SMTP_URL / LOGPIPE_EMAIL_TO when set.
`;

/** The --reload-quarantine filter, or undefined; flags validated. */
function parseReloadFlags(values: {
  "reload-quarantine"?: boolean;
  reason?: string;
  id?: string;
  "dry-run"?: boolean;
  backfill?: boolean;
}): ReloadFilter | undefined {
  const list = (v: string | undefined) =>
    v === undefined
      ? undefined
      : v.split(",").map((x) => x.trim()).filter(Boolean);
  const reasons = list(values.reason);
  const ids = list(values.id);
  if (!values["reload-quarantine"]) {
    for (const flag of ["reason", "id", "dry-run"] as const) {
      if (values[flag] !== undefined) {
        throw new UsageError(`--${flag} only applies with --reload-quarantine`);
      }
    }
    return undefined;
  }
  if (values.backfill) {
    throw new UsageError(
      "--reload-quarantine and --backfill exclude each other",
    );
  }
  if (reasons?.length === 0) throw new UsageError("--reason is empty");
  for (const r of reasons ?? []) {
    if (!(QUARANTINE_REASONS as readonly string[]).includes(r)) {
      throw new UsageError(
        `--reason: unknown reason "${r}" (reasons: ${
          QUARANTINE_REASONS.join(", ")
        })`,
      );
    }
  }
  if (ids?.length === 0) throw new UsageError("--id is empty");
  for (const id of ids ?? []) {
    if (!/^[1-9]\d{0,15}$/.test(id)) {
      throw new UsageError(
        `--id: "${id}" is not a quarantine id (a positive integer)`,
      );
    }
  }
  return { reasons, ids: ids?.map(Number) };
}

/** Exit code when another run holds the lock (EX_TEMPFAIL). */
export const EXIT_LOCKED = 75;

runMain(async () => {
  const { values } = parseCli(Deno.args, {
    schedule: { type: "boolean" },
    "first-run-after": { type: "string" },
    backfill: { type: "boolean" },
    from: { type: "string" },
    to: { type: "string" },
    skip: { type: "string" },
    "retry-delay": { type: "string" },
    "max-retry-delay": { type: "string" },
    "no-site": { type: "boolean" },
    failpoint: { type: "string" },
    "reload-quarantine": { type: "boolean" },
    reason: { type: "string" },
    id: { type: "string" },
    "dry-run": { type: "boolean" },
  }, USAGE);
  const reload = parseReloadFlags(values);
  const failpoint = values.failpoint === undefined
    ? undefined
    : parseBatchFailpoint(values.failpoint);
  if (values.failpoint !== undefined && !failpoint) {
    throw new UsageError(
      `--failpoint must be PHASE:N with PHASE one of ${
        BATCH_FAIL_PHASES.join(", ")
      } and N ≥ 1, got "${values.failpoint}"`,
    );
  }
  const from = timeFlag("from", values.from);
  const to = timeFlag("to", values.to);
  if (values.backfill) {
    if (!from || !to) throw new UsageError("--backfill needs --from and --to");
    if (to <= from) throw new UsageError("--to must be after --from");
  } else if (from || to) {
    throw new UsageError("--from and --to only apply with --backfill");
  }
  const skip = (values.skip ?? "").split(",").map((s) => s.trim()).filter(
    Boolean,
  );
  for (const g of skip) {
    if (!(TASK_GROUPS as readonly string[]).includes(g)) {
      throw new UsageError(
        `--skip: unknown task group "${g}" (groups: ${TASK_GROUPS.join(", ")})`,
      );
    }
  }
  if (
    skip.includes("check_services") || skip.includes("validate_and_process")
  ) {
    throw new UsageError(
      "--skip may only name dbt and export (checks and the load always run)",
    );
  }
  const retryDelay = numberFlag(
    "retry-delay",
    values["retry-delay"],
    5,
    0,
    3600,
  );
  const maxRetryDelay = numberFlag(
    "max-retry-delay",
    values["max-retry-delay"],
    120,
    0,
    3600,
  );
  const config = loadConfig();
  const publish = config.site.publish && !values["no-site"];
  // Idempotent (checksummed, advisory-locked); a Postgres that is down now is
  // the run's own business: it retries and reports that itself.
  await migrate(config).catch((err) =>
    logger("batch").warn("migrations not applied before the run", {
      error: err instanceof Error ? err.message : String(err),
    })
  );

  if (reload && values["dry-run"]) {
    const pool = createPool(config, {
      max: 1,
      applicationName: "logpipe-batch",
    });
    try {
      const items = await selectQuarantine(pool, reload);
      console.log(
        `${items.length} quarantined item(s) would be retried${
          items.length ? ":" : ""
        }`,
      );
      for (const q of items) {
        console.log(
          `  #${q.id} ${q.scope} ${q.reason} ${
            q.source_path.split("/").pop()
          } @ ${q.kafka_partition}/${q.first_offset}${
            q.event_id ? ` event ${q.event_id}` : ""
          } (attempts ${q.attempts}): ${q.detail.slice(0, 120)}`,
        );
      }
    } finally {
      await pool.end();
    }
    return 0;
  }

  if (values.schedule) {
    if (values.backfill) {
      throw new UsageError("--schedule and --backfill exclude each other");
    }
    if (reload) {
      throw new UsageError(
        "--reload-quarantine is a one-off run, not --schedule",
      );
    }
    const firstRunAfter = values["first-run-after"] === undefined
      ? undefined
      : numberFlag("first-run-after", values["first-run-after"], 60, 0, 86_400);
    const schedule = scheduleBatch(config, {
      skipGroups: skip as TaskGroup[],
      retryDelayMs: retryDelay * 1000,
      maxRetryDelayMs: maxRetryDelay * 1000,
      firstRunAfterMs: firstRunAfter === undefined
        ? undefined
        : firstRunAfter * 1000,
      onSuccess: publish
        ? async () => {
          await republishAfterBatch(config);
        }
        : undefined,
    });
    console.log(
      `batch: scheduled "${schedule.cron}" (UTC)${
        firstRunAfter === undefined ? "" : `, first run in ${firstRunAfter} s`
      }; Ctrl-C stops`,
    );
    const { promise, resolve } = Promise.withResolvers<void>();
    Deno.addSignalListener("SIGINT", () => resolve());
    Deno.addSignalListener("SIGTERM", () => resolve());
    await promise;
    console.error(
      "batch: stopping the schedule (a run in progress is cancelled and rolls back)…",
    );
    await schedule.stop();
    return 0;
  } else if (values["first-run-after"] !== undefined) {
    throw new UsageError("--first-run-after only applies with --schedule");
  }

  const controller = new AbortController();
  const onSignal = () => {
    console.error(
      "batch: interrupted; cancelling the run (tasks abort, the load rolls back)…",
    );
    controller.abort(new Error("interrupted"));
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  const tty = Deno.stderr.isTerminal();
  const result = await runDag(config, {
    trigger: values.backfill ? "backfill" : "manual",
    backfill: values.backfill ? { from: from!, to: to! } : undefined,
    skipGroups: skip as TaskGroup[],
    retryDelayMs: retryDelay * 1000,
    maxRetryDelayMs: maxRetryDelay * 1000,
    signal: controller.signal,
    onProgress: tty ? (msg) => console.error(`batch: ${msg}`) : undefined,
    failpoint,
    reloadQuarantine: reload,
  });
  Deno.removeSignalListener("SIGINT", onSignal);
  Deno.removeSignalListener("SIGTERM", onSignal);
  if (result.state === "locked") {
    console.error(formatSummary(result));
    return EXIT_LOCKED;
  }
  console.log(formatSummary(result));
  if (result.state === "failed") return 1;
  if (publish) {
    // A manual run republishes the site too (the schedule does it in
    // onSuccess), so its pages show this run's data.
    console.error("batch: republishing the site (--no-site skips this)…");
    try {
      const site = await republishAfterBatch(config);
      console.error(
        `batch: site republished in ${(site.ms / 1000).toFixed(1)} s`,
      );
    } catch (err) {
      console.error(
        `batch: the run succeeded, but republishing the site failed: ${
          err instanceof Error ? err.message : err
        }`,
      );
      return 1;
    }
  }
  return 0;
});
