/**
 * Users report (BI): activity per user, day, country and device; the users' profiles.
 * Arrow tables in a tar archive (see pipeline/site/arrow_archive.ts), from
 * the marts in PostgreSQL (analytics.*, what Power BI reads); the SQL is in
 * pipeline/site/datasets.ts (USERS).
 */
import { loadConfig } from "../../pipeline/config.ts";
import { queryMarts, runArchiveLoader } from "../../pipeline/site/loaders.ts";
import { USERS } from "../../pipeline/site/datasets.ts";

await runArchiveLoader(
  "PostgreSQL analytics",
  Object.keys(USERS.queries),
  () => queryMarts(loadConfig(), USERS.queries),
  USERS.params,
);
