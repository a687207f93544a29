/**
 * User behaviour page: sessions, funnel, durations, users, event types and product interactions.
 * Arrow tables in a tar archive (see pipeline/site/arrow_archive.ts), read
 * from the latest HDFS export: only the columns and partitions named in
 * pipeline/site/datasets.ts (BEHAVIOUR).
 */
import { loadConfig } from "../../pipeline/config.ts";
import { queryExports, runArchiveLoader } from "../../pipeline/site/loaders.ts";
import { BEHAVIOUR } from "../../pipeline/site/datasets.ts";

await runArchiveLoader(
  "HDFS exports",
  Object.keys(BEHAVIOUR.queries),
  (stats) =>
    queryExports(loadConfig(), BEHAVIOUR.sources, BEHAVIOUR.queries, stats),
);
