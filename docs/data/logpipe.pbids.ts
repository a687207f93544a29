/**
 * The Power BI connection file offered for download on the BI pages: when
 * LOGPIPE_POSTGRES_LISTEN opens the local cluster to other hosts (e.g. Power
 * BI on the Windows side of WSL2), one naming the address they use;
 * otherwise the dbt project's `dbt/powerbi/*.pbids`, or the same file built
 * from the configured database (no credentials: Power BI asks for the
 * read-only BI role's password).
 */
import { loadConfig } from "../../pipeline/config.ts";
import { pbids, reachableServer } from "../../pipeline/powerbi/pbids.ts";

const config = loadConfig();
const opened = reachableServer(config);
const dir = new URL("../../dbt/powerbi/", import.meta.url);
let text: string | undefined = opened
  ? JSON.stringify(pbids(opened, config.postgres.database), null, 2)
  : undefined;
try {
  for await (const entry of Deno.readDir(dir)) {
    if (!text && entry.isFile && entry.name.endsWith(".pbids")) {
      text = await Deno.readTextFile(new URL(entry.name, dir));
      break;
    }
  }
} catch {
  // no dbt/powerbi folder yet
}
if (!text) {
  const { postgres } = config;
  text = JSON.stringify(
    pbids(`${postgres.host}:${postgres.port}`, postgres.database),
    null,
    2,
  );
}
console.log(text);
