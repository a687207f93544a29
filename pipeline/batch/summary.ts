/** The run summary `deno task batch` prints: one line per task, then totals. */
import { formatMs } from "../format.ts";
import type { DagRunResult } from "./dag.ts";
import { formatSummaryLine } from "./quarantine.ts";

/** The summary as text lines (no colour; stdout may be a file). */
export function formatSummary(r: DagRunResult): string {
  if (r.state === "locked") {
    return `batch: another run is in progress (the Postgres run lock is held); nothing done.`;
  }
  const rows = r.tasks.map((t) => [
    `${t.group}.${t.taskId}`,
    t.state,
    String(t.tries),
    t.state === "skipped" ? "-" : formatMs(t.durationMs),
    t.rows === undefined ? "" : String(t.rows),
    t.state === "failed" ? (t.error ?? "").slice(0, 160) : "",
  ]);
  const head = ["task", "state", "tries", "duration", "rows", "error"];
  const widths = head.map((h, i) =>
    Math.max(h.length, ...rows.map((row) => row[i].length))
  );
  const line = (cells: string[]) =>
    cells.map((c, i) => i === cells.length - 1 ? c : c.padEnd(widths[i])).join(
      "  ",
    ).trimEnd();
  const out = [
    `run ${r.runId} (${r.trigger}): ${r.state.toUpperCase()} in ${
      formatMs(r.durationMs)
    }`,
    line(head),
    ...rows.map(line),
    `loaded ${r.filesLoaded} files, ${r.rowsLoaded} rows`,
  ];
  if (r.reload) {
    const x = r.reload;
    out.push(
      `reload of quarantined data: ${x.rowsSelected} row(s): ${x.loaded} loaded, ${x.duplicates} duplicate(s), ${x.alreadyLoaded} already loaded, ${x.stillQuarantined} still quarantined; ${x.filesReleased} file(s) loaded again${
        x.filesMissing ? `, ${x.filesMissing} no longer in the raw zone` : ""
      }`,
    );
  }
  if (r.quarantine) {
    out.push(`warning: ${formatSummaryLine(r.quarantine)}`);
    for (const e of r.quarantine.examples) out.push(`  - ${e}`);
    out.push(
      "  (raw.quarantine and the site's pipeline health page list them; deno task batch --reload-quarantine loads them again after a fix)",
    );
  }
  if (r.failingTests?.length) {
    out.push(`failing dbt tests: ${r.failingTests.join(", ")}`);
  }
  if (r.state === "failed" && r.error && r.tasks.length === 0) {
    out.push(`error: ${r.error}`);
  }
  if (!r.historySaved) {
    out.push("warning: part of the run history could not be written to ops.*");
  }
  return out.join("\n");
}
