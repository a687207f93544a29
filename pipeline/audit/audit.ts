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
import { parseRawPartition } from "../zones/names.ts";

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

/** One explained record or group: what it is and why it is fine. */
export interface Explanation {
  kind:
    | "duplicate"
    | "quarantined"
    | "reloaded"
    | "overlapping_file"
    | "dead_letter"
    | "redriven";
  text: string;
}

export interface AuditReport {
  at: string;
  topic: string;
  layers: LayerRow[];
  /** Human-readable lines for every unexplained difference (capped). */
  problems: string[];
  /** Every duplicate, quarantined, reloaded and redriven record, named. */
  explanations: Explanation[];
  ok: boolean;
}

/** What the batch did with a raw-zone row, by its Kafka coordinates. */
type RowFate =
  | "loaded"
  | "duplicate"
  | "quarantined"
  | "file_refused"
  | "lost"
  | "not_batched";

interface QuarantineRecord {
  id: number;
  scope: "row" | "file";
  reason: string;
  sqlstate: string | null;
  status: string;
  source_path: string;
  kafka_partition: number;
  first_offset: number;
  event_id: string | null;
  detail: string;
  resolution: string | null;
}

interface DuplicateRecord {
  event_id: string;
  kind: string;
  kafka_partition: number;
  kafka_offset: number;
  kept_partition: number;
  kept_offset: number;
  /** Payload fields that differ from the kept copy (conflicting). */
  differs: string[];
}

/** What Postgres says the batch did (raw.events, duplicates, quarantine, ledger). */
async function batchRecords(pool: Pool) {
  const events = (await pool.query(
    `select event_id, kafka_partition, kafka_offset::float8 as kafka_offset, loaded_at
       from raw.events`,
  )).rows as {
    event_id: string;
    kafka_partition: number;
    kafka_offset: number;
    loaded_at: Date;
  }[];
  const eventsByCoords = new Map(
    events.map((e) => [`${e.kafka_partition}/${e.kafka_offset}`, e]),
  );
  const dupRows = (await pool.query(
    `select event_id, kind, kafka_partition, kafka_offset::float8 as kafka_offset,
            kept_partition, kept_offset::float8 as kept_offset,
            array(select k from jsonb_object_keys(payload) k
                   where k not in ('kafka_topic', 'kafka_partition', 'kafka_offset',
                                   'kafka_timestamp', 'source_file', 'loaded_at')
                     and payload -> k is distinct from kept_payload -> k
                   order by k) as differs
       from raw.duplicates order by event_id, kafka_partition, kafka_offset`,
  )).rows as DuplicateRecord[];
  const quarantine = (await pool.query(
    `select id::float8 as id, scope, reason, sqlstate, status, source_path,
            kafka_partition, first_offset::float8 as first_offset, event_id,
            left(detail, 300) as detail, resolution
       from raw.quarantine order by id`,
  )).rows as QuarantineRecord[];
  const ledger = (await pool.query(
    `select path, kafka_partition, event_hour, first_offset::float8 as first_offset,
            last_offset::float8 as last_offset, row_count
       from raw.load_ledger where status = 'loaded'`,
  )).rows as {
    path: string;
    kafka_partition: number;
    event_hour: Date;
    first_offset: number;
    last_offset: number;
    row_count: number;
  }[];
  // (partition, hour folder) → ranges, for "is this row in a loaded file".
  const ranges = new Map<string, Array<[number, number]>>();
  for (const l of ledger) {
    const k = `${l.kafka_partition}|${l.event_hour.toISOString()}`;
    const list = ranges.get(k) ?? [];
    list.push([l.first_offset, l.last_offset]);
    ranges.set(k, list);
  }
  return {
    eventsByCoords,
    duplicates: dupRows,
    duplicatesByCoords: new Set(
      dupRows.map((d) => `${d.kafka_partition}/${d.kafka_offset}`),
    ),
    quarantine,
    quarantinedRows: new Set(
      quarantine.filter((q) => q.scope === "row" && q.status === "quarantined")
        .map((q) => `${q.kafka_partition}/${q.first_offset}`),
    ),
    ledgerFiles: ledger.length,
    ledgerRows: ledger.reduce((a, l) => a + Number(l.row_count), 0),
    /** Whether a loaded ledger row covers this row of the file at `path`. */
    ledgerCovers(partition: number, offset: number, path: string): boolean {
      const part = parseRawPartition(path);
      if (!part) return false;
      const hour = new Date(
        `${part.eventDate}T${String(part.eventHour).padStart(2, "0")}:00:00Z`,
      ).toISOString();
      return (ranges.get(`${partition}|${hour}`) ?? []).some(([f, l]) =>
        offset >= f && offset <= l
      );
    },
  };
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
  const explanations: Explanation[] = [];
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

  // --- What the batch recorded (explanations) -------------------------------
  const pool = createPool(config, { max: 2, applicationName: "logpipe-audit" });
  try {
    const rec = await batchRecords(pool);
    const explain = (kind: Explanation["kind"], text: string) => {
      explanations.push({ kind, text });
    };

    // --- HDFS raw + dead-letter zones --------------------------------------
    const zones: ZoneContents = await readZones(config);
    const seenOffsets = new Map<number, Map<number, number>>(); // partition → offset → times
    const note = (p: number, o: number) => {
      let m = seenOffsets.get(p);
      if (!m) seenOffsets.set(p, m = new Map());
      m.set(o, (m.get(o) ?? 0) + 1);
    };
    for (const r of zones.raw) note(r.kafka_partition, r.kafka_offset);
    for (const d of zones.deadLetters) note(d.partition, d.offset);
    // Offsets in HDFS more than once are explained when a file holding them
    // was refused whole for overlapping another (raw.quarantine).
    const overlapFiles = new Map(
      rec.quarantine.filter((q) =>
        q.scope === "file" && q.reason === "overlapping_offsets" &&
        q.status === "quarantined"
      ).map((q) => [q.source_path, q]),
    );
    const filesAt = new Map<string, Set<string>>();
    for (const r of zones.raw) {
      const k = `${r.kafka_partition}/${r.kafka_offset}`;
      if ((seenOffsets.get(r.kafka_partition)?.get(r.kafka_offset) ?? 0) > 1) {
        let set = filesAt.get(k);
        if (!set) filesAt.set(k, set = new Set());
        set.add(r.path);
      }
    }
    let dupOffsets = 0,
      dupOffsetsExplained = 0,
      uncovered = 0,
      notYetConsumed = 0;
    const overlapNamed = new Set<string>();
    for (const [p, { low, high }] of ends) {
      const m = seenOffsets.get(p) ?? new Map<number, number>();
      const done = committed.get(p) ?? -1;
      for (let o = Number(low); o < Number(high); o++) {
        const times = m.get(o) ?? 0;
        if (times > 1) {
          const paths = [...filesAt.get(`${p}/${o}`) ?? []];
          const refused = paths.find((x) => overlapFiles.has(x));
          if (refused) {
            dupOffsetsExplained += times - 1;
            if (!overlapNamed.has(refused)) {
              overlapNamed.add(refused);
              const q = overlapFiles.get(refused)!;
              explain(
                "overlapping_file",
                `${
                  refused.split("/").pop()
                } holds offsets already in another file of partition ${p}: refused whole, not loaded (quarantine #${q.id}: ${q.detail})`,
              );
            }
          } else {
            dupOffsets += times - 1;
            problem(`partition ${p} offset ${o} is in HDFS ${times} times`);
          }
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

    // Every raw-zone row, by its Kafka coordinates, against what the batch
    // did with it.
    const coordsKey = (p: number, o: number) => `${p}/${o}`;
    const fate = new Map<string, RowFate>();
    const refusedFiles = new Map(
      rec.quarantine.filter((q) =>
        q.scope === "file" && q.status === "quarantined"
      ).map((q) => [q.source_path, q]),
    );
    const rawIds = new Map<string, string>(); // event_id → path (first copy)
    const copies = new Map<string, string[]>(); // event_id → coordinates
    for (const r of zones.raw) {
      const k = coordsKey(r.kafka_partition, r.kafka_offset);
      if (!rawIds.has(r.event_id)) rawIds.set(r.event_id, r.path);
      const list = copies.get(r.event_id);
      if (!list) copies.set(r.event_id, [k]);
      else if (!list.includes(k)) list.push(k);
      if (fate.has(k) && fate.get(k) !== "not_batched") continue;
      const loaded = rec.eventsByCoords.get(k);
      if (loaded !== undefined && loaded.event_id === r.event_id) {
        fate.set(k, "loaded");
      } else if (rec.duplicatesByCoords.has(k)) fate.set(k, "duplicate");
      else if (rec.quarantinedRows.has(k)) fate.set(k, "quarantined");
      else if (refusedFiles.has(r.path)) fate.set(k, "file_refused");
      else if (rec.ledgerCovers(r.kafka_partition, r.kafka_offset, r.path)) {
        fate.set(k, "lost");
      } else fate.set(k, "not_batched");
    }
    let dupIds = 0, dupIdsExplained = 0;
    for (const [id, ks] of copies) {
      if (ks.length < 2) continue;
      const fates = ks.map((k) => fate.get(k));
      const ok = fates.filter((f) => f === "loaded").length <= 1 &&
        fates.every((f) => f !== "lost");
      if (ok) dupIdsExplained += ks.length - 1;
      else {
        dupIds += ks.length - 1;
        problem(
          `event ${id} is in the raw zone ${ks.length} times (${
            ks.join(", ")
          }: ${fates.join(", ")})`,
        );
      }
    }
    const reasons = new Map<string, number>();
    for (const d of zones.deadLetters) {
      reasons.set(d.reason, (reasons.get(d.reason) ?? 0) + 1);
    }
    for (const [reason, n] of [...reasons].sort((a, b) => b[1] - a[1])) {
      explain(
        "dead_letter",
        `${n} record(s) rejected by the stream validator as ${reason} (dead-letter zone, original bytes kept)`,
      );
    }
    for (const f of zones.foreign) problem(`foreign file in a zone: ${f}`);
    layers.push({
      layer: "hdfs raw + dead letters",
      count: zones.raw.length + zones.deadLetters.length,
      missing: uncovered + notYetConsumed,
      duplicated: dupOffsets + dupIds + dupOffsetsExplained + dupIdsExplained,
      explained: notYetConsumed + dupOffsetsExplained + dupIdsExplained,
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
        }${notYetConsumed ? `; ${notYetConsumed} not yet consumed` : ""}${
          dupIdsExplained
            ? `; ${dupIdsExplained} repeated event_id(s), see raw.duplicates`
            : ""
        }${
          dupOffsetsExplained
            ? `; ${dupOffsetsExplained} offset(s) in a refused overlapping file`
            : ""
        }`,
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
        produced.unexplained += Math.abs(
          producedBad - zones.deadLetters.length,
        );
      }
    }

    // --- Postgres raw ------------------------------------------------------
    const count = (f: RowFate) =>
      [...fate.values()].filter((x) => x === f).length;
    const lost = [...fate].filter(([, f]) => f === "lost").map(([k]) => k);
    const notBatched = count("not_batched");
    if (lost.length) {
      problem(
        `${lost.length} rows of loaded files are in none of raw.events, raw.duplicates or the quarantine, e.g. partition/offset ${
          sample(lost)
        }`,
      );
    }
    const extra = [...rec.eventsByCoords].filter(([k]) => !fate.has(k)).map((
      [, e],
    ) => e.event_id);
    if (extra.length) {
      problem(
        `${extra.length} rows of raw.events are in no raw-zone file, e.g. ${
          sample(extra)
        }`,
      );
    }
    const accounted = rec.eventsByCoords.size + rec.duplicates.length +
      rec.quarantinedRows.size;
    if (rec.ledgerRows !== accounted) {
      problem(
        `the ledger counts ${rec.ledgerRows} rows but raw.events, raw.duplicates and the quarantine hold ${accounted}`,
      );
    }
    // Every duplicate and quarantined item, named.
    for (const d of rec.duplicates) {
      explain(
        "duplicate",
        `${d.kind} duplicate of event ${d.event_id}: the copy at partition ${d.kafka_partition} offset ${d.kafka_offset} was not loaded, the first by coordinates (partition ${d.kept_partition} offset ${d.kept_offset}) is in raw.events${
          d.differs.length ? `; they differ in ${d.differs.join(", ")}` : ""
        }`,
      );
    }
    for (const q of rec.quarantine) {
      const where = q.scope === "row"
        ? `partition ${q.kafka_partition} offset ${q.first_offset}${
          q.event_id ? ` (event ${q.event_id})` : ""
        }`
        : `file ${q.source_path.split("/").pop()}`;
      explain(
        q.status === "quarantined" ? "quarantined" : "reloaded",
        q.status === "quarantined"
          ? `quarantined #${q.id} ${q.reason}${
            q.sqlstate ? ` [SQLSTATE ${q.sqlstate}]` : ""
          }: ${where}: ${q.detail}`
          : `reloaded #${q.id} (was ${q.reason}): ${where}: ${
            q.resolution ?? "loaded again"
          }`,
      );
    }
    // Dead letters re-injected by `deno task redrive` (ops.redriven, when
    // redrive has ever run): each named with where its new copy went.
    if (await tableExists(pool, "ops.redriven")) {
      const redriven = (await pool.query(
        `select dl_partition, dl_offset::float8 as dl_offset, reason, event_id,
                state, partition, "offset"::float8 as "offset"
           from ops.redriven where dl_topic = $1
          order by dl_partition, dl_offset`,
        [config.kafka.topic],
      )).rows as {
        dl_partition: number;
        dl_offset: number;
        reason: string;
        event_id: string | null;
        state: string;
        partition: number | null;
        offset: number | null;
      }[];
      const deadAt = new Set(
        zones.deadLetters.map((d) => coordsKey(d.partition, d.offset)),
      );
      const fateText: Record<RowFate, string> = {
        loaded: "loaded into raw.events",
        duplicate: "a duplicate (raw.duplicates)",
        quarantined: "quarantined by the batch",
        file_refused: "in a file the batch refused",
        lost: "LOST (in a loaded file but not accounted for)",
        not_batched: "in the raw zone, not yet batched",
      };
      for (const r of redriven) {
        const from =
          `dead letter partition ${r.dl_partition} offset ${r.dl_offset} (${r.reason}${
            r.event_id ? `, event ${r.event_id}` : ""
          })`;
        if (r.state !== "sent" || r.partition === null || r.offset === null) {
          explain(
            "redriven",
            `${from}: redrive in doubt ('sending'); the next redrive settles it from Kafka`,
          );
          continue;
        }
        const k = coordsKey(r.partition, r.offset);
        const where = fate.get(k);
        const text = where
          ? fateText[where]
          : deadAt.has(k)
          ? "dead-lettered again"
          : "not yet consumed";
        if (!deadAt.has(coordsKey(r.dl_partition, r.dl_offset))) {
          problem(`${from} is in ops.redriven but not in the dead-letter zone`);
        }
        explain(
          "redriven",
          `${from}: re-injected at partition ${r.partition} offset ${r.offset}, ${text}`,
        );
      }
    }

    const quarantinedHere = count("quarantined") + count("file_refused");
    layers.push({
      layer: "postgres raw.events",
      count: rec.eventsByCoords.size,
      missing: notBatched + lost.length + count("duplicate") + quarantinedHere,
      duplicated: 0,
      explained: notBatched + count("duplicate") + quarantinedHere,
      unexplained: lost.length + extra.length +
        (rec.ledgerRows !== accounted ? 1 : 0),
      note: `${rec.ledgerFiles} files in the ledger; ${
        count("duplicate")
      } duplicate copies not loaded (raw.duplicates), ${
        count("quarantined")
      } rows quarantined, ${count("file_refused")} rows in refused files${
        notBatched ? `; ${notBatched} events not yet batched` : ""
      }`,
    });
    const rawRows = [...rec.eventsByCoords.values()];
    const inRaw = new Map(rawRows.map((r) => [r.event_id, r.loaded_at]));

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
    explanations,
    ok: layers.every((l) => l.unexplained === 0) && problems.length === 0,
  };
}

/**
 * The report as an aligned text table, every explained record (at most
 * `perKind` per kind) and the problem lines.
 */
export function formatAudit(r: AuditReport, perKind = 50): string {
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
    ...explanationLines(r.explanations, perKind),
    r.ok
      ? "OK: every difference is explained"
      : "FAILED: unexplained differences:",
    ...r.problems.map((p) => `  - ${p}`),
  ].join("\n");
}

const KIND_TITLES: Record<Explanation["kind"], string> = {
  duplicate: "duplicates (not loaded; the first copy by Kafka coordinates is)",
  quarantined: "quarantined by the batch (raw.quarantine, HDFS copy)",
  reloaded: "quarantined, then loaded again",
  overlapping_file: "files refused for overlapping offsets",
  dead_letter: "dead letters (stream validator)",
  redriven: "dead letters redriven into the topic",
};

/** The explanations by kind, at most `perKind` lines each. */
function explanationLines(list: Explanation[], perKind: number): string[] {
  const out: string[] = [];
  for (const kind of Object.keys(KIND_TITLES) as Explanation["kind"][]) {
    const items = list.filter((e) => e.kind === kind);
    if (items.length === 0) continue;
    out.push(`explained: ${KIND_TITLES[kind]}: ${items.length}`);
    for (const e of items.slice(0, perKind)) out.push(`  - ${e.text}`);
    if (items.length > perKind) {
      out.push(`  … and ${items.length - perKind} more (--json lists all)`);
    }
  }
  if (out.length) out.push("");
  return out;
}
