/**
 * `deno task api`: the read-only monitoring API and the built site on
 * LOGPIPE_API_HOST:LOGPIPE_API_PORT (127.0.0.1:8787) until Ctrl-C.
 */
import { intFlag, parseCli, runMain } from "../pipeline/cli.ts";
import { loadConfig } from "../pipeline/config.ts";
import { startApi } from "../pipeline/api/server.ts";

const USAGE = `
usage: deno task api [--port N] [--no-site]

  Serves the JSON endpoints over monitoring.* and ops.* (GET /api lists
  them), /healthz, and the built site (dist/, see deno task site:build).

  --port N    listen port (default LOGPIPE_API_PORT or 8787; 0 = any free)
  --no-site   serve the API only
`;

await runMain(async () => {
  const { values } = parseCli(Deno.args, {
    port: { type: "string" },
    "no-site": { type: "boolean" },
  }, USAGE);
  const config = loadConfig();
  const port = intFlag("port", values.port, config.api.port, 0, 65535);
  const api = await startApi(config, {
    port,
    siteDir: values["no-site"] ? null : undefined,
  });
  console.log(
    `API: ${api.url}/api · site: ${api.url}/ · health: ${api.url}/healthz`,
  );
  const { promise, resolve } = Promise.withResolvers<void>();
  Deno.addSignalListener("SIGINT", () => resolve());
  Deno.addSignalListener("SIGTERM", () => resolve());
  await promise;
  await api.shutdown();
  return 0;
});
