/**
 * dbt benchmark: `dbt build` time on the first 1,000,000 events (full build:
 * snapshot, staging, dims, facts, marts, every test) and the incremental
 * `dbt build` after the next 100,000 events (target: at most 60 s on the
 * 2-core machine). Runs on its own database (createTestEnv), fed by the
 * seeded raw fixture, and cleans up.
 */
import { createTestEnv } from "../testing/env.ts";
import { withConnection } from "../clients/postgres.ts";
import { failedNodes, runDbt } from "../dbt/toolchain.ts";
import {
  generateEvents,
  insertRows,
  seedRaw,
} from "../testing/dbt_fixtures.ts";
import { logger } from "../log.ts";

import { type BenchRow, benchRow } from "./report.ts";

const log = logger("bench.dbt");

/** Options of benchDbt. */
export interface BenchDbtOptions {
  /** Events in the first load (default 1,000,000). */
  events?: number;
  /** Events in the incremental load (default 100,000). */
  incrementalEvents?: number;
  /** Target of the incremental build in seconds (default 60). */
  incrementalTargetS?: number;
}

/** Average events per fixture session (measured on the generator), used to size the loads. */
const EVENTS_PER_SESSION = 4.69;

/** Runs the dbt benchmark and returns its rows. */
export async function benchDbt(
  opts: BenchDbtOptions = {},
): Promise<BenchRow[]> {
  const events = opts.events ?? 1_000_000;
  const incremental = opts.incrementalEvents ?? 100_000;
  const target = opts.incrementalTargetS ?? 60;
  const sessions = Math.ceil(events / EVENTS_PER_SESSION);
  const moreSessions = Math.ceil(incremental / EVENTS_PER_SESSION);
  const start = new Date("2026-01-01T00:00:00Z");
  const fixture = {
    seed: 2026,
    sessions,
    users: 2000,
    products: 10_000,
    start,
    sessionGapS: 4,
  };
  const t = await createTestEnv("bench_dbt");
  const rows: BenchRow[] = [];
  try {
    const t0 = performance.now();
    const first = await withConnection(
      t.config.postgres.url,
      (c) => seedRaw(c, fixture),
    );
    rows.push(benchRow({
      name: "dbt: seed raw (fixture)",
      ours: (performance.now() - t0) / 1000,
      unit: "s",
      target: "reported",
      pass: true,
      note: `${first.events} events`,
    }));
    log.info("seeded", { events: first.events });

    const full = await runDbt(t.config, ["build"]);
    if (!full.ok) {
      throw new Error(
        `full dbt build failed: ${
          failedNodes(full).map((n) => n.name).join(", ")
        }`,
      );
    }
    rows.push(benchRow({
      name: `dbt build, first ${first.events.toLocaleString("en-US")} events`,
      ours: full.elapsedMs / 1000,
      unit: "s",
      target: "reported",
      pass: true,
      note: `${full.results.length} nodes`,
    }));

    const more = await withConnection(t.config.postgres.url, async (c) => {
      const prices = new Map<string, string>(
        (await c.query(
          "select product_id, price::text as price from raw.products",
        )).rows
          .map((
            r: { product_id: string; price: string },
          ) => [r.product_id, r.price]),
      );
      return await generateEvents(
        { ...fixture, sessions: moreSessions, firstSession: sessions },
        (pid) => prices.get(pid)!,
        (batch) => insertRows(c, "raw.events", batch),
      );
    });
    const inc = await runDbt(t.config, ["build"]);
    if (!inc.ok) {
      throw new Error(
        `incremental dbt build failed: ${
          failedNodes(inc).map((n) => n.name).join(", ")
        }`,
      );
    }
    const incS = inc.elapsedMs / 1000;
    rows.push(benchRow({
      name: `dbt build, incremental +${
        more.events.toLocaleString("en-US")
      } events`,
      ours: incS,
      unit: "s",
      target: `≤ ${target} s`,
      pass: incS <= target,
      note: `${inc.results.length} nodes`,
    }));
    const slowest = [...inc.results].sort((a, b) =>
      b.executionTimeS - a.executionTimeS
    ).slice(0, 5);
    rows.push(benchRow({
      name: "dbt incremental: slowest node",
      ours: slowest[0]?.executionTimeS ?? 0,
      unit: "s",
      target: "reported",
      pass: true,
      note: slowest.map((n) => `${n.name} ${n.executionTimeS.toFixed(1)}s`)
        .join(", "),
    }));
    return rows;
  } finally {
    await t.cleanup();
  }
}

if (import.meta.main) {
  const events = Number(Deno.args[0] ?? 1_000_000);
  const rows = await benchDbt({
    events,
    incrementalEvents: Math.round(events / 10),
  });
  console.log(JSON.stringify(rows, null, 2));
}
