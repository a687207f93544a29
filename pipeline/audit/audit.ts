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

/**
 * What the audit has found so far: the layer rows, the problem lines (capped
 * at 50) and the explanations, each in the order found.
 */
class Findings {
  readonly layers: LayerRow[] = [];
  readonly problems: string[] = [];
  readonly explanations: Explanation[] = [];

  /** Records an unexplained difference (the first 50 are kept). */
  problem(line: string): void {
    if (this.problems.length < 50) this.problems.push(line);
  }

  /** Records an explained record or group. */
  explain(kind: Explanation["kind"], text: string): void {
    this.explanations.push({ kind, text });
  }
}

/** The produced NDJSON file read back: valid event_ids and bad lines. */
interface ProducedEvents {
  ids: Set<string>;
  bad: number;
  /** Its row in the report, completed once the HDFS zones are read. */
  layer: LayerRow;
}

/** Reads the produced NDJSON and adds its layer row. */
async function readProduced(
  producedFile: string,
  found: Findings,
): Promise<ProducedEvents> {
  const ids = new Set<string>();
  let bad = 0;
  const text = await Deno.readFile(producedFile);
  let start = 0;
  for (let i = 0; i <= text.length; i++) {
    if (i === text.length || text[i] === 10) {
      if (i > start) {
        const v = validateEvent(text.subarray(start, i));
        if (v.ok) ids.add(v.event.event_id);
        else bad++;
      }
      start = i + 1;
    }
  }
  const layer: LayerRow = {
    layer: "produced",
    count: ids.size + bad,
    missing: 0,
    duplicated: 0,
    explained: 0,
    unexplained: 0,
    note: `${ids.size} valid, ${bad} bad (from ${producedFile})`,
  };
  found.layers.push(layer);
  return { ids, bad, layer };
}

type EndOffsets = Awaited<ReturnType<typeof topicEndOffsets>>;

/** The topic's offsets and the consumer group's, with the Kafka layer row. */
async function auditKafka(config: Config, found: Findings) {
  const ends = await topicEndOffsets(config);
  const committed = await committedOffsets(config);
  let kafkaCount = 0;
  for (const o of ends.values()) kafkaCount += Number(o.high - o.low);
  found.layers.push({
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
  return { ends, committed };
}

type BatchRecords = Awaited<ReturnType<typeof batchRecords>>;

/** How the topic's offsets are covered by the HDFS raw and dead-letter zones. */
interface OffsetCoverage {
  /** Extra copies of an offset with no explanation. */
  dupOffsets: number;
  /** Extra copies of an offset in a file refused for overlapping. */
  dupOffsetsExplained: number;
  /** Offsets the consumer committed that no file holds, or out of range. */
  uncovered: number;
  /** Offsets the consumer has not passed yet. */
  notYetConsumed: number;
}

/**
 * How many times each offset is in the HDFS zones (partition → offset →
 * times), and the raw files holding each offset found more than once.
 */
function offsetsInZones(zones: ZoneContents) {
  const seenOffsets = new Map<number, Map<number, number>>(); // partition → offset → times
  const note = (p: number, o: number) => {
    let m = seenOffsets.get(p);
    if (!m) seenOffsets.set(p, m = new Map());
    m.set(o, (m.get(o) ?? 0) + 1);
  };
  for (const r of zones.raw) note(r.kafka_partition, r.kafka_offset);
  for (const d of zones.deadLetters) note(d.partition, d.offset);
  const filesAt = new Map<string, Set<string>>();
  for (const r of zones.raw) {
    const k = `${r.kafka_partition}/${r.kafka_offset}`;
    if ((seenOffsets.get(r.kafka_partition)?.get(r.kafka_offset) ?? 0) > 1) {
      let set = filesAt.get(k);
      if (!set) filesAt.set(k, set = new Set());
      set.add(r.path);
    }
  }
  return { seenOffsets, filesAt };
}

/**
 * Checks that every offset of the topic is in HDFS exactly once (raw or dead
 * letter), explaining the copies in files refused for overlapping.
 */
function checkOffsets(
  ends: EndOffsets,
  committed: Map<number, number>,
  zones: ZoneContents,
  rec: BatchRecords,
  found: Findings,
): OffsetCoverage {
  const { seenOffsets, filesAt } = offsetsInZones(zones);
  // Offsets in HDFS more than once are explained when a file holding them
  // was refused whole for overlapping another (raw.quarantine).
  const overlapFiles = new Map(
    rec.quarantine.filter((q) =>
      q.scope === "file" && q.reason === "overlapping_offsets" &&
      q.status === "quarantined"
    ).map((q) => [q.source_path, q]),
  );
  const cover: OffsetCoverage = {
    dupOffsets: 0,
    dupOffsetsExplained: 0,
    uncovered: 0,
    notYetConsumed: 0,
  };
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
          cover.dupOffsetsExplained += times - 1;
          if (!overlapNamed.has(refused)) {
            overlapNamed.add(refused);
            const q = overlapFiles.get(refused)!;
            found.explain(
              "overlapping_file",
              `${
                refused.split("/").pop()
              } holds offsets already in another file of partition ${p}: refused whole, not loaded (quarantine #${q.id}: ${q.detail})`,
            );
          }
        } else {
          cover.dupOffsets += times - 1;
          found.problem(`partition ${p} offset ${o} is in HDFS ${times} times`);
        }
      }
      if (times === 0) {
        // Not in any file yet: fine while the consumer has not passed it.
        if (done < 0 || o >= done) cover.notYetConsumed++;
        else {
          cover.uncovered++;
          found.problem(
            `partition ${p} offset ${o} was committed by the consumer but is in no HDFS file`,
          );
        }
      }
    }
    for (const o of m.keys()) {
      if (o < Number(low) || o >= Number(high)) {
        found.problem(
          `partition ${p} offset ${o} is in HDFS but outside the topic's [${low}, ${high})`,
        );
        cover.uncovered++;
      }
    }
  }
  return cover;
}

const coordsKey = (p: number, o: number) => `${p}/${o}`;

/** Every raw-zone row, by its Kafka coordinates, against what the batch did with it. */
interface RawZoneFates {
  /** Coordinates → what the batch did with the row there. */
  fate: Map<string, RowFate>;
  /** event_id → path of its first copy. */
  rawIds: Map<string, string>;
  /** event_id → the coordinates of each copy. */
  copies: Map<string, string[]>;
}

/** Decides each raw-zone row's fate from what the batch recorded. */
function rawZoneFates(zones: ZoneContents, rec: BatchRecords): RawZoneFates {
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
  return { fate, rawIds, copies };
}

/**
 * Checks event_ids in the raw zone more than once: explained when at most
 * one copy was loaded and none is lost.
 */
function checkRepeatedIds(rows: RawZoneFates, found: Findings) {
  let dupIds = 0, dupIdsExplained = 0;
  for (const [id, ks] of rows.copies) {
    if (ks.length < 2) continue;
    const fates = ks.map((k) => rows.fate.get(k));
    const ok = fates.filter((f) => f === "loaded").length <= 1 &&
      fates.every((f) => f !== "lost");
    if (ok) dupIdsExplained += ks.length - 1;
    else {
      dupIds += ks.length - 1;
      found.problem(
        `event ${id} is in the raw zone ${ks.length} times (${ks.join(", ")}: ${
          fates.join(", ")
        })`,
      );
    }
  }
  return { dupIds, dupIdsExplained };
}

/** Names the dead letters by reason, most frequent first. */
function explainDeadLetters(
  zones: ZoneContents,
  found: Findings,
): Array<[string, number]> {
  const reasons = new Map<string, number>();
  for (const d of zones.deadLetters) {
    reasons.set(d.reason, (reasons.get(d.reason) ?? 0) + 1);
  }
  const byCount = [...reasons].sort((a, b) => b[1] - a[1]);
  for (const [reason, n] of byCount) {
    found.explain(
      "dead_letter",
      `${n} record(s) rejected by the stream validator as ${reason} (dead-letter zone, original bytes kept)`,
    );
  }
  return byCount;
}

/**
 * Reconciles the HDFS raw and dead-letter zones with the topic and with what
 * the batch recorded, and adds their layer row.
 */
function auditZones(
  kafka: { ends: EndOffsets; committed: Map<number, number> },
  zones: ZoneContents,
  rec: BatchRecords,
  found: Findings,
) {
  const cover = checkOffsets(
    kafka.ends,
    kafka.committed,
    zones,
    rec,
    found,
  );
  const rows = rawZoneFates(zones, rec);
  const { dupIds, dupIdsExplained } = checkRepeatedIds(rows, found);
  const reasons = explainDeadLetters(zones, found);
  for (const f of zones.foreign) found.problem(`foreign file in a zone: ${f}`);
  const { dupOffsets, dupOffsetsExplained, uncovered, notYetConsumed } = cover;
  found.layers.push({
    layer: "hdfs raw + dead letters",
    count: zones.raw.length + zones.deadLetters.length,
    missing: uncovered + notYetConsumed,
    duplicated: dupOffsets + dupIds + dupOffsetsExplained + dupIdsExplained,
    explained: notYetConsumed + dupOffsetsExplained + dupIdsExplained,
    unexplained: uncovered + dupOffsets + dupIds + zones.foreign.length,
    note:
      `${zones.raw.length} events in ${zones.rawFiles} files, ${zones.deadLetters.length} dead letters${
        reasons.length
          ? ` (${reasons.map(([r, n]) => `${r} ${n}`).join(", ")})`
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
  return { rows, notYetConsumed };
}

/**
 * Completes the produced layer row: every produced event must be in HDFS
 * (explained only while the consumer has not caught up), every bad one a
 * dead letter.
 */
function checkProduced(
  produced: ProducedEvents,
  rawIds: Map<string, string>,
  notYetConsumed: number,
  zones: ZoneContents,
  found: Findings,
): void {
  const missingFromProduced = [...produced.ids].filter((id) => !rawIds.has(id));
  const row = produced.layer;
  // A produced event absent from HDFS is explained only while the consumer
  // has not caught up.
  const explained = notYetConsumed > 0
    ? Math.min(missingFromProduced.length, notYetConsumed)
    : 0;
  row.missing = missingFromProduced.length;
  row.explained = explained;
  row.unexplained = missingFromProduced.length - explained;
  if (row.unexplained) {
    found.problem(
      `${row.unexplained} produced events are in no HDFS file, e.g. ${
        sample(missingFromProduced)
      }`,
    );
  }
  if (produced.bad !== zones.deadLetters.length && notYetConsumed === 0) {
    found.problem(
      `produced ${produced.bad} bad records but the dead-letter zone holds ${zones.deadLetters.length}`,
    );
    row.unexplained += Math.abs(produced.bad - zones.deadLetters.length);
  }
}

/** Names every duplicate and quarantined item the batch recorded. */
function explainBatchRecords(rec: BatchRecords, found: Findings): void {
  for (const d of rec.duplicates) {
    found.explain(
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
    found.explain(
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
}

const FATE_TEXT: Record<RowFate, string> = {
  loaded: "loaded into raw.events",
  duplicate: "a duplicate (raw.duplicates)",
  quarantined: "quarantined by the batch",
  file_refused: "in a file the batch refused",
  lost: "LOST (in a loaded file but not accounted for)",
  not_batched: "in the raw zone, not yet batched",
};

/**
 * Dead letters re-injected by `deno task redrive` (ops.redriven, when
 * redrive has ever run): each named with where its new copy went.
 */
async function explainRedriven(
  pool: Pool,
  config: Config,
  zones: ZoneContents,
  fate: Map<string, RowFate>,
  found: Findings,
): Promise<void> {
  if (!(await tableExists(pool, "ops.redriven"))) return;
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
  for (const r of redriven) {
    const from =
      `dead letter partition ${r.dl_partition} offset ${r.dl_offset} (${r.reason}${
        r.event_id ? `, event ${r.event_id}` : ""
      })`;
    if (r.state !== "sent" || r.partition === null || r.offset === null) {
      found.explain(
        "redriven",
        `${from}: redrive in doubt ('sending'); the next redrive settles it from Kafka`,
      );
      continue;
    }
    const k = coordsKey(r.partition, r.offset);
    const where = fate.get(k);
    const text = where
      ? FATE_TEXT[where]
      : deadAt.has(k)
      ? "dead-lettered again"
      : "not yet consumed";
    if (!deadAt.has(coordsKey(r.dl_partition, r.dl_offset))) {
      found.problem(
        `${from} is in ops.redriven but not in the dead-letter zone`,
      );
    }
    found.explain(
      "redriven",
      `${from}: re-injected at partition ${r.partition} offset ${r.offset}, ${text}`,
    );
  }
}

/**
 * Reconciles raw.events with the raw zone and the ledger, names what the
 * batch set aside, and adds the raw.events layer row.
 */
async function auditRawEvents(
  pool: Pool,
  config: Config,
  zones: ZoneContents,
  rec: BatchRecords,
  fate: Map<string, RowFate>,
  found: Findings,
): Promise<void> {
  const count = (f: RowFate) =>
    [...fate.values()].filter((x) => x === f).length;
  const lost = [...fate].filter(([, f]) => f === "lost").map(([k]) => k);
  const notBatched = count("not_batched");
  if (lost.length) {
    found.problem(
      `${lost.length} rows of loaded files are in none of raw.events, raw.duplicates or the quarantine, e.g. partition/offset ${
        sample(lost)
      }`,
    );
  }
  const extra = [...rec.eventsByCoords].filter(([k]) => !fate.has(k)).map((
    [, e],
  ) => e.event_id);
  if (extra.length) {
    found.problem(
      `${extra.length} rows of raw.events are in no raw-zone file, e.g. ${
        sample(extra)
      }`,
    );
  }
  const accounted = rec.eventsByCoords.size + rec.duplicates.length +
    rec.quarantinedRows.size;
  if (rec.ledgerRows !== accounted) {
    found.problem(
      `the ledger counts ${rec.ledgerRows} rows but raw.events, raw.duplicates and the quarantine hold ${accounted}`,
    );
  }
  explainBatchRecords(rec, found);
  await explainRedriven(pool, config, zones, fate, found);

  const quarantinedHere = count("quarantined") + count("file_refused");
  found.layers.push({
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
}

/**
 * Reconciles analytics.fact_event with raw.events: raw events loaded after
 * the last dbt run are not modelled yet (explained); any other gap, extra or
 * repeat is not.
 */
async function auditFactEvent(
  pool: Pool,
  rec: BatchRecords,
  lastDbt: Date | null,
  found: Findings,
): Promise<void> {
  const rawRows = [...rec.eventsByCoords.values()];
  const inRaw = new Map(rawRows.map((r) => [r.event_id, r.loaded_at]));
  if (!(await tableExists(pool, "analytics.fact_event"))) {
    found.layers.push({
      layer: "analytics.fact_event",
      count: 0,
      missing: rawRows.length,
      duplicated: 0,
      explained: rawRows.length,
      unexplained: 0,
      note: "not built yet (no batch has run dbt)",
    });
    return;
  }
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
    found.problem(
      `${unmodelled} raw events loaded before the last dbt run are not in fact_event, e.g. ${
        sample(unmodelledIds)
      }`,
    );
  }
  if (factExtra.length) {
    found.problem(
      `${factExtra.length} fact_event rows have no raw event, e.g. ${
        sample(factExtra)
      }`,
    );
  }
  if (factDup) {
    found.problem(`${factDup} event_ids appear more than once in fact_event`);
  }
  found.layers.push({
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

/**
 * Orders as raw.events knows them (purchases loaded before the last dbt run)
 * against the order lines of fact_order, then the sales mart's revenue
 * against fact_order's.
 */
async function auditOrders(
  pool: Pool,
  lastDbt: Date | null,
  found: Findings,
): Promise<void> {
  if (!(await tableExists(pool, "analytics.fact_order"))) return;
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
    found.problem(
      `raw.events has ${rawOrders.orders} modelled orders but fact_order ${fact.orders}`,
    );
  }
  if (Number(rawOrders.lines) !== Number(fact.lines)) {
    found.problem(
      `raw.events has ${rawOrders.lines} modelled order lines but fact_order ${fact.lines}`,
    );
  }
  found.layers.push({
    layer: "analytics.fact_order",
    count: Number(fact.lines),
    missing: Math.max(missingOrders, 0),
    duplicated: Number(fact.dup),
    explained: 0,
    unexplained: unexplained +
      (Number(rawOrders.lines) !== Number(fact.lines) ? 1 : 0),
    note: `${fact.orders} orders, completed revenue ${fact.revenue}`,
  });
  await auditSalesMart(pool, fact.revenue, found);
}

/** The sales mart's revenue must equal fact_order's completed revenue. */
async function auditSalesMart(
  pool: Pool,
  factRevenue: string,
  found: Findings,
): Promise<void> {
  if (!(await tableExists(pool, "analytics.mart_daily_sales"))) return;
  const mart = (await pool.query(
    "select coalesce(sum(revenue), 0)::text as revenue from analytics.mart_daily_sales",
  )).rows[0];
  const same = mart.revenue === factRevenue ||
    Number(mart.revenue).toFixed(2) === Number(factRevenue).toFixed(2);
  if (!same) {
    found.problem(
      `mart_daily_sales revenue ${mart.revenue} ≠ fact_order completed ${factRevenue}`,
    );
  }
  found.layers.push({
    layer: "marts (sales revenue)",
    count: 1,
    missing: 0,
    duplicated: 0,
    explained: 0,
    unexplained: same ? 0 : 1,
    note: `mart_daily_sales revenue ${mart.revenue}`,
  });
}

/** The start of the last successful dbt run: rows loaded after it are not modelled yet. */
async function lastDbtRun(pool: Pool): Promise<Date | null> {
  return (await pool.query(
    `select max(started_at) as at from ops.task_runs
      where task_id = 'dbt_run' and state = 'success'`,
  )).rows[0]?.at as Date | null;
}

/** Runs the audit, layer by layer from the produced file to the marts. */
export async function runAudit(
  config: Config,
  opts: AuditOptions = {},
): Promise<AuditReport> {
  const found = new Findings();
  const produced = opts.producedFile
    ? await readProduced(opts.producedFile, found)
    : undefined;
  const kafka = await auditKafka(config, found);

  const pool = createPool(config, { max: 2, applicationName: "logpipe-audit" });
  try {
    const rec = await batchRecords(pool);
    const zones: ZoneContents = await readZones(config);
    const { rows, notYetConsumed } = auditZones(kafka, zones, rec, found);
    if (produced) {
      checkProduced(produced, rows.rawIds, notYetConsumed, zones, found);
    }
    await auditRawEvents(pool, config, zones, rec, rows.fate, found);
    const lastDbt = await lastDbtRun(pool);
    await auditFactEvent(pool, rec, lastDbt, found);
    await auditOrders(pool, lastDbt, found);
  } finally {
    await pool.end();
  }

  const { layers, problems, explanations } = found;
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
