/**
 * The benchmark table every `pipeline/bench/*.ts` module contributes rows
 * to, and `deno task bench` prints: our figure, the reference tool's figure
 * measured in the same run on the same machine, the ratio, the target, and
 * pass / short (with the reason when short); and the report it keeps in
 * `.local/bench/latest.json`, where a partial run (`--only`) replaces only
 * its own suites' rows (mergeBenchReport).
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

/**
 * A row as `.local/bench/latest.json` keeps it: with the suite that measured
 * it and when, since a partial run (`--only`) keeps the other suites' rows
 * of earlier runs.
 */
export interface StoredBenchRow extends BenchRow {
  /**
   * The suite (`--only` name) that produced the row; absent in files written
   * before rows carried it.
   */
  suite?: string;
  /** When the run that measured the row started, ISO. */
  at: string;
  /** That run was `--quick`. */
  quick: boolean;
}

/** `.local/bench/latest.json`: what the site's Benchmarks page shows. */
export interface BenchReport {
  /** When the latest run started, ISO. */
  at: string;
  /** The latest run was `--quick`. */
  quick: boolean;
  rows: StoredBenchRow[];
}

/** One run of `deno task bench`, its rows tagged with their suite. */
export interface BenchRun {
  /** When the run started, ISO. */
  at: string;
  quick: boolean;
  /** The suites that ran, in run order. */
  suites: string[];
  /**
   * Every standard suite ran (no `--only`): the run replaces the whole
   * report, but for the opt-in suites below that it did not run.
   */
  complete: boolean;
  /**
   * Opt-in suites (`--peer spark`: minutes of Spark, ~350 MB installed):
   * a complete run without one keeps its earlier rows, with their time.
   */
  optInSuites?: string[];
  rows: Array<BenchRow & { suite: string }>;
}

/**
 * Reads a report written by any version of `deno task bench`: rows without
 * their own `at` / `quick` (files from before partial runs were merged) take
 * the file's. Throws on anything that is not a report.
 */
export function parseBenchReport(doc: unknown): BenchReport {
  const d = doc as Partial<BenchReport> | null;
  if (
    typeof d !== "object" || d === null || typeof d.at !== "string" ||
    !Array.isArray(d.rows)
  ) {
    throw new Error("not a benchmark report (expected { at, quick, rows })");
  }
  const quick = d.quick === true;
  return {
    at: d.at,
    quick,
    rows: d.rows.map((r) => ({
      ...r,
      at: typeof r.at === "string" ? r.at : d.at!,
      quick: typeof r.quick === "boolean" ? r.quick : quick,
    })),
  };
}

/**
 * The report after `run`: a complete run replaces everything but the rows
 * of opt-in suites it did not run (kept at the end); a partial run
 * replaces the rows of the suites it ran (in their place, new suites at the
 * end) and keeps every other row with the time it was measured. A row of an
 * older file that names no suite is dropped when the run measured a row of
 * the same name, or it is the failure row of a suite that ran.
 */
export function mergeBenchReport(
  previous: BenchReport | undefined,
  run: BenchRun,
): BenchReport {
  const fresh = (r: BenchRow & { suite: string }): StoredBenchRow => ({
    ...r,
    at: run.at,
    quick: run.quick,
  });
  const latest = { at: run.at, quick: run.quick };
  if (!previous) return { ...latest, rows: run.rows.map(fresh) };
  const ran = new Set(run.suites);
  if (run.complete) {
    const optIn = new Set(run.optInSuites ?? []);
    return {
      ...latest,
      rows: [
        ...run.rows.map(fresh),
        ...previous.rows.filter((r) =>
          r.suite !== undefined && optIn.has(r.suite) && !ran.has(r.suite)
        ),
      ],
    };
  }
  const names = new Set(run.rows.map((r) => r.name));
  const failureRows = new Set(run.suites.map((s) => `${s} (failed)`));
  const placed = new Set<string>();
  const rows: StoredBenchRow[] = [];
  const place = (suite: string) => {
    if (placed.has(suite)) return;
    placed.add(suite);
    rows.push(...run.rows.filter((r) => r.suite === suite).map(fresh));
  };
  for (const old of previous.rows) {
    if (old.suite !== undefined && ran.has(old.suite)) place(old.suite);
    else if (
      old.suite !== undefined ||
      !(names.has(old.name) || failureRows.has(old.name))
    ) rows.push(old);
  }
  for (const suite of run.suites) place(suite);
  return { ...latest, rows };
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
