/**
 * Fills a benchmark's topic with generated events as fast as the broker
 * takes them (idempotent, acks=all, up to four sends of 5,000 in flight).
 *
 * The events' times are history: they run at `rate` events/s and end a
 * minute before now. The consumer checks each event's time against its
 * Kafka timestamp (the `future_timestamp` rule), so a topic whose event
 * clock ran past the clock of its Kafka timestamps would be mostly dead
 * letters: until 2026-12-01 the consumer and Spark benchmarks started the
 * clock an hour back at the generator's default 100 events/s, and 55 % of
 * their "1,000,000 realistic events" were rejected as future events. The
 * count of records the validator accepts, judged against the Kafka
 * timestamp they get, is returned, and the benchmarks check their output
 * against it.
 */
import { Buffer } from "node:buffer";
import type { Config } from "../config.ts";
import { createKafka } from "../clients/kafka.ts";
import { createGenerator, recordBytes } from "../events/generator.ts";
import { validateEvent } from "../events/schema.ts";

export interface PreloadOptions {
  count: number;
  seed: string;
  /** Share of bad records of every kind (default 0). */
  badRate?: number;
  /** Event-time rate, events/s (default 2,000: 1M events span ~8 minutes). */
  rate?: number;
}

export interface Preloaded {
  records: number;
  /** Records the validator accepts (at the time they were sent). */
  valid: number;
}

/** Produces `count` generated records to the configured topic. */
export async function preloadTopic(
  config: Config,
  opts: PreloadOptions,
): Promise<Preloaded> {
  const rate = opts.rate ?? 2_000;
  const gen = createGenerator({
    seed: opts.seed,
    rate,
    startTime: Date.now() - (opts.count / rate) * 1000 - 60_000,
    badRate: opts.badRate ?? 0,
  });
  const producer = createKafka(config, { quiet: true }).producer({
    idempotent: true,
  });
  await producer.connect();
  let records = 0, valid = 0;
  let batch: { key: string; value: Buffer }[] = [];
  const pending: Promise<unknown>[] = [];
  try {
    for (const rec of gen) {
      let v = recordBytes(rec);
      // The generator's 2 MiB records are cut to 70 KB: still over the
      // validator's 64 KiB limit, without 2 MB sends slowing the preload.
      if (rec.bad === "too_large") v = v.slice(0, 70_000);
      if (validateEvent(v, { kafkaTimestampMs: Date.now() }).ok) valid++;
      batch.push({
        key: rec.key,
        value: Buffer.from(v.buffer, v.byteOffset, v.byteLength),
      });
      if (++records >= opts.count || batch.length >= 5_000) {
        pending.push(
          producer.send({
            topic: config.kafka.topic,
            acks: -1,
            messages: batch,
          }),
        );
        batch = [];
        if (pending.length >= 4) await pending.shift();
      }
      if (records >= opts.count) break;
    }
    await Promise.all(pending);
  } finally {
    await producer.disconnect();
  }
  return { records, valid };
}
