/**
 * Sales report (BI): orders by day, country, device, payment method, status and category.
 * Arrow tables in a tar archive (see pipeline/site/arrow_archive.ts), from
 * the marts in PostgreSQL (analytics.*, what Power BI reads); the SQL is in
 * pipeline/site/datasets.ts (SALES).
 */
import { loadConfig } from "../../pipeline/config.ts";
import { queryMarts, runArchiveLoader } from "../../pipeline/site/loaders.ts";
import { SALES } from "../../pipeline/site/datasets.ts";

await runArchiveLoader(
  "PostgreSQL analytics",
  Object.keys(SALES.queries),
  () => queryMarts(loadConfig(), SALES.queries),
  SALES.params,
);
