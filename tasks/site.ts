/**
 * `deno task site:build` builds the site into dist/; `deno task site:preview`
 * builds it, then serves it with the API on the same origin (the live pages
 * poll /api/...), until Ctrl-C.
 */
import { intFlag, parseCli, runMain, UsageError } from "../pipeline/cli.ts";
import { loadConfig } from "../pipeline/config.ts";
import { buildSite } from "../pipeline/site/build.ts";
import { startApi } from "../pipeline/api/server.ts";

const USAGE = `
usage: deno task site:build [--keep-cache] [--verbose]
       deno task site:preview [--port N] [--no-build] [--keep-cache]

  build     build docs/ into dist/ (Observable Framework under Deno; data
            loaders read the marts in PostgreSQL and the exports in HDFS)
  preview   build, then serve dist/ and the API on http://127.0.0.1:PORT

  --keep-cache  reuse the data loaders' cached outputs (faster, may be stale)
  --verbose     show Framework's output while building
  --no-build    preview the existing dist/ without building
  --port N      preview port (default: LOGPIPE_API_PORT, 8787)
`;

await runMain(async () => {
  const { values, positionals } = parseCli(
    Deno.args,
    {
      "keep-cache": { type: "boolean" },
      verbose: { type: "boolean" },
      "no-build": { type: "boolean" },
      port: { type: "string" },
    },
    USAGE,
    { allowPositionals: true },
  );
  const [sub, ...rest] = positionals;
  if (sub !== "build" && sub !== "preview") {
    throw new UsageError(`expected "build" or "preview", got "${sub ?? ""}"`);
  }
  if (rest.length) throw new UsageError(`unexpected argument "${rest[0]}"`);
  const config = loadConfig();
  const port = intFlag("port", values.port, config.api.port, 0, 65535);
  if (sub === "build" || !values["no-build"]) {
    console.error("building the site (docs/ → dist/) …");
    const res = await buildSite({
      projectRoot: config.projectRoot,
      keepCache: values["keep-cache"],
      verbose: values.verbose,
    });
    if (!res.ok) {
      console.error(res.output.split("\n").slice(-40).join("\n"));
      console.error(`error: site build failed (exit ${res.code})`);
      return 1;
    }
    console.error(`built ${res.distDir} in ${(res.ms / 1000).toFixed(1)} s`);
  }
  if (sub === "build") return 0;
  const api = await startApi(config, { port });
  console.log(`site and API: ${api.url}/`);
  const { promise, resolve } = Promise.withResolvers<void>();
  Deno.addSignalListener("SIGINT", () => resolve());
  Deno.addSignalListener("SIGTERM", () => resolve());
  await promise;
  await api.shutdown();
  return 0;
});
