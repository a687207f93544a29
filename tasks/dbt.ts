/**
 * `deno task dbt <dbt command> [dbt args]`: runs dbt from the project venv
 * against the configured database (profile generated from LOGPIPE_*), so no
 * global dbt, ~/.dbt or hand-written profile is needed. Two extra commands:
 * `setup` (install the venv only) and `docs-site` (generate the static docs
 * the site links to). Exit code = dbt's (2 for a usage error).
 */
import { runMain, UsageError } from "../pipeline/cli.ts";
import { loadConfig } from "../pipeline/config.ts";
import {
  ensureDbt,
  failedNodes,
  generateDocs,
  runDbt,
} from "../pipeline/dbt/toolchain.ts";

const USAGE = `
Usage: deno task dbt <command> [dbt options]

Runs dbt (project dbt/, venv in $LOGPIPE_HOME/venv, created on first use)
against the database of LOGPIPE_DATABASE_URL (default: the local cluster).
Everything after <command> is passed to dbt unchanged, e.g.:

  deno task dbt debug
  deno task dbt build
  deno task dbt build --select fact_order+
  deno task dbt test --select test_type:singular
  deno task dbt source freshness
  deno task dbt run --help          (dbt's own help for a command)

Extra commands:
  setup       install / check the dbt venv and profile, print versions
  docs-site   dbt docs generate --static into $LOGPIPE_HOME/dbt-docs
              (index.html, static_index.html, manifest.json, catalog.json)

Target and logs go to $LOGPIPE_HOME/dbt/<database>/. The password reaches dbt
only through the environment.
`;

const DBT_COMMANDS = new Set([
  "build",
  "clean",
  "clone",
  "compile",
  "debug",
  "deps",
  "docs",
  "init",
  "list",
  "ls",
  "parse",
  "retry",
  "run",
  "run-operation",
  "seed",
  "show",
  "snapshot",
  "source",
  "test",
]);

runMain(async () => {
  const args = [...Deno.args];
  const command = args[0];
  if (command === undefined) {
    throw new UsageError("missing dbt command (try --help)");
  }
  if (command === "-h" || command === "--help" || command === "help") {
    console.log(USAGE.trim());
    return 0;
  }
  const config = loadConfig();
  if (command === "setup") {
    if (args.length > 1) {
      throw new UsageError(`setup takes no arguments, got "${args[1]}"`);
    }
    const t = await ensureDbt(config);
    console.log(
      `dbt-core ${t.dbtVersion}, dbt-postgres ${t.postgresAdapterVersion} in ${t.paths.venvDir}`,
    );
    return 0;
  }
  if (command === "docs-site") {
    if (args.length > 1) {
      throw new UsageError(`docs-site takes no arguments, got "${args[1]}"`);
    }
    const { dir, run } = await generateDocs(config);
    if (!run.ok) {
      console.error(run.stdout.trim().split("\n").slice(-20).join("\n"));
      return run.exitCode || 1;
    }
    console.log(`dbt docs written to ${dir}`);
    return 0;
  }
  if (command.startsWith("-")) {
    throw new UsageError(
      `put the dbt command first, got option "${command}" (try --help)`,
    );
  }
  if (!DBT_COMMANDS.has(command)) {
    throw new UsageError(
      `unknown dbt command "${command}" (one of: ${
        [...DBT_COMMANDS].join(", ")
      })`,
    );
  }
  const run = await runDbt(config, args, { stream: true });
  const failed = failedNodes(run);
  if (failed.length) {
    console.error(
      `failing nodes: ${
        failed.map((f) => `${f.name} (${f.status})`).join(", ")
      }`,
    );
  }
  return run.exitCode;
});
