/**
 * The Power BI connection file offered for download on the BI pages: the dbt
 * project's `dbt/powerbi/*.pbids` when present, otherwise the same standard
 * PostgreSQL data-source file built from the configured database (no
 * credentials: Power BI asks for the read-only BI role's password).
 */
import { loadConfig } from "../../pipeline/config.ts";

const dir = new URL("../../dbt/powerbi/", import.meta.url);
let text: string | undefined;
try {
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && entry.name.endsWith(".pbids")) {
      text = await Deno.readTextFile(new URL(entry.name, dir));
      break;
    }
  }
} catch {
  // no dbt/powerbi folder yet
}
if (!text) {
  const { postgres } = loadConfig();
  text = JSON.stringify(
    {
      version: "0.1",
      connections: [{
        details: {
          protocol: "postgresql",
          address: {
            server: `${postgres.host}:${postgres.port}`,
            database: postgres.database,
          },
        },
        options: {},
        mode: "DirectQuery",
      }],
    },
    null,
    2,
  );
}
console.log(text);
