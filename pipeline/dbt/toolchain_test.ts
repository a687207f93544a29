/** Pure-logic tests of the dbt toolchain helpers (no dbt, no database). */
import assert from "node:assert/strict";
import { loadConfig } from "../config.ts";
import {
  dbtEnv,
  dbtPaths,
  failedNodes,
  nodeName,
  parseDbtVersion,
  parsePins,
  parseRunResults,
  profilesYaml,
  REQUIREMENTS_FILE,
} from "./toolchain.ts";

// The defaults for every other setting; the values under test spelled out.
const config = {
  localDir: "/tmp/lp-home",
  postgres: {
    ...loadConfig({}).postgres,
    url: "postgres://owner:s%40cret@db.example:6543/my_db",
    external: true,
    host: "db.example",
    port: 6543,
    database: "my_db",
    user: "owner",
    biUser: "bi_ro",
    biPassword: undefined,
  },
};

Deno.test("nodeName strips generic-test hashes and keeps unit test model", () => {
  assert.deepStrictEqual(nodeName("model.logpipe.fact_event"), "fact_event");
  assert.deepStrictEqual(
    nodeName("test.logpipe.unique_fact_event_event_sk.1a2b3c4d5e"),
    "unique_fact_event_event_sk",
  );
  assert.deepStrictEqual(
    nodeName("test.logpipe.assert_order_settled_once"),
    "assert_order_settled_once",
  );
  assert.deepStrictEqual(
    nodeName("unit_test.logpipe.fact_order.joins_version"),
    "fact_order::joins_version",
  );
  assert.deepStrictEqual(nodeName("source.logpipe.raw.events"), "raw.events");
});

Deno.test("parseRunResults maps run_results.json and failedNodes picks failures", () => {
  const results = parseRunResults(JSON.stringify({
    results: [
      {
        unique_id: "model.logpipe.fact_order",
        status: "success",
        failures: null,
        message: "SELECT 12",
        execution_time: 0.5,
        adapter_response: { rows_affected: 12 },
      },
      {
        unique_id: "test.logpipe.assert_order_amount_equals_sum_of_lines",
        status: "fail",
        failures: 3,
        message: "Got 3 results",
        execution_time: 0.1,
      },
      {
        unique_id: "test.logpipe.not_null_x_y.0123456789",
        status: "warn",
        failures: 1,
        message: null,
      },
      {
        unique_id: "model.logpipe.broken",
        status: "error",
        message: "Database Error",
      },
    ],
  }));
  assert.deepStrictEqual(results.length, 4);
  assert.deepStrictEqual(results[0], {
    uniqueId: "model.logpipe.fact_order",
    resourceType: "model",
    name: "fact_order",
    status: "success",
    failures: null,
    message: "SELECT 12",
    executionTimeS: 0.5,
    rowsAffected: 12,
  });
  const run = {
    ok: false,
    exitCode: 1,
    stdout: "",
    stderr: "",
    results,
    elapsedMs: 1,
  };
  assert.deepStrictEqual(failedNodes(run).map((r) => r.name), [
    "assert_order_amount_equals_sum_of_lines",
    "broken",
  ]);
  assert.deepStrictEqual(failedNodes(run, { includeWarn: true }).length, 3);
  assert.deepStrictEqual(failedNodes(run)[0].failures, 3);
});

Deno.test("parsePins reads exact pins and rejects ranges", () => {
  const pins = parsePins(
    "# c\ndbt-core==1.12.6\n\nPyYAML==6.0.4  # yaml\ntyping_extensions==4.16.0\n",
  );
  assert.deepStrictEqual(pins.get("dbt-core"), "1.12.6");
  assert.deepStrictEqual(pins.get("pyyaml"), "6.0.4");
  assert.deepStrictEqual(pins.get("typing-extensions"), "4.16.0");
  assert.throws(() => parsePins("dbt-core>=1.12\n"));
});

Deno.test("dbt/requirements.txt pins dbt-core 1.12.6 and dbt-postgres 1.11.0 exactly", async () => {
  const pins = parsePins(await Deno.readTextFile(REQUIREMENTS_FILE));
  assert.deepStrictEqual(pins.get("dbt-core"), "1.12.6");
  assert.deepStrictEqual(pins.get("dbt-postgres"), "1.11.0");
  assert(
    !pins.has("dbt-core-experimental-parser"),
    "the GitHub-downloading parser must stay out",
  );
  assert(
    pins.size > 30,
    "the lock must be complete (installed with --no-deps)",
  );
});

Deno.test("parseDbtVersion reads core and adapter versions", () => {
  const text =
    "Core:\n  - installed: 1.12.6\n  - latest:    1.12.6 - Up to date!\n\nPlugins:\n  - postgres: 1.11.0 - Up to date!\n";
  assert.deepStrictEqual(parseDbtVersion(text), {
    core: "1.12.6",
    postgres: "1.11.0",
  });
  assert.deepStrictEqual(parseDbtVersion("garbage"), {
    core: "",
    postgres: "",
  });
});

Deno.test("profiles.yml holds no connection values and no secret; env carries them", () => {
  const yml = profilesYaml();
  assert(
    !yml.includes("s@cret") && !yml.includes("db.example") &&
      !yml.includes("my_db"),
  );
  assert(yml.includes("env_var('DBT_ENV_SECRET_LOGPIPE_PASSWORD'"));
  assert(yml.includes("schema: analytics"));
  const env = dbtEnv(config);
  assert.deepStrictEqual(env.LOGPIPE_DBT_HOST, "db.example");
  assert.deepStrictEqual(env.LOGPIPE_DBT_PORT, "6543");
  assert.deepStrictEqual(env.LOGPIPE_DBT_DBNAME, "my_db");
  assert.deepStrictEqual(env.DBT_ENV_SECRET_LOGPIPE_PASSWORD, "s@cret");
  assert.deepStrictEqual(env.DBT_SEND_ANONYMOUS_USAGE_STATS, "false");
  assert.deepStrictEqual(env.PGTZ, "UTC");
  assert.deepStrictEqual(env.LOGPIPE_BI_USER, "bi_ro");
});

Deno.test("dbtPaths keeps the venv shared and target/logs per database", () => {
  const p = dbtPaths(config);
  assert.deepStrictEqual(p.venvDir, "/tmp/lp-home/venv");
  assert.deepStrictEqual(p.profilesDir, "/tmp/lp-home/dbt-profiles");
  assert.deepStrictEqual(p.targetDir, "/tmp/lp-home/dbt/my_db/target");
  const other = dbtPaths({
    ...config,
    postgres: { ...config.postgres, database: "other" },
  });
  assert(other.targetDir !== p.targetDir);
  assert.deepStrictEqual(other.venvDir, p.venvDir);
});
