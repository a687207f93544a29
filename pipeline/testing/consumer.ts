/**
 * Helpers for the consumer's integration tests (real Kafka, HDFS, Postgres):
 * produce a generated stream and remember what was sent, run the consumer as
 * a real process, and read both HDFS zones back (Parquet through DuckDB) to
 * check exactly-once by event_id AND by Kafka coordinates.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { CompressionTypes } from "kafkajs";
import type { Config } from "../config.ts";
import { createKafka, topicEndOffsets } from "../clients/kafka.ts";
import {
  BAD_KINDS,
  createGenerator,
  recordBytes,
} from "../events/generator.ts";
import { validateEvent } from "../events/schema.ts";
import { parseDataFileName } from "../zones/names.ts";
import { decodeBase64 } from "../zones/base64.ts";
import { readZones, type ZoneContents } from "../zones/readers.ts";
import { CONSUMER_RUNTIME } from "../runtime.ts";
import { sha256Hex } from "../hash.ts";

/**
 * The poison topic of the memory test and the consumer benchmark: the
 * project's own producer (`deno task produce`) with 5 % bad records of every
 * kind, 72 of the 20,000 records 2 MB of one repeated character (the
 * `too_large` kind, sent whole, gzip-compressed ~1,000:1).
 */
export const POISON_TOPIC = {
  records: 20_000,
  twoMbRecords: 72,
  produceArgs: ["--count", "20000", "--seed", "11", "--bad-rate", "0.05"],
} as const;

/** What was produced, to compare the zones with. */
export interface Produced {
  total: number;
  /** event_id → [event_type, country] of every valid event. */
  good: Map<string, [string, string]>;
  /** SHA-256 (hex) of the value bytes → expected reasons, of every rejected record. */
  bad: Map<string, string[]>;
  badCount: number;
}

/**
 * Produces `count` generated records (seeded, with `badRate` injected bad
 * ones) to the configured topic with an idempotent acks=all producer.
 * The generator's oversized records (2 MiB) are cut to 70 KB — still over the
 * validator's 64 KiB limit, so still `too_large` — to keep tests fast.
 */
export async function produceGenerated(
  config: Config,
  opts: {
    count: number;
    badRate?: number;
    seed?: string;
    rate?: number;
    startTime?: number;
  },
): Promise<Produced> {
  const gen = createGenerator({
    seed: opts.seed ?? "consumer-test",
    startTime: opts.startTime ?? Date.now() - 60_000,
    rate: opts.rate ?? 2_000,
    badRate: opts.badRate ?? 0,
  });
  // Generous retries: the shared broker may be restarted by another test.
  const producer = createKafka(config, { quiet: true, retries: 15 }).producer({
    idempotent: true,
    maxInFlightRequests: 1,
  });
  await producer.connect();
  const produced: Produced = {
    total: 0,
    good: new Map(),
    bad: new Map(),
    badCount: 0,
  };
  let batch: { key: string; value: Uint8Array }[] = [];
  const flush = async () => {
    if (!batch.length) return;
    await producer.send({
      topic: config.kafka.topic,
      acks: -1,
      compression: CompressionTypes.None,
      messages: batch.map((m) => ({
        key: m.key,
        value: Buffer.from(
          m.value.buffer,
          m.value.byteOffset,
          m.value.byteLength,
        ),
      })),
    });
    batch = [];
  };
  try {
    for (const rec of gen) {
      let value = recordBytes(rec);
      if (rec.bad === "too_large") value = value.slice(0, 70_000);
      const res = validateEvent(value);
      if (res.ok) {
        produced.good.set(res.event.event_id, [
          res.event.event_type,
          res.event.geo.country,
        ]);
      } else {
        // The generator's own label must agree with the validator.
        if (rec.bad && BAD_KINDS[rec.bad]) {
          assert.equal(res.reason, BAD_KINDS[rec.bad]);
        }
        const h = await sha256Hex(value);
        produced.bad.set(h, [...(produced.bad.get(h) ?? []), res.reason]);
        produced.badCount++;
      }
      batch.push({ key: rec.key, value });
      produced.total++;
      if (batch.length >= 2_000) await flush();
      if (produced.total >= opts.count) break;
    }
    await flush();
  } finally {
    await producer.disconnect();
  }
  return produced;
}

// Reading the zones back is the audit's job too: one reader serves both.
export { readZones } from "../zones/readers.ts";
export type { RawZoneRow as RawRow, ZoneContents } from "../zones/readers.ts";

/**
 * Asserts exactly-once: every produced valid event_id once in the raw zone
 * and nothing else; every rejected record once in the dead-letter zone with
 * its reason; every Kafka offset of the topic in exactly one of the two; each
 * file's name matches the offsets it holds; no leftovers.
 */
export async function assertExactlyOnce(
  config: Config,
  produced: Produced,
  z?: ZoneContents,
): Promise<ZoneContents> {
  z ??= await readZones(config);
  assert.deepEqual(z.foreign, [], "only committed files in the zones");
  assert.deepEqual(
    z.leftovers,
    [],
    "no staging or committed batch folders left",
  );
  // by event id
  const seen = new Set<string>();
  const dupes: string[] = [];
  for (const r of z.raw) {
    if (seen.has(r.event_id)) dupes.push(r.event_id);
    seen.add(r.event_id);
  }
  assert.deepEqual(
    dupes.slice(0, 5),
    [],
    `duplicate event ids (${dupes.length})`,
  );
  const missing = [...produced.good.keys()].filter((id) => !seen.has(id));
  assert.deepEqual(
    missing.slice(0, 5),
    [],
    `missing event ids (${missing.length})`,
  );
  assert.equal(
    z.raw.length,
    produced.good.size,
    "raw rows = valid events produced",
  );
  // dead letters by original bytes and reason
  const expected = new Map(
    [...produced.bad].map(([h, rs]) => [h, [...rs].sort()]),
  );
  const got = new Map<string, string[]>();
  for (const d of z.deadLetters) {
    // A too-large value keeps its hash and a prefix, not its bytes.
    const h = d.value_truncated ? d.value_sha256! : await sha256Hex(
      d.value_base64 === null ? new Uint8Array() : decodeBase64(d.value_base64),
    );
    if (!d.value_truncated && d.value_base64 !== null) {
      assert.equal(d.value_sha256, h, "value_sha256 is the bytes' hash");
    }
    got.set(h, [...(got.get(h) ?? []), d.reason]);
  }
  for (const v of got.values()) v.sort();
  assert.equal(
    z.deadLetters.length,
    produced.badCount,
    "dead letters = rejected records",
  );
  assert.deepEqual(
    got,
    expected,
    "dead letters carry the original bytes and reasons",
  );
  // by Kafka coordinates: each offset exactly once over both zones
  const ends = await topicEndOffsets(config);
  const byPartition = new Map<number, number[]>();
  for (const r of z.raw) {
    (byPartition.get(r.kafka_partition) ??
      byPartition.set(r.kafka_partition, []).get(r.kafka_partition)!)
      .push(r.kafka_offset);
  }
  for (const d of z.deadLetters) {
    (byPartition.get(d.partition) ??
      byPartition.set(d.partition, []).get(d.partition)!).push(
        d.offset,
      );
  }
  for (const [p, { low, high }] of ends) {
    const offs = (byPartition.get(p) ?? []).sort((a, b) => a - b);
    assert.equal(
      offs.length,
      Number(high - low),
      `partition ${p}: one record per offset`,
    );
    for (let i = 0; i < offs.length; i++) {
      if (offs[i] !== Number(low) + i) {
        assert.fail(
          `partition ${p}: offset ${Number(low) + i} missing or duplicated`,
        );
      }
    }
  }
  // file names match their contents (first/last offset, partition, hour folder)
  const files = new Map<string, { p: number; lo: number; hi: number }>();
  for (const r of z.raw) {
    const f = files.get(r.file);
    if (!f) {
      files.set(r.file, {
        p: r.kafka_partition,
        lo: r.kafka_offset,
        hi: r.kafka_offset,
      });
    } else {
      f.lo = Math.min(f.lo, r.kafka_offset);
      f.hi = Math.max(f.hi, r.kafka_offset);
    }
  }
  const hoursPerFile = new Map<string, number>();
  for (const [key, f] of files) {
    const name = key.slice(0, key.indexOf("@"));
    const n = parseDataFileName(name)!;
    assert.deepEqual([n.partition, n.firstOffset, n.lastOffset], [
      f.p,
      f.lo,
      f.hi,
    ], name);
    hoursPerFile.set(name, (hoursPerFile.get(name) ?? 0) + 1);
  }
  for (const [name, hours] of hoursPerFile) {
    assert.equal(hours, 1, `${name} holds one event hour`);
  }
  return z;
}

/** Spawns `deno task consume` as a child process with the test's environment. */
export function spawnConsumer(
  env: Record<string, string>,
  args: string[] = [],
  opts: {
    stdout?: "piped" | "null" | "inherit";
    stderr?: "piped" | "null" | "inherit";
  } = {},
): Deno.ChildProcess {
  const root = new URL("../..", import.meta.url).pathname;
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      ...CONSUMER_RUNTIME.denoArgs,
      `${root}tasks/consume.ts`,
      ...args,
    ],
    cwd: root,
    env: {
      ...CONSUMER_RUNTIME.env,
      ...env,
      LOGPIPE_LOG_LEVEL: env.LOGPIPE_LOG_LEVEL ?? "warn",
    },
    stdout: opts.stdout ?? "null",
    stderr: opts.stderr ?? "inherit",
    stdin: "null",
  }).spawn();
}

/** Runs the consumer with --until-caught-up to the end; returns its JSON summary. */
export async function consumeUntilCaughtUp(
  env: Record<string, string>,
  args: string[] = [],
): Promise<Record<string, unknown>> {
  const child = spawnConsumer(env, ["--until-caught-up", "--json", ...args], {
    stdout: "piped",
  });
  const out = await child.output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, `consumer exited ${out.code}: ${text}`);
  return JSON.parse(text.trim().split("\n").at(-1)!);
}
