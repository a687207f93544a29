/**
 * Product report (BI): product activity per day, country and device; product details; the catalog per category.
 * Arrow tables in a tar archive (see pipeline/site/arrow_archive.ts), from
 * the marts in PostgreSQL (analytics.*, what Power BI reads); the SQL is in
 * pipeline/site/datasets.ts (PRODUCT).
 */
import { loadConfig } from "../../pipeline/config.ts";
import { queryMarts, runArchiveLoader } from "../../pipeline/site/loaders.ts";
import { PRODUCT } from "../../pipeline/site/datasets.ts";

await runArchiveLoader(
  "PostgreSQL analytics",
  Object.keys(PRODUCT.queries),
  () => queryMarts(loadConfig(), PRODUCT.queries),
  PRODUCT.params,
);
