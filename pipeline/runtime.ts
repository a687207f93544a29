/**
 * How the long-running components are launched, in one place: `deno task up`
 * (supervisor), the tests and the benchmarks start them exactly as the
 * `produce` and `consume` tasks in deno.json do (a test checks the two agree).
 *
 * - producer: a small V8 young generation keeps peak RSS down (it allocates
 *   many short-lived buffers).
 * - consumer: a capped V8 heap, and two glibc malloc arenas for DuckDB's and
 *   Deno's threads instead of one per core pair: less resident memory.
 */
export interface ComponentRuntime {
  /** Arguments between `deno run -A` and the script. */
  denoArgs: string[];
  env: Record<string, string>;
}

export const PRODUCER_RUNTIME: ComponentRuntime = {
  denoArgs: ["--v8-flags=--max-semi-space-size=2"],
  env: {},
};

export const CONSUMER_RUNTIME: ComponentRuntime = {
  denoArgs: ["--v8-flags=--max-old-space-size=192"],
  env: { MALLOC_ARENA_MAX: "2" },
};
