/**
 * Search page: searches per day, country, device and query; result-count bins.
 * Arrow tables in a tar archive (see pipeline/site/arrow_archive.ts), read
 * from the latest HDFS export: only the columns and partitions named in
 * pipeline/site/datasets.ts (SEARCH).
 */
import { loadConfig } from "../../pipeline/config.ts";
import { queryExports, runArchiveLoader } from "../../pipeline/site/loaders.ts";
import { SEARCH } from "../../pipeline/site/datasets.ts";

await runArchiveLoader(
  "HDFS exports",
  Object.keys(SEARCH.queries),
  (stats) => queryExports(loadConfig(), SEARCH.sources, SEARCH.queries, stats),
  SEARCH.params,
);
