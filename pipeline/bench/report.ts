/**
 * The benchmark table every `pipeline/bench/*.ts` module contributes rows
 * to, and `deno task bench` prints: our figure, the reference tool's figure
 * measured in the same run on the same machine, the ratio, the target, and
 * pass / short (with the reason when short).
 */

export interface BenchRow {
  /** What was measured, e.g. "producer throughput (acks=all, ~700 B)". */
  name: string;
  /** Our figure. */
  ours: number;
  unit: string;
  /** The reference tool's figure in the same run (Kafka perf tools, psql). */
  reference?: number;
  referenceName?: string;
  /** ours / reference, when a reference exists. */
  ratio?: number;
  /** Human-readable target, e.g. "≥ 50,000 ev/s and ≥ 40% of Kafka's". */
  target: string;
  pass: boolean;
  note?: string;
}

/** Builds a row, computing the ratio. */
export function benchRow(r: Omit<BenchRow, "ratio">): BenchRow {
  return {
    ...r,
    ratio: r.reference !== undefined && r.reference > 0
      ? r.ours / r.reference
      : undefined,
  };
}

function fmt(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return "–";
  if (Math.abs(n) >= 100) return Math.round(n).toLocaleString("en-US");
  if (Math.abs(n) >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

/** The table as aligned text (what `deno task bench` prints). */
export function formatBenchTable(rows: BenchRow[]): string {
  const head = ["benchmark", "ours", "reference", "ratio", "target", "result"];
  const body = rows.map((r) => [
    r.name,
    `${fmt(r.ours)} ${r.unit}`,
    r.reference !== undefined
      ? `${fmt(r.reference)} ${r.unit} (${r.referenceName ?? "ref"})`
      : "–",
    r.ratio !== undefined ? `${(r.ratio * 100).toFixed(0)}%` : "–",
    r.target,
    r.pass ? "pass" : `SHORT${r.note ? `: ${r.note}` : ""}`,
  ]);
  const widths = head.map((h, i) =>
    Math.max(h.length, ...body.map((b) => b[i].length))
  );
  const line = (cells: string[]) =>
    cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  return [line(head), line(widths.map((w) => "-".repeat(w))), ...body.map(line)]
    .join("\n");
}
