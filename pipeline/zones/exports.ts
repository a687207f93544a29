/**
 * The exports zone as its readers see it: `${exportsDir}/_LATEST` holds the
 * HDFS folder of the current export version (written and swapped atomically
 * by pipeline/batch/export.ts). Readers (the site's data loaders, tests)
 * follow the pointer and never list `versions/`, so a swap under them is safe.
 */
import { type WebHdfs, WebHdfsError } from "../clients/webhdfs.ts";

/** Name of the pointer file below the exports folder. */
export const EXPORT_POINTER = "_LATEST";

/** The HDFS folder of the current export, or undefined before the first one. */
export async function latestExportDir(
  hdfs: WebHdfs,
  exportsDir: string,
): Promise<string | undefined> {
  try {
    const text = (await hdfs.readText(`${exportsDir}/${EXPORT_POINTER}`))
      .trim();
    return text || undefined;
  } catch (err) {
    if (err instanceof WebHdfsError && err.notFound) return undefined;
    throw err;
  }
}
