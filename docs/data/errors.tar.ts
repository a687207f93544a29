/**
 * Errors page: error events per day, country, device, service and code; all events per cell.
 * Arrow tables in a tar archive (see pipeline/site/arrow_archive.ts), read
 * from the latest HDFS export: only the columns and partitions named in
 * pipeline/site/datasets.ts (ERRORS).
 */
import { loadConfig } from "../../pipeline/config.ts";
import { queryExports, runArchiveLoader } from "../../pipeline/site/loaders.ts";
import { ERRORS } from "../../pipeline/site/datasets.ts";

await runArchiveLoader(
  "HDFS exports",
  Object.keys(ERRORS.queries),
  (stats) => queryExports(loadConfig(), ERRORS.sources, ERRORS.queries, stats),
  ERRORS.params,
);
