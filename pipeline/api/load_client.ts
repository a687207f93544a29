/**
 * The load test's clients, in a process of their own (so the test process
 * that probes /healthz stays idle and measures the API, not its own event
 * loop): `clients` closed-loop clients, each sending its next request the
 * moment the last one answered, round the given paths, for `secs` seconds.
 *
 *   deno run -A pipeline/api/load_client.ts BASE CLIENTS SECS PATH...
 *
 * Prints one JSON array of [milliseconds, status] (status 0: no answer).
 */

/** One request's latency and status. */
export type Sample = [ms: number, status: number];

/** Runs the clients; resolves with every request's sample. */
export async function hammer(
  base: string,
  paths: string[],
  clients: number,
  secs: number,
): Promise<Sample[]> {
  const samples: Sample[] = [];
  const end = performance.now() + secs * 1000;
  let next = 0;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < end) {
        const path = paths[next++ % paths.length];
        const t0 = performance.now();
        let status = 0;
        try {
          const res = await fetch(`${base}${path}`, {
            signal: AbortSignal.timeout(30_000),
          });
          await res.arrayBuffer();
          status = res.status;
        } catch {
          status = 0;
        }
        samples.push([performance.now() - t0, status]);
      }
    }),
  );
  return samples;
}

if (import.meta.main) {
  const [base, clients, secs, ...paths] = Deno.args;
  const samples = await hammer(base, paths, Number(clients), Number(secs));
  console.log(JSON.stringify(samples.map(([ms, s]) => [Math.round(ms), s])));
}
