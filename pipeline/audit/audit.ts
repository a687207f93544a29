/**
 * `deno task audit`: reconciles every layer of the pipeline, by Kafka
 * coordinates and event_id, and says for each difference whether it is
 * explained (still in flight: not yet consumed, not yet batched, not yet
 * modelled; or a bad record, which lives in the dead-letter zone) or not.
 *
 *   produced (when an --produced NDJSON is given)
 *   → Kafka (end offsets per partition)
 *   → HDFS raw + dead-letter zones (every offset exactly once in one of them)
 *   → raw.events (every raw-zone event once; loaded files are in the ledger)
 *   → analytics.fact_event / fact_order (every modelled event / order)
 *   → report marts (sales revenue = Σ fact_order completed)
 *
 * Any unexplained difference makes the audit fail (non-zero exit).
 */
import type { Config } from "../config.ts";
import { createKafka, topicEndOffsets } from "../clients/kafka.ts";
import { createPool, type Pool } from "../clients/postgres.ts";
import { validateEvent } from "../events/schema.ts";
import { readZones, type ZoneContents } from "../zones/readers.ts";

export interface LayerRow {
  layer: string;
  count: number;
  /** Expected here but absent. */
  missing: number;
  duplicated: number;
  /** Of the missing: explained (in flight, dead-lettered…). */
  explained: number;
  unexplained: number;
  note: string;
}

export interface AuditReport {
  at: string;
  topic: string;
  layers: LayerRow[];
  /** Human-readable lines for every unexplained difference (capped). */
  problems: string[];
  ok: boolean;
}

export interface AuditOptions {
  /** NDJSON written by `deno task produce --out FILE`: the produced events. */
  producedFile?: string;
}

const SAMPLE = 5;

function sample(ids: Iterable<string>): string {
  const out: string[] = [];
  for (const id of ids) {
    out.push(id);
    if (out.length >= SAMPLE) break;
  }
  return out.join(", ");
}

async function tableExists(pool: Pool, qualified: string): Promise<boolean> {
  const r = await pool.query("select to_regclass($1) is not null as ok", [
    qualified,
  ]);
  return r.rows[0].ok;
}

/** Offsets committed by the consumer group, per partition (-1 = none). */
async function committedOffsets(config: Config): Promise<Map<number, number>> {
  const admin = createKafka(config, { quiet: true }).admin();
  await admin.connect();
  try {
    const res = await admin.fetchOffsets({
      groupId: config.kafka.consumerGroup,
      topics: [config.kafka.topic],
    });
    return new Map(
      (res[0]?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]),
    );
  } finally {
    await admin.disconnect();
  }
}

/** Runs the audit. */
export async function runAudit(
  config: Config,
  opts: AuditOptions = {},
): Promise<AuditReport> {
  const layers: LayerRow[] = [];
  const problems: string[] = [];
  const problem = (line: string) => {
    if (problems.length < 50) problems.push(line);
  };

  // --- produced (optional) -------------------------------------------------
  let producedIds: Set<string> | undefined;
  let producedBad = 0;
  if (opts.producedFile) {
    producedIds = new Set();
    const text = await Deno.readFile(opts.producedFile);
    let start = 0;
    for (let i = 0; i <= text.length; i++) {
      if (i === text.length || text[i] === 10) {
        if (i > start) {
          const v = validateEvent(text.subarray(start, i));
          if (v.ok) producedIds.add(v.event.event_id);
          else producedBad++;
        }
        start = i + 1;
      }
    }
    layers.push({
      layer: "produced",
      count: producedIds.size + producedBad,
      missing: 0,
      duplicated: 0,
      explained: 0,
      unexplained: 0,
      note:
        `${producedIds.size} valid, ${producedBad} bad (from ${opts.producedFile})`,
    });
  }

  // --- Kafka ---------------------------------------------------------------
  const ends = await topicEndOffsets(config);
  const committed = await committedOffsets(config);
  let kafkaCount = 0;
  for (const o of ends.values()) kafkaCount += Number(o.high - o.low);
  layers.push({
    layer: "kafka",
    count: kafkaCount,
    missing: 0,
    duplicated: 0,
    explained: 0,
    unexplained: 0,
    note: `${ends.size} partitions; consumer committed ${
      [...committed.values()].reduce((n, o) => n + Math.max(o, 0), 0)
    }`,
  });

  // --- HDFS raw + dead-letter zones ----------------------------------------
  const zones: ZoneContents = await readZones(config);
  const seenOffsets = new Map<number, Map<number, number>>(); // partition → offset → times
  const note = (p: number, o: number) => {
    let m = seenOffsets.get(p);
    if (!m) seenOffsets.set(p, m = new Map());
    m.set(o, (m.get(o) ?? 0) + 1);
  };
  for (const r of zones.raw) note(r.kafka_partition, r.kafka_offset);
  for (const d of zones.deadLetters) note(d.partition, d.offset);
  let dupOffsets = 0, uncovered = 0, notYetConsumed = 0;
  for (const [p, { low, high }] of ends) {
    const m = seenOffsets.get(p) ?? new Map<number, number>();
    const done = committed.get(p) ?? -1;
    for (let o = Number(low); o < Number(high); o++) {
      const times = m.get(o) ?? 0;
      if (times > 1) {
        dupOffsets += times - 1;
        problem(`partition ${p} offset ${o} is in HDFS ${times} times`);
      }
      if (times === 0) {
        // Not in any file yet: fine while the consumer has not passed it.
        if (done < 0 || o >= done) notYetConsumed++;
        else {
          uncovered++;
          problem(
            `partition ${p} offset ${o} was committed by the consumer but is in no HDFS file`,
          );
        }
      }
    }
    for (const o of m.keys()) {
      if (o < Number(low) || o >= Number(high)) {
        problem(
          `partition ${p} offset ${o} is in HDFS but outside the topic's [${low}, ${high})`,
        );
        uncovered++;
      }
    }
  }
  const rawIds = new Map<string, string>(); // event_id → path
  let dupIds = 0;
  for (const r of zones.raw) {
    if (rawIds.has(r.event_id)) {
      dupIds++;
      problem(
        `event ${r.event_id} is in the raw zone twice (${
          rawIds.get(r.event_id)
        }, ${r.path})`,
      );
    } else rawIds.set(r.event_id, r.path);
  }
  const reasons = new Map<string, number>();
  for (const d of zones.deadLetters) {
    reasons.set(d.reason, (reasons.get(d.reason) ?? 0) + 1);
  }
  for (const f of zones.foreign) problem(`foreign file in a zone: ${f}`);
  layers.push({
    layer: "hdfs raw + dead letters",
    count: zones.raw.length + zones.deadLetters.length,
    missing: uncovered + notYetConsumed,
    duplicated: dupOffsets + dupIds,
    explained: notYetConsumed,
    unexplained: uncovered + dupOffsets + dupIds + zones.foreign.length,
    note:
      `${zones.raw.length} events in ${zones.rawFiles} files, ${zones.deadLetters.length} dead letters${
        reasons.size
          ? ` (${
            [...reasons].sort((a, b) => b[1] - a[1]).map(([r, n]) =>
              `${r} ${n}`
            ).join(", ")
          })`
          : ""
      }${notYetConsumed ? `; ${notYetConsumed} not yet consumed` : ""}`,
  });
  if (producedIds) {
    const missingFromProduced = [...producedIds].filter((id) =>
      !rawIds.has(id)
    );
    const produced = layers[0];
    // A produced event absent from HDFS is explained only while the consumer
    // has not caught up.
    const explained = notYetConsumed > 0
      ? Math.min(missingFromProduced.length, notYetConsumed)
      : 0;
    produced.missing = missingFromProduced.length;
    produced.explained = explained;
    produced.unexplained = missingFromProduced.length - explained;
    if (produced.unexplained) {
      problem(
        `${produced.unexplained} produced events are in no HDFS file, e.g. ${
          sample(missingFromProduced)
        }`,
      );
    }
    if (producedBad !== zones.deadLetters.length && notYetConsumed === 0) {
      problem(
        `produced ${producedBad} bad records but the dead-letter zone holds ${zones.deadLetters.length}`,
      );
      produced.unexplained += Math.abs(producedBad - zones.deadLetters.length);
    }
  }

  // --- Postgres raw, facts, marts -------------------------------------------
  const pool = createPool(config, { max: 2, applicationName: "logpipe-audit" });
  try {
    const ledger = new Set<string>(
      (await pool.query("select path from raw.load_ledger")).rows.map((r) =>
        r.path
      ),
    );
    const ledgerRows = Number(
      (await pool.query(
        "select coalesce(sum(row_count), 0) as n from raw.load_ledger",
      )).rows[0].n,
    );
    const rawRows =
      (await pool.query("select event_id, loaded_at from raw.events")).rows as {
        event_id: string;
        loaded_at: Date;
      }[];
    const inRaw = new Map(rawRows.map((r) => [r.event_id, r.loaded_at]));
    let notBatched = 0, lost = 0;
    const lostIds: string[] = [];
    for (const [id, path] of rawIds) {
      if (inRaw.has(id)) continue;
      if (ledger.has(path)) {
        lost++;
        lostIds.push(id);
      } else notBatched++;
    }
    const extra = rawRows.filter((r) => !rawIds.has(r.event_id)).map((r) =>
      r.event_id
    );
    if (lost) {
      problem(
        `${lost} events of loaded files are not in raw.events, e.g. ${
          sample(lostIds)
        }`,
      );
    }
    if (extra.length) {
      problem(
        `${extra.length} rows of raw.events are in no raw-zone file, e.g. ${
          sample(extra)
        }`,
      );
    }
    if (ledgerRows !== rawRows.length) {
      problem(
        `the ledger counts ${ledgerRows} rows but raw.events holds ${rawRows.length}`,
      );
    }
    layers.push({
      layer: "postgres raw.events",
      count: rawRows.length,
      missing: notBatched + lost,
      duplicated: 0,
      explained: notBatched,
      unexplained: lost + extra.length +
        (ledgerRows !== rawRows.length ? 1 : 0),
      note: `${ledger.size} files in the ledger${
        notBatched ? `; ${notBatched} events not yet batched` : ""
      }`,
    });

    // The last successful dbt run: rows loaded after it are not modelled yet.
    const lastDbt = (await pool.query(
      `select max(started_at) as at from ops.task_runs
        where task_id = 'dbt_run' and state = 'success'`,
    )).rows[0]?.at as Date | null;
    if (!(await tableExists(pool, "analytics.fact_event"))) {
      layers.push({
        layer: "analytics.fact_event",
        count: 0,
        missing: rawRows.length,
        duplicated: 0,
        explained: rawRows.length,
        unexplained: 0,
        note: "not built yet (no batch has run dbt)",
      });
    } else {
      const factRows =
        (await pool.query("select event_id from analytics.fact_event"))
          .rows as {
            event_id: string;
          }[];
      const inFact = new Map<string, number>();
      for (const r of factRows) {
        inFact.set(r.event_id, (inFact.get(r.event_id) ?? 0) + 1);
      }
      let notModelled = 0, unmodelled = 0;
      const unmodelledIds: string[] = [];
      for (const [id, loadedAt] of inRaw) {
        if (inFact.has(id)) continue;
        if (!lastDbt || loadedAt > lastDbt) notModelled++;
        else {
          unmodelled++;
          unmodelledIds.push(id);
        }
      }
      const factExtra = [...inFact.keys()].filter((id) => !inRaw.has(id));
      const factDup = [...inFact.values()].filter((n) => n > 1).length;
      if (unmodelled) {
        problem(
          `${unmodelled} raw events loaded before the last dbt run are not in fact_event, e.g. ${
            sample(unmodelledIds)
          }`,
        );
      }
      if (factExtra.length) {
        problem(
          `${factExtra.length} fact_event rows have no raw event, e.g. ${
            sample(factExtra)
          }`,
        );
      }
      if (factDup) {
        problem(`${factDup} event_ids appear more than once in fact_event`);
      }
      layers.push({
        layer: "analytics.fact_event",
        count: factRows.length,
        missing: notModelled + unmodelled,
        duplicated: factDup,
        explained: notModelled,
        unexplained: unmodelled + factExtra.length + factDup,
        note: notModelled
          ? `${notModelled} events loaded after the last dbt run`
          : "",
      });
    }

    if (await tableExists(pool, "analytics.fact_order")) {
      // Orders as raw.events knows them (purchases loaded before the last dbt
      // run) against the order lines of fact_order.
      const rawOrders = (await pool.query(
        `select count(distinct order_id) as orders,
                coalesce(sum(jsonb_array_length(items_json)), 0) as lines
           from raw.events
          where event_type = 'purchase' and ($1::timestamptz is null or loaded_at <= $1)`,
        [lastDbt],
      )).rows[0];
      const fact = (await pool.query(
        `select count(distinct order_id) as orders, count(*) as lines,
                coalesce(sum(amount) filter (where status = 'completed'), 0)::text as revenue,
                count(*) - count(distinct order_line_sk) as dup
           from analytics.fact_order`,
      )).rows[0];
      const missingOrders = Number(rawOrders.orders) - Number(fact.orders);
      const unexplained = Math.abs(missingOrders) + Number(fact.dup);
      if (missingOrders) {
        problem(
          `raw.events has ${rawOrders.orders} modelled orders but fact_order ${fact.orders}`,
        );
      }
      if (Number(rawOrders.lines) !== Number(fact.lines)) {
        problem(
          `raw.events has ${rawOrders.lines} modelled order lines but fact_order ${fact.lines}`,
        );
      }
      layers.push({
        layer: "analytics.fact_order",
        count: Number(fact.lines),
        missing: Math.max(missingOrders, 0),
        duplicated: Number(fact.dup),
        explained: 0,
        unexplained: unexplained +
          (Number(rawOrders.lines) !== Number(fact.lines) ? 1 : 0),
        note: `${fact.orders} orders, completed revenue ${fact.revenue}`,
      });

      if (await tableExists(pool, "analytics.mart_daily_sales")) {
        const mart = (await pool.query(
          "select coalesce(sum(revenue), 0)::text as revenue from analytics.mart_daily_sales",
        )).rows[0];
        const same = mart.revenue === fact.revenue ||
          Number(mart.revenue).toFixed(2) === Number(fact.revenue).toFixed(2);
        if (!same) {
          problem(
            `mart_daily_sales revenue ${mart.revenue} ≠ fact_order completed ${fact.revenue}`,
          );
        }
        layers.push({
          layer: "marts (sales revenue)",
          count: 1,
          missing: 0,
          duplicated: 0,
          explained: 0,
          unexplained: same ? 0 : 1,
          note: `mart_daily_sales revenue ${mart.revenue}`,
        });
      }
    }
  } finally {
    await pool.end();
  }

  return {
    at: new Date().toISOString(),
    topic: config.kafka.topic,
    layers,
    problems,
    ok: layers.every((l) => l.unexplained === 0) && problems.length === 0,
  };
}

/** The report as an aligned text table plus the problem lines. */
export function formatAudit(r: AuditReport): string {
  const head = [
    "layer",
    "count",
    "missing",
    "dup",
    "explained",
    "unexplained",
    "note",
  ];
  const body = r.layers.map((l) => [
    l.layer,
    String(l.count),
    String(l.missing),
    String(l.duplicated),
    String(l.explained),
    String(l.unexplained),
    l.note,
  ]);
  const widths = head.map((h, i) =>
    Math.max(h.length, ...body.map((b) => b[i].length))
  );
  const line = (c: string[]) =>
    c.map((
      x,
      i,
    ) => (i >= 1 && i <= 5 ? x.padStart(widths[i]) : x.padEnd(widths[i]))).join(
      "  ",
    )
      .trimEnd();
  return [
    `audit of topic ${r.topic} at ${r.at}`,
    line(head),
    line(widths.map((w) => "-".repeat(w))),
    ...body.map(line),
    "",
    r.ok
      ? "OK: every difference is explained"
      : "FAILED: unexplained differences:",
    ...r.problems.map((p) => `  - ${p}`),
  ].join("\n");
}
