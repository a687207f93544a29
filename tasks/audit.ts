/**
 * `deno task audit`: reconcile every layer by event_id and print the table;
 * exit 1 on any unexplained difference. See pipeline/audit/audit.ts.
 */
import { parseCli, runMain, UsageError } from "../pipeline/cli.ts";
import { loadConfig } from "../pipeline/config.ts";
import { formatAudit, runAudit } from "../pipeline/audit/audit.ts";
import { fingerprintMarts } from "../pipeline/audit/fingerprint.ts";

const USAGE = `
usage: deno task audit [--json] [--fingerprint] [--produced FILE]

  Reconciles produced → Kafka → HDFS raw and dead-letter zones → raw.events
  → fact_event / fact_order → report marts, by Kafka offset and event_id.
  Differences still in flight (not yet consumed, batched or modelled) are
  explained; anything else fails the audit (exit 1).

  --json            print the report as JSON on stdout
  --fingerprint     also print a checksum of every mart's content (reproducibility)
  --produced FILE   NDJSON from \`deno task produce --out FILE\`: check every produced event
`;

await runMain(async () => {
  const { values } = parseCli(Deno.args, {
    json: { type: "boolean" },
    fingerprint: { type: "boolean" },
    produced: { type: "string" },
  }, USAGE);
  if (values.produced !== undefined) {
    try {
      if (!Deno.statSync(values.produced).isFile) throw new Error();
    } catch {
      throw new UsageError(`--produced: no such file "${values.produced}"`);
    }
  }
  const config = loadConfig();
  const report = await runAudit(config, { producedFile: values.produced });
  const fingerprint = values.fingerprint
    ? await fingerprintMarts(config)
    : undefined;
  if (values.json) {
    console.log(JSON.stringify({ ...report, fingerprint }, null, 2));
  } else {
    console.log(formatAudit(report));
    if (fingerprint) {
      console.log(`\nfingerprint ${fingerprint.total}`);
      for (const t of fingerprint.tables) {
        console.log(
          `  ${t.table.padEnd(32)} ${
            String(t.rows).padStart(9)
          } rows  ${t.hash}`,
        );
      }
    }
  }
  return report.ok ? 0 : 1;
});
