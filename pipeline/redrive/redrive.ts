/**
 * Dead-letter redrive (`deno task redrive`): re-validates the records of the
 * dead-letter zone with the CURRENT validator and configuration, and
 * re-injects those that now pass into their topic, with their original key
 * and headers, exactly once.
 *
 * Exactly once, crash by crash. Every re-injected dead letter has a row in
 * ops.redriven keyed by its own Kafka coordinates, and records go out in
 * chunks, one run at a time (a Postgres advisory lock):
 *
 *   1. claim: the chunk's rows are inserted as 'sending' (a row that exists
 *      already means the dead letter was redriven or is being redriven: it
 *      is skipped);
 *   2. send: the records go out with an idempotent producer (acks=all; the
 *      broker drops the producer's own retries), each with the header
 *      `logpipe-redriven-from: <topic>/<partition>/<offset>` naming its
 *      origin;
 *   3. mark: the rows become 'sent', with the coordinates each record got.
 *
 * A run that stops between 1 and 3 leaves 'sending' rows, and whether their
 * records went out is exactly what it cannot know. The next run finds out
 * from Kafka itself before it does anything else: it reads the topic from a
 * minute before the oldest such claim to the end, and every record with a
 * `logpipe-redriven-from` header naming a 'sending' row settles that row as
 * 'sent' at the coordinates found; the rows left were never sent and are
 * released, so their dead letters are redriven in this run. Either way each
 * dead letter reaches the topic once. (The one window left open is a
 * redrive process that lost its database session, and so its lock, while it
 * still sends; the batch's dedupe by event_id then keeps raw.events right.)
 *
 * Why not a Kafka transaction: its commit markers are offsets no consumer
 * ever receives. The stream consumer now follows Kafka's fetch position
 * past them (`--until-caught-up` and its lag end at the topic's end), but
 * the audit (`deno task audit`) still expects one record per offset and
 * would report every marker as a record missing from HDFS.
 *
 * Re-validation uses each dead letter's original Kafka timestamp (the
 * future_timestamp check), so it judges the record as the stream did, with
 * today's rules. The re-injected record gets a new, later Kafka timestamp,
 * which can only make that check looser: what passes here passes in the
 * stream consumer configured the same way.
 */
import type { Producer, RecordMetadata } from "kafkajs";
import { Buffer } from "node:buffer";
import type { Config } from "../config.ts";
import { createKafka } from "../clients/kafka.ts";
import {
  createPool,
  type PoolClient,
  withTransaction,
} from "../clients/postgres.ts";
import { logger } from "../log.ts";
import { validateEvent } from "../events/schema.ts";
import { partitionForKey } from "../producer/partitioner.ts";
import {
  type DeadLetterRow,
  decodeBase64,
  listDeadLetterFiles,
  parseDeadLetterLines,
} from "../zones/mod.ts";
import { createWebHdfs } from "../clients/webhdfs.ts";
import { deadline } from "../async.ts";

const log = logger("redrive");

/** The header naming a re-injected record's origin: `<topic>/<partition>/<offset>`. */
export const REDRIVEN_FROM_HEADER = "logpipe-redriven-from";
/** The header naming the redrive run that re-injected a record. */
export const REDRIVE_RUN_HEADER = "logpipe-redrive-run";
/** Advisory lock: one redrive per database at a time. */
const LOCK = "logpipe.redrive";

/** What to redrive. */
export interface RedriveOptions {
  /** Only dead letters of this reason. */
  reason?: string;
  /** Only dead letters of this time or later (Kafka timestamp, else dead-letter time). */
  from?: Date;
  /** Only dead letters before this time. */
  to?: Date;
  /** Report what would be re-injected; send and mark nothing. */
  dryRun?: boolean;
  /** Records claimed, sent and marked together (default 500). */
  chunkSize?: number;
  /** Test hook: after a chunk is claimed, before it is sent. */
  beforeSend?: (chunk: number) => Promise<void>;
  /**
   * Test hook: after a chunk is sent, before it is marked (a crash there is
   * the case the protocol exists for).
   */
  afterSend?: (chunk: number) => Promise<void>;
}

/** What a run found and did. */
export interface RedriveReport {
  runId: string;
  dryRun: boolean;
  /** Dead letters matching the filters. */
  matched: number;
  files: number;
  /** Matching dead letters redriven before (ops.redriven). */
  alreadyRedriven: number;
  /** Tombstones, or records whose file keeps only a prefix of the value. */
  notRedrivable: number;
  /** Still refused by the current validator, by its reason now. */
  stillInvalid: Record<string, number>;
  /** Re-injected now (or, with dryRun, that would be), by their dead-letter reason. */
  redriven: Record<string, number>;
  redrivenTotal: number;
  /**
   * Rows an interrupted earlier run left 'sending', settled at start: found
   * in the topic (sent), or not (released and redriven now).
   */
  settled: { sent: number; released: number };
}

/** A record sent: where it went (offset once the send answered). */
interface Placed {
  x: Candidate;
  topic: string;
  partition: number;
  offset?: number;
}

interface Candidate {
  dl: DeadLetterRow;
  key: Buffer | null;
  value: Buffer;
  headers: Record<string, Buffer>;
  eventId: string;
  dlTime: string;
}

/** Another redrive holds the lock. */
export class RedriveBusyError extends Error {
  override name = "RedriveBusyError";
}

/** Runs one redrive. Throws RedriveBusyError when another one is running. */
export async function redrive(
  config: Config,
  opts: RedriveOptions = {},
): Promise<RedriveReport> {
  const runId = `redrive-${new Date().toISOString().replace(/[-:.]/g, "")}-${
    crypto.randomUUID().slice(0, 8)
  }`;
  const report: RedriveReport = {
    runId,
    dryRun: !!opts.dryRun,
    matched: 0,
    files: 0,
    alreadyRedriven: 0,
    notRedrivable: 0,
    stillInvalid: {},
    redriven: {},
    redrivenTotal: 0,
    settled: { sent: 0, released: 0 },
  };
  const pool = createPool(config, {
    max: 2,
    applicationName: "logpipe-redrive",
  });
  const lockClient = await pool.connect();
  const kafka = createKafka(config, { quiet: true });
  let producer: Producer | undefined;
  const admin = kafka.admin();
  try {
    const { rows } = await lockClient.query<{ ok: boolean }>(
      "select pg_try_advisory_lock(hashtext($1)) as ok",
      [LOCK],
    );
    if (!rows[0].ok) {
      throw new RedriveBusyError(
        "another redrive is running against this database",
      );
    }
    if (!opts.dryRun) {
      await admin.connect();
      report.settled = await settle(pool, kafka, admin);
      producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
      await producer.connect();
    }

    const candidates = await select(config, pool, opts, report);
    if (opts.dryRun || !candidates.length) return report;

    const partitions = new Map<string, number>();
    const chunkSize = opts.chunkSize ?? 500;
    for (let i = 0; i < candidates.length; i += chunkSize) {
      await sendChunk(
        pool,
        producer!,
        runId,
        i / chunkSize + 1,
        candidates.slice(i, i + chunkSize),
        async (topic) => {
          let n = partitions.get(topic);
          if (n === undefined) {
            n = (await admin.fetchTopicOffsets(topic)).length;
            partitions.set(topic, n);
          }
          return n;
        },
        report,
        opts,
      );
    }
    return report;
  } finally {
    await producer?.disconnect().catch(() => {});
    await admin.disconnect().catch(() => {});
    await lockClient.query("select pg_advisory_unlock_all()").catch(() => {});
    lockClient.release();
    await pool.end();
  }
}

type Kafka = ReturnType<typeof createKafka>;
type Admin = ReturnType<Kafka["admin"]>;

/**
 * Settles the rows an interrupted run left 'sending': a record in the topic
 * whose origin header names one makes it 'sent' there; the others are
 * released (see the module comment).
 */
async function settle(
  pool: ReturnType<typeof createPool>,
  kafka: Kafka,
  admin: Admin,
): Promise<{ sent: number; released: number }> {
  const { rows } = await pool.query<
    {
      dl_topic: string;
      dl_partition: number;
      dl_offset: string;
      claimed_at: Date;
    }
  >(
    `select dl_topic, dl_partition, dl_offset, claimed_at
       from ops.redriven where state = 'sending'`,
  );
  const out = { sent: 0, released: 0 };
  if (!rows.length) return out;
  const since = Math.min(...rows.map((r) => r.claimed_at.getTime())) - 60_000;
  const wanted = new Set(
    rows.map((r) => `${r.dl_topic}/${r.dl_partition}/${Number(r.dl_offset)}`),
  );
  const found = new Map<string, { partition: number; offset: number }>();
  for (const topic of new Set(rows.map((r) => r.dl_topic))) {
    for (const [origin, at] of await scanOrigins(kafka, admin, topic, since)) {
      if (wanted.has(origin) && !found.has(origin)) found.set(origin, at);
    }
  }
  await withTransaction(pool, async (c) => {
    for (const r of rows) {
      const origin = `${r.dl_topic}/${r.dl_partition}/${Number(r.dl_offset)}`;
      const at = found.get(origin);
      if (at) {
        await c.query(
          `update ops.redriven set state = 'sent', sent_at = now(), topic = $1,
                  partition = $4, "offset" = $5
            where dl_topic = $1 and dl_partition = $2 and dl_offset = $3`,
          [r.dl_topic, r.dl_partition, r.dl_offset, at.partition, at.offset],
        );
        out.sent++;
      } else {
        await c.query(
          `delete from ops.redriven
            where dl_topic = $1 and dl_partition = $2 and dl_offset = $3`,
          [r.dl_topic, r.dl_partition, r.dl_offset],
        );
        out.released++;
      }
    }
  });
  log.warn("settled the rows of an interrupted redrive", out);
  return out;
}

/**
 * Every record of `topic` written since `sinceMs` (to the end offsets at
 * the start of the scan) that carries an origin header: origin → where it
 * is. Read with a throw-away consumer group.
 */
async function scanOrigins(
  kafka: Kafka,
  admin: Admin,
  topic: string,
  sinceMs: number,
): Promise<Map<string, { partition: number; offset: number }>> {
  const ends = new Map(
    (await admin.fetchTopicOffsets(topic)).map((
      o,
    ) => [o.partition, Number(o.high)]),
  );
  const starts = new Map(
    (await admin.fetchTopicOffsetsByTimestamp(topic, sinceMs)).map((
      o,
    ) => [o.partition, Number(o.offset)]),
  );
  const pending = new Set(
    [...ends].filter(([p, end]) => (starts.get(p) ?? end) < end).map(([p]) =>
      p
    ),
  );
  const found = new Map<string, { partition: number; offset: number }>();
  if (!pending.size) return found;
  const groupId = `logpipe-redrive-scan-${crypto.randomUUID()}`;
  const consumer = kafka.consumer({ groupId, allowAutoTopicCreation: false });
  const { promise: done, resolve } = Promise.withResolvers<void>();
  const reached = (partition: number, lastOffset: number) => {
    if (lastOffset + 1 >= (ends.get(partition) ?? 0)) pending.delete(partition);
    if (!pending.size) resolve();
  };
  try {
    await consumer.connect();
    // Batches of filtered records only (another producer's transaction
    // markers) never reach eachMessage; their end is reported here.
    consumer.on(
      consumer.events.END_BATCH_PROCESS,
      (e) => reached(e.payload.partition, Number(e.payload.lastOffset)),
    );
    await consumer.subscribe({ topic, fromBeginning: false });
    await consumer.run({
      autoCommit: false,
      eachMessage: ({ partition, message }) => {
        const origin = message.headers?.[REDRIVEN_FROM_HEADER];
        if (origin !== undefined && origin !== null) {
          found.set(String(origin), {
            partition,
            offset: Number(message.offset),
          });
        }
        return Promise.resolve();
      },
    });
    for (const p of ends.keys()) {
      consumer.seek({
        topic,
        partition: p,
        offset: String(starts.get(p) ?? ends.get(p)),
      });
    }
    await deadline(done, 120_000, {
      message: `reading ${topic} to settle an interrupted redrive timed out`,
    });
    return found;
  } finally {
    await consumer.disconnect().catch(() => {});
    await admin.deleteGroups([groupId]).catch(() => {});
  }
}

/** Reads, filters and re-validates the dead letters; fills the report. */
async function select(
  config: Config,
  pool: ReturnType<typeof createPool>,
  opts: RedriveOptions,
  report: RedriveReport,
): Promise<Candidate[]> {
  const day = (d?: Date) => d?.toISOString().slice(0, 10);
  const files = await listDeadLetterFiles(config, {
    fromDate: day(opts.from),
    // `to` is exclusive: a dead letter at midnight sits in that day's folder.
    toDate: day(opts.to),
  });
  const hdfs = createWebHdfs(config, { timeoutMs: 120_000 });
  const from = opts.from?.toISOString();
  const to = opts.to?.toISOString();
  const matched: DeadLetterRow[] = [];
  for (const f of files) {
    const rows = parseDeadLetterLines(
      await hdfs.readText(f.path),
      f.pathSuffix,
      f.path,
    );
    let any = false;
    for (const r of rows) {
      const t = r.kafka_timestamp ?? r.dead_lettered_at;
      if (opts.reason !== undefined && r.reason !== opts.reason) continue;
      if (from !== undefined && t < from) continue;
      if (to !== undefined && t >= to) continue;
      matched.push(r);
      any = true;
    }
    if (any) report.files++;
  }
  // Oldest first: a session's records go back in their original order.
  matched.sort((a, b) =>
    a.topic < b.topic
      ? -1
      : a.topic > b.topic
      ? 1
      : a.partition - b.partition || a.offset - b.offset
  );
  report.matched = matched.length;

  const done = await alreadyRedriven(pool, matched);
  const skewMs = config.validation.maxFutureSkewMs;
  const out: Candidate[] = [];
  for (const dl of matched) {
    if (done.has(`${dl.topic}/${dl.partition}/${dl.offset}`)) {
      report.alreadyRedriven++;
      continue;
    }
    const value = dl.value_base64 === null
      ? null
      : decodeBase64(dl.value_base64);
    if (value === null || value.byteLength !== dl.value_bytes) {
      report.notRedrivable++;
      continue;
    }
    const kts = dl.kafka_timestamp ? Date.parse(dl.kafka_timestamp) : NaN;
    const res = validateEvent(value, {
      kafkaTimestampMs: Number.isFinite(kts) ? kts : undefined,
      maxFutureSkewMs: skewMs,
    });
    if (!res.ok) {
      report.stillInvalid[res.reason] = (report.stillInvalid[res.reason] ??
        0) + 1;
      continue;
    }
    const headers: Record<string, Buffer> = {};
    for (const [k, v] of Object.entries(dl.headers ?? {})) {
      if (
        v !== null && k !== REDRIVEN_FROM_HEADER && k !== REDRIVE_RUN_HEADER
      ) {
        headers[k] = Buffer.from(decodeBase64(v));
      }
    }
    out.push({
      dl,
      key: dl.key_base64 === null
        ? null
        : Buffer.from(decodeBase64(dl.key_base64)),
      value: Buffer.from(value),
      headers,
      eventId: res.event.event_id,
      dlTime: dl.kafka_timestamp ?? dl.dead_lettered_at,
    });
    report.redriven[dl.reason] = (report.redriven[dl.reason] ?? 0) + 1;
    report.redrivenTotal++;
  }
  return out;
}

async function alreadyRedriven(
  pool: ReturnType<typeof createPool>,
  rows: DeadLetterRow[],
): Promise<Set<string>> {
  if (!rows.length) return new Set();
  const { rows: found } = await pool.query<
    { dl_topic: string; dl_partition: number; dl_offset: string }
  >(
    `select r.dl_topic, r.dl_partition, r.dl_offset from ops.redriven r
       join unnest($1::text[], $2::int[], $3::bigint[]) as k(t, p, o)
         on r.dl_topic = k.t and r.dl_partition = k.p and r.dl_offset = k.o`,
    [
      rows.map((r) => r.topic),
      rows.map((r) => r.partition),
      rows.map((r) => r.offset),
    ],
  );
  return new Set(
    found.map((r) => `${r.dl_topic}/${r.dl_partition}/${Number(r.dl_offset)}`),
  );
}

/** Claims, sends and marks one chunk (steps 1-3 of the module comment). */
async function sendChunk(
  pool: ReturnType<typeof createPool>,
  producer: Producer,
  runId: string,
  seq: number,
  chunk: Candidate[],
  partitionCount: (topic: string) => Promise<number>,
  report: RedriveReport,
  hooks: Pick<RedriveOptions, "beforeSend" | "afterSend">,
): Promise<void> {
  // 1. claim
  const claimed = await withTransaction(pool, async (c: PoolClient) => {
    const { rows } = await c.query<
      { dl_topic: string; dl_partition: number; dl_offset: string }
    >(
      `insert into ops.redriven (dl_topic, dl_partition, dl_offset, reason, dl_time,
                                 event_id, state, run_id)
       select t, p, o, r, d, e, 'sending', $7
         from unnest($1::text[], $2::int[], $3::bigint[], $4::text[],
                     $5::timestamptz[], $6::text[]) as k(t, p, o, r, d, e)
       on conflict do nothing
       returning dl_topic, dl_partition, dl_offset`,
      [
        chunk.map((x) => x.dl.topic),
        chunk.map((x) => x.dl.partition),
        chunk.map((x) => x.dl.offset),
        chunk.map((x) => x.dl.reason),
        chunk.map((x) => x.dlTime),
        chunk.map((x) => x.eventId),
        runId,
      ],
    );
    return new Set(
      rows.map((r) => `${r.dl_topic}/${r.dl_partition}/${Number(r.dl_offset)}`),
    );
  });
  const mine = chunk.filter((x) =>
    claimed.has(`${x.dl.topic}/${x.dl.partition}/${x.dl.offset}`)
  );
  const lost = chunk.length - mine.length;
  if (lost) {
    // Claimed meanwhile (only a run that got past the lock could): not ours.
    report.redrivenTotal -= lost;
    report.alreadyRedriven += lost;
  }
  if (!mine.length) return;
  await hooks.beforeSend?.(seq);

  // 2. send, each record to the partition its key hashes to (as the
  // producer does), so a session's records stay together.
  const byTopic = new Map<string, Candidate[]>();
  for (const x of mine) {
    byTopic.set(x.dl.topic, [...(byTopic.get(x.dl.topic) ?? []), x]);
  }
  const placed: Placed[] = [];
  for (const [topic, list] of byTopic) {
    const n = await partitionCount(topic);
    const here: Placed[] = [];
    const messages = list.map((x) => {
      const partition = x.key ? partitionForKey(x.key, n) : x.dl.partition % n;
      here.push({ x, topic, partition });
      return {
        key: x.key,
        value: x.value,
        partition,
        headers: {
          ...x.headers,
          [REDRIVEN_FROM_HEADER]:
            `${x.dl.topic}/${x.dl.partition}/${x.dl.offset}`,
          [REDRIVE_RUN_HEADER]: runId,
        },
      };
    });
    const meta = await producer.send({ topic, acks: -1, messages });
    assignOffsets(here, meta);
    placed.push(...here);
  }
  await hooks.afterSend?.(seq);

  // 3. mark
  await pool.query(
    `update ops.redriven r set state = 'sent', sent_at = now(), topic = k.t,
            partition = k.p, "offset" = k.o
       from unnest($1::text[], $2::int[], $3::bigint[], $4::text[], $5::int[], $6::bigint[])
            as k(dt, dp, dof, t, p, o)
      where r.dl_topic = k.dt and r.dl_partition = k.dp and r.dl_offset = k.dof
        and r.state = 'sending'`,
    [
      placed.map((p) => p.x.dl.topic),
      placed.map((p) => p.x.dl.partition),
      placed.map((p) => p.x.dl.offset),
      placed.map((p) => p.topic),
      placed.map((p) => p.partition),
      placed.map((p) => p.offset),
    ],
  );
  log.info("redriven", { run: runId, chunk: seq, records: placed.length });
}

/**
 * Gives each placed record its offset: the records of one partition in one
 * send are consecutive from that partition's base offset, in send order.
 */
function assignOffsets(placed: Placed[], meta: RecordMetadata[]): void {
  const next = new Map<number, number>();
  for (const m of meta) {
    if (m.errorCode !== 0 || m.baseOffset === undefined) {
      throw new Error(
        `send to ${m.topicName}[${m.partition}] failed: error ${m.errorCode}`,
      );
    }
    next.set(m.partition, Number(m.baseOffset));
  }
  for (const p of placed) {
    const o = next.get(p.partition);
    if (o === undefined) {
      throw new Error(`no offset for ${p.topic}[${p.partition}]`);
    }
    p.offset = o;
    next.set(p.partition, o + 1);
  }
}

/** The report as a few lines for people. */
export function formatRedrive(r: RedriveReport): string {
  const list = (m: Record<string, number>) =>
    Object.entries(m).sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`)
      .join(", ");
  const sum = (m: Record<string, number>) =>
    Object.values(m).reduce((a, b) => a + b, 0);
  const lines = [
    `${
      r.dryRun ? "dry run " : ""
    }${r.runId}: ${r.matched} dead letters match (${r.files} files)`,
  ];
  if (r.settled.sent || r.settled.released) {
    lines.push(
      `  an interrupted run was settled: ${r.settled.sent} had been sent, ${r.settled.released} released`,
    );
  }
  lines.push(`  already redriven: ${r.alreadyRedriven}`);
  lines.push(
    `  still invalid: ${sum(r.stillInvalid)}${
      sum(r.stillInvalid) ? ` (${list(r.stillInvalid)})` : ""
    }`,
  );
  if (r.notRedrivable) {
    lines.push(
      `  not redrivable (tombstone, or only a prefix of the value kept): ${r.notRedrivable}`,
    );
  }
  lines.push(
    `  ${r.dryRun ? "would re-inject" : "re-injected"}: ${r.redrivenTotal}${
      r.redrivenTotal ? ` (dead-lettered as ${list(r.redriven)})` : ""
    }`,
  );
  return lines.join("\n");
}
