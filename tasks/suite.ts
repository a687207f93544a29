/**
 * `deno task test`: the whole suite. (Not named test.ts: `deno test` would
 * take a file of that name for a test module and run the suite inside itself.) Starts the services it needs (and
 * stops, at the end, the ones it started, also on failure), checks formatting
 * and lint, runs every `*_test.ts` against the real services, then the
 * services lifecycle test (down → nothing left → up → data still there).
 *
 * Extra arguments go to `deno test` (e.g. a path to run one file).
 */
import { parseCli, runMain } from "../pipeline/cli.ts";
import { loadConfig } from "../pipeline/config.ts";
import {
  servicesDown,
  servicesStatus,
  servicesUp,
} from "../pipeline/services/manager.ts";

const USAGE = `
usage: deno task test [--keep-services] [--no-lint] [-- <deno test args>]

  --keep-services  leave the services running at the end
  --no-lint        skip deno fmt --check and deno lint`;

function section(title: string) {
  console.log(`\n=== ${title} ===`);
}

/**
 * The longest `deno test` may run. Deno has no per-test timeout, so a test
 * that waits forever would otherwise hold the run until CI kills it with no
 * summary; stopped here, the run still ends with its summary and stops the
 * services. The whole suite takes well under this on a quiet machine.
 */
const TEST_RUN_LIMIT_MS = 75 * 60_000;

async function deno(
  args: string[],
  env: Record<string, string> = {},
  limitMs = TEST_RUN_LIMIT_MS,
): Promise<boolean> {
  const child = new Deno.Command(Deno.execPath(), {
    args,
    env,
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  const timer = setTimeout(() => {
    console.error(
      `\nerror: deno ${args[0]} still running after ${
        limitMs / 60_000
      } min: stopped (a test waits for something that does not come; ` +
        "the last test named above is the one)",
    );
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
  }, limitMs);
  try {
    return (await child.status).success;
  } finally {
    clearTimeout(timer);
  }
}

await runMain(async () => {
  const { values, positionals } = parseCli(
    Deno.args,
    {
      "keep-services": { type: "boolean" },
      "no-lint": { type: "boolean" },
    },
    USAGE,
    { allowPositionals: true },
  );
  const t0 = Date.now();
  const results: [string, boolean, number][] = [];
  const step = async (name: string, fn: () => Promise<boolean>) => {
    section(name);
    const s = Date.now();
    const ok = await fn().catch((err) => {
      console.error(`error: ${err instanceof Error ? err.message : err}`);
      return false;
    });
    results.push([name, ok, Date.now() - s]);
    return ok;
  };

  if (!values["no-lint"]) {
    await step("deno fmt --check", () => deno(["fmt", "--check"]));
    await step("deno lint", () => deno(["lint"]));
  }

  const before = await servicesStatus(loadConfig());
  const wasRunning = before.filter((s) => s.mode === "local" && s.up).length;
  let started = false;
  try {
    const up = await step("services up", async () => {
      await servicesUp({ say: (l) => console.log(l) });
      started = wasRunning === 0;
      return true;
    });
    if (up) {
      const filter = positionals.length ? positionals : [];
      await step(
        "deno test",
        () => deno(["test", "-A", "--no-check=remote", ...filter]),
      );
      if (!filter.length) {
        await step(
          "services lifecycle",
          () =>
            deno(["test", "-A", "pipeline/services/lifecycle_test.ts"], {
              LOGPIPE_TEST_LIFECYCLE: "1",
            }),
        );
      }
    }
  } finally {
    if (!values["keep-services"] && (started || wasRunning === 0)) {
      section("services down");
      await servicesDown({ say: (l) => console.log(l) }).catch((err) =>
        console.error(`services down failed: ${err}`)
      );
    }
  }

  section("summary");
  for (const [name, ok, ms] of results) {
    console.log(
      `${ok ? "PASS" : "FAIL"}  ${name.padEnd(22)} ${(ms / 1000).toFixed(1)} s`,
    );
  }
  console.log(`total ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return results.every(([, ok]) => ok) ? 0 : 1;
});
