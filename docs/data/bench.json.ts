/** Benchmarks page: the latest `deno task bench` results (.local/bench/latest.json). */
import { loadConfig } from "../../pipeline/config.ts";
import { type LoaderEnvelope, runLoader } from "../../pipeline/site/loaders.ts";
import {
  type BenchReport,
  parseBenchReport,
} from "../../pipeline/bench/report.ts";

await runLoader("deno task bench", async (): Promise<LoaderEnvelope> => {
  const path = `${loadConfig().localDir}/bench/latest.json`;
  const failed = (status: "missing" | "error", message: string) => ({
    status,
    asOf: null,
    builtAt: new Date().toISOString(),
    source: "deno task bench",
    message,
    data: {},
  });
  let report: BenchReport;
  try {
    report = parseBenchReport(JSON.parse(await Deno.readTextFile(path)));
  } catch (err) {
    return err instanceof Deno.errors.NotFound
      ? failed(
        "missing",
        "No benchmark has run on this machine yet: run deno task bench.",
      )
      : failed("error", `${path}: ${err instanceof Error ? err.message : err}`);
  }
  // Rows of suites a partial run (--only) did not run keep their own time.
  const runs = new Set(report.rows.map((r) => r.at)).size;
  const quick = report.rows.filter((r) => r.quick).length;
  return {
    status: report.rows.length ? "ok" : "empty",
    asOf: report.at,
    builtAt: new Date().toISOString(),
    source: `deno task bench${
      quick && quick === report.rows.length ? " --quick" : ""
    }${runs > 1 ? `, rows from ${runs} runs (see "measured")` : ""}${
      quick && quick < report.rows.length
        ? `, ${quick} row${quick === 1 ? "" : "s"} --quick`
        : ""
    }`,
    data: { rows: report.rows as unknown as Record<string, unknown>[] },
  };
});
