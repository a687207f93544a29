/**
 * How the long-running components are launched, in one place: `deno task up`
 * (supervisor), the tests and the benchmarks start them exactly as the
 * `produce` and `consume` tasks in deno.json do (a test checks the two agree).
 *
 * - producer: a small V8 young generation keeps peak RSS down (it allocates
 *   many short-lived buffers), and two glibc malloc arenas (~20 MB less
 *   peak RSS, same speed; a capped V8 old space would cost ~15 % of the
 *   throughput in garbage collection).
 * - consumer: a capped V8 heap with a small young generation (8 MB
 *   semi-spaces instead of up to 16: measured 280 MB instead of 350 MB peak
 *   RSS on a topic with 2 MB records), and two glibc malloc arenas for
 *   DuckDB's and Deno's threads instead of one per core pair.
 */
export interface ComponentRuntime {
  /** Arguments between `deno run -A` and the script. */
  denoArgs: string[];
  env: Record<string, string>;
}

export const PRODUCER_RUNTIME: ComponentRuntime = {
  denoArgs: ["--v8-flags=--max-semi-space-size=2"],
  env: { MALLOC_ARENA_MAX: "2" },
};

/**
 * The stream consumer's memory limit: its peak RSS (the whole process) stays
 * under this whatever the record sizes, up to the broker's maximum
 * (pipeline/consumer/memory_test.ts). What it is made of: the V8 old space,
 * capped below; DuckDB's Parquet conversion, capped by its memory_limit
 * (128 MB, zones/parquet_writer.ts) plus its allocator's slack; one fetch response
 * (6 MB, or one record batch of up to the broker's 4 MiB message limit) and
 * its decompressed records; and Deno's own ~60 MB. Batches spill to disk
 * past 1 MB of lines, too-large records are dead-lettered from a 4 KiB
 * prefix (zones/dead_letter.ts) and the live-feed sample is bounded in
 * bytes (metrics.ts).
 */
export const CONSUMER_RSS_LIMIT_MB = 384;

export const CONSUMER_RUNTIME: ComponentRuntime = {
  denoArgs: ["--v8-flags=--max-old-space-size=192,--max-semi-space-size=8"],
  env: { MALLOC_ARENA_MAX: "2" },
};
