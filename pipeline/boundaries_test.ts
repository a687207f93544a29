/**
 * Stage boundaries: a file in `pipeline/<stage>/` imports another stage's
 * files only through the shared modules below, or through an exception
 * listed here with its reason. The imports are read from the source (static
 * `import` / `export … from` and `import("…")` with a string literal), so a
 * new edge fails this test until it goes through a shared module or is
 * written down here.
 *
 * Tests are checked too, with a wider allowance: an integration test drives
 * several stages on purpose (it serves the real API, starts its own
 * services, builds the site), so tests and the test support in `testing/`
 * may also use the entry points in TEST_ENTRY_POINTS; they may still not
 * reach into another stage's internals. The benchmarks (`bench/`) are not
 * checked: they time each stage's own units (the loader, the DAG, the
 * producer's sinks), which is reaching in by design. Product files may
 * import neither tests, `testing/` nor `bench/`.
 */
import assert from "node:assert/strict";

const PIPELINE = new URL("./", import.meta.url);

/** Folders every stage may import: they belong to no single stage. */
export const SHARED_MODULES: Record<string, string> = {
  "zones": "the HDFS zones: names, commit protocol, readers, Parquet format",
  "clients": "the Kafka, WebHDFS and PostgreSQL clients",
  "probes": "the service health probes and their verdicts",
  "events": "the event contract, generator and flattening",
  "notify": "Slack, e-mail and webhook notifications",
  "postgres": "the migrations runner and the BI role",
};

/** Product imports across stages that are real dependencies, with why. */
const PRODUCT_EXCEPTIONS: Record<string, string> = {
  "api/alert_routes.ts -> alerts/rules.ts":
    "the API's alert routes check rules with the alerts stage's one validator",
  "api/alert_routes.ts -> alerts/store.ts":
    "the API's alert routes read and change the rules in the alerts stage's store",
  "api/alert_routes.ts -> alerts/metrics.ts":
    "the API's alert routes hand the alerts stage its database handle (Db)",
  "api/routes.ts -> batch/quarantine.ts":
    "the API lists quarantined data under the batch's reason names",
  "api/routes.ts -> redrive/dead_letters.ts":
    "the API shows the dead letters the redrive stage reads",
  "batch/dbt_step.ts -> dbt/toolchain.ts":
    "one way to run dbt (venv, generated profile) for the batch and the site",
  "site/build.ts -> dbt/toolchain.ts":
    "one way to run dbt (venv, generated profile) for the batch and the site",
  "redrive/redrive.ts -> producer/partitioner.ts":
    "a re-injected event must land on the partition the producer picks",
  "zones/bulk_files.ts -> services/hdfs.ts":
    "bulk HDFS file work runs the Hadoop client jars the services install",
};

/** What tests and `testing/` may use of other stages besides shared ones. */
const TEST_ENTRY_POINTS: Record<string, string> = {
  "api/server.ts": "tests serve the real API",
  "api/queries.ts": "fixtures write through the API's database handle type",
  "services/manager.ts": "tests check or start the local services",
  "services/process.ts": "tests start their own service instances",
  "services/kafka.ts": "tests start their own Kafka",
  "services/postgres.ts": "tests start their own PostgreSQL",
  "site/build.ts": "browser tests build the site they open",
  "powerbi/tmdl.ts": "the BI test checks the semantic model on the warehouse",
  "bench/proc.ts":
    "the fault and consumer memory tests read /proc the way the benchmarks do",
};

/** Folders under pipeline/ that are not stages (checked differently). */
const NOT_CHECKED = new Set(["bench", "migrations"]);

const IMPORT_RE =
  /(?:^|[\s;])(?:import|export)\s[^;]*?\bfrom\s*["']([^"']+)["']|(?:^|[\s;])import\s*["']([^"']+)["']|\bimport\(\s*["']([^"']+)["']\s*\)/g;

/** The relative module specifiers a TypeScript file imports. */
export function importsOf(source: string): string[] {
  const specs: string[] = [];
  for (const m of source.matchAll(IMPORT_RE)) {
    const spec = m[1] ?? m[2] ?? m[3];
    if (spec.startsWith(".")) specs.push(spec);
  }
  return specs;
}

async function* tsFiles(dir: URL): AsyncGenerator<URL> {
  for await (const e of Deno.readDir(dir)) {
    const url = new URL(e.name + (e.isDirectory ? "/" : ""), dir);
    if (e.isDirectory) yield* tsFiles(url);
    else if (/\.(ts|js)$/.test(e.name)) yield url;
  }
}

/** A path relative to pipeline/, or null when it lies outside it. */
function underPipeline(url: URL): string | null {
  return url.pathname.startsWith(PIPELINE.pathname)
    ? url.pathname.slice(PIPELINE.pathname.length)
    : null;
}

const isTest = (path: string) => /_test\.ts$/.test(path);
const stageOf = (path: string) => path.includes("/") ? path.split("/")[0] : "";

/** Why `from` may import `to`, or null when the import breaks the rule. */
function allowance(from: string, to: string): string | null {
  const fromStage = stageOf(from);
  const toStage = stageOf(to);
  if (toStage === "" || toStage === fromStage) return "own stage or top level";
  if (SHARED_MODULES[toStage]) return `shared module ${toStage}/`;
  const support = isTest(from) || fromStage === "testing";
  if (toStage === "testing" || isTest(to)) {
    return support ? "test support" : null;
  }
  if (toStage === "bench") return support ? TEST_ENTRY_POINTS[to] : null;
  if (support && TEST_ENTRY_POINTS[to]) return TEST_ENTRY_POINTS[to];
  return PRODUCT_EXCEPTIONS[`${from} -> ${to}`] ?? null;
}

Deno.test("importsOf reads static, re-export, side-effect and dynamic imports", () => {
  const src = [
    'import { a } from "../api/server.ts";',
    'import type {\n  B,\n} from "./b.ts";',
    'export { c } from "../zones/c.ts";',
    'import "../site/side.ts";',
    'const m = await import("../batch/dag.ts");',
    'import pg from "pg";',
    "// a comment that says import nothing",
  ].join("\n");
  assert.deepEqual(importsOf(src), [
    "../api/server.ts",
    "./b.ts",
    "../zones/c.ts",
    "../site/side.ts",
    "../batch/dag.ts",
  ]);
});

Deno.test("the rule refuses a product file reaching into another stage", () => {
  assert.equal(allowance("batch/tiny_files.ts", "consumer/flush.ts"), null);
  assert.equal(allowance("api/routes.ts", "testing/env.ts"), null);
  assert.equal(allowance("site/build.ts", "bench/proc.ts"), null);
  assert.equal(allowance("site/x_test.ts", "batch/dag.ts"), null);
  assert.ok(allowance("site/x_test.ts", "api/server.ts"));
  assert.ok(allowance("batch/dag.ts", "zones/commit.ts"));
});

Deno.test("stage files import other stages only through shared modules", async () => {
  const violations: string[] = [];
  const usedExceptions = new Set<string>();
  for await (const file of tsFiles(PIPELINE)) {
    const from = underPipeline(file)!;
    if (stageOf(from) === "" || NOT_CHECKED.has(stageOf(from))) continue;
    for (const spec of importsOf(await Deno.readTextFile(file))) {
      const to = underPipeline(new URL(spec, file));
      if (to === null) continue; // docs/ components the site tests load
      const why = allowance(from, to);
      if (why === null) {
        violations.push(
          `pipeline/${from} imports "${spec}" (pipeline/${to}): a stage may ` +
            `import another stage only through the shared modules ` +
            `(${Object.keys(SHARED_MODULES).join(", ")}, top-level ` +
            `pipeline/*.ts) or an exception listed in boundaries_test.ts`,
        );
      }
      const key = `${from} -> ${to}`;
      if (PRODUCT_EXCEPTIONS[key]) usedExceptions.add(key);
    }
  }
  assert.deepEqual(violations, []);
  // An exception nobody needs any more is removed, not kept "just in case".
  assert.deepEqual(
    Object.keys(PRODUCT_EXCEPTIONS).filter((k) => !usedExceptions.has(k)),
    [],
  );
});
