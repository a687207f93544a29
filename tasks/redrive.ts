/**
 * `deno task redrive`: re-validate dead letters with the current validator
 * and re-inject those that now pass, exactly once. See
 * pipeline/redrive/redrive.ts.
 */
import { parseCli, runMain, timeFlag, UsageError } from "../pipeline/cli.ts";
import { loadConfig } from "../pipeline/config.ts";
import { migrate } from "../pipeline/postgres/migrate.ts";
import { REJECT_REASON_LIST } from "../pipeline/events/schema.ts";
import { formatRedrive, redrive } from "../pipeline/redrive/redrive.ts";

const USAGE = `
usage: deno task redrive [--reason R] [--from T] [--to T] [--dry-run] [--json]

  Reads the dead-letter zone, validates every dead letter again with the
  current validator and configuration (e.g. a relaxed LOGPIPE_MAX_FUTURE_SKEW
  or a schema that now knows a field), and re-injects those that pass into
  their topic with their original key and headers, plus a header
  logpipe-redriven-from naming the dead letter. Each dead letter is
  re-injected at most once (ops.redriven; see the README for what happens
  when a run stops half way).

  --reason R   only dead letters of this reason (${
  REJECT_REASON_LIST.join(", ")
})
  --from T     only dead letters at or after T (ISO-8601: 2026-01-01 or
               2026-01-01T10:00:00Z; the Kafka timestamp, else the
               dead-letter time)
  --to T       only dead letters before T
  --dry-run    report what would be re-injected; send and record nothing
  --json       print the report as JSON
`;

await runMain(async () => {
  const { values } = parseCli(Deno.args, {
    reason: { type: "string" },
    from: { type: "string" },
    to: { type: "string" },
    "dry-run": { type: "boolean" },
    json: { type: "boolean" },
  }, USAGE);
  const reason = values.reason;
  if (
    reason !== undefined &&
    !(REJECT_REASON_LIST as readonly string[]).includes(reason)
  ) {
    throw new UsageError(
      `--reason must be one of ${
        REJECT_REASON_LIST.join(", ")
      }, got "${reason}"`,
    );
  }
  const from = timeFlag("from", values.from);
  const to = timeFlag("to", values.to);
  if (from && to && from >= to) {
    throw new UsageError("--from must be before --to");
  }
  const config = loadConfig();
  await migrate(config);
  const report = await redrive(config, {
    reason,
    from,
    to,
    dryRun: values["dry-run"],
  });
  console.log(
    values.json ? JSON.stringify(report, null, 2) : formatRedrive(report),
  );
  return 0;
});
