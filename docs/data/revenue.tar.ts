/**
 * Revenue page: orders by day, country, device, payment method, status and category.
 * Arrow tables in a tar archive (see pipeline/site/arrow_archive.ts), read
 * from the latest HDFS export: only the columns and partitions named in
 * pipeline/site/datasets.ts (SALES).
 */
import { loadConfig } from "../../pipeline/config.ts";
import { queryExports, runArchiveLoader } from "../../pipeline/site/loaders.ts";
import { SALES } from "../../pipeline/site/datasets.ts";

await runArchiveLoader(
  "HDFS exports",
  Object.keys(SALES.queries),
  (stats) => queryExports(loadConfig(), SALES.sources, SALES.queries, stats),
  SALES.params,
);
