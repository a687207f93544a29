/** Benchmarks page: the latest `deno task bench` results (.local/bench/latest.json). */
import { loadConfig } from "../../pipeline/config.ts";
import { type LoaderEnvelope, runLoader } from "../../pipeline/site/loaders.ts";

await runLoader("deno task bench", async (): Promise<LoaderEnvelope> => {
  const path = `${loadConfig().localDir}/bench/latest.json`;
  let doc: { at: string; quick: boolean; rows: Record<string, unknown>[] };
  try {
    doc = JSON.parse(await Deno.readTextFile(path));
  } catch {
    return {
      status: "missing",
      asOf: null,
      builtAt: new Date().toISOString(),
      source: "deno task bench",
      message: "No benchmark has run on this machine yet: run deno task bench.",
      data: {},
    };
  }
  return {
    status: doc.rows.length ? "ok" : "empty",
    asOf: doc.at,
    builtAt: new Date().toISOString(),
    source: `deno task bench${doc.quick ? " --quick" : ""}`,
    data: { rows: doc.rows },
  };
});
