/**
 * Validator benchmark: validations per second on one core for typical
 * events (a realistic generated mix, as bytes, with the record's Kafka
 * timestamp as context: exactly what the consumer calls per message). Target ≥ 500,000/s. No reference tool; the row also
 * reports the cost of the JSON.parse inside it, the floor any JSON validator
 * in JavaScript pays.
 */
import { createGenerator, recordBytes } from "../events/generator.ts";
import {
  DEFAULT_MAX_FUTURE_SKEW_MS,
  validateEvent,
  type ValidationContext,
} from "../events/schema.ts";
import { type BenchRow, benchRow } from "./report.ts";

export interface BenchValidatorOptions {
  /** Validations timed per round (default 1,000,000; 300,000 with quick). */
  validations?: number;
  quick?: boolean;
}

function rate(n: number, fn: (i: number) => unknown, pool: number): number {
  // Best of 3 rounds (others share this machine); warm-up first.
  for (let i = 0; i < pool * 2; i++) fn(i % pool);
  let best = 0;
  for (let round = 0; round < 3; round++) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) fn(i % pool);
    const s = (performance.now() - t0) / 1000;
    best = Math.max(best, n / s);
  }
  return best;
}

/** The validator benchmark rows. */
export function benchValidator(
  opts: BenchValidatorOptions = {},
): Promise<BenchRow[]> {
  const n = opts.validations ?? (opts.quick ? 300_000 : 1_000_000);
  const g = createGenerator({ seed: "bench-validator", startTime: Date.now() });
  const bytes = g.take(20_000).map(recordBytes);
  const avg = Math.round(
    bytes.reduce((a, b) => a + b.length, 0) / bytes.length,
  );
  // Every event is checked against its Kafka timestamp (future_timestamp).
  const context: ValidationContext = {
    kafkaTimestampMs: Date.now(),
    maxFutureSkewMs: DEFAULT_MAX_FUTURE_SKEW_MS,
  };
  let failures = 0;
  const ours = rate(n, (i) => {
    if (!validateEvent(bytes[i], context).ok) failures++;
  }, bytes.length);
  const decoder = new TextDecoder();
  const texts = bytes.map((b) => decoder.decode(b));
  const parseOnly = rate(n, (i) => JSON.parse(texts[i]), texts.length);
  return Promise.resolve([
    benchRow({
      name: `validator: validateEvent(bytes), typical events (~${avg} B)`,
      ours: Math.round(ours),
      unit: "ev/s",
      target: "≥ 500,000 ev/s on one core",
      pass: ours >= 500_000 && failures === 0,
      note: failures
        ? `${failures} valid events rejected`
        : `JSON.parse alone: ${
          Math.round(parseOnly).toLocaleString("en-US")
        }/s`,
    }),
  ]);
}
