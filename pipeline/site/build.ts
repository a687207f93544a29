/**
 * Builds the Observable Framework site (docs/ → dist/) with Framework running
 * under this same Deno binary (nodeModulesDir "manual": Framework, Plot, d3
 * and friends come from node_modules; nothing from a CDN).
 *
 * Data loaders' cached outputs are dropped first (unless keepCache), so a
 * build always shows the latest marts and export: Framework would otherwise
 * reuse a cached output until the loader's source file changes.
 */
import { logger } from "../log.ts";
import type { Config } from "../config.ts";
import { generateDocs } from "../dbt/toolchain.ts";
import { delay } from "../async.ts";

const log = logger("site");

export interface BuildOptions {
  projectRoot: string;
  /** Reuse the data loaders' cached outputs (faster, possibly stale). */
  keepCache?: boolean;
  /** Extra environment for Framework and its loaders (e.g. LOGPIPE_* of a test). */
  env?: Record<string, string>;
  /** Pass Framework's output through (default: collected, shown on failure). */
  verbose?: boolean;
  /** Output folder (default <project>/dist). */
  outDir?: string;
}

export interface BuildResult {
  ok: boolean;
  code: number;
  ms: number;
  output: string;
  distDir: string;
}

/** Runs `observable build`; resolves with its exit code and output. */
export async function buildSite(opts: BuildOptions): Promise<BuildResult> {
  const started = performance.now();
  if (!opts.keepCache) {
    await Deno.remove(`${opts.projectRoot}/docs/.observablehq/cache/data`, {
      recursive: true,
    }).catch(() => {});
  }
  const cmd = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      `--config=${opts.projectRoot}/deno.json`,
      `${opts.projectRoot}/node_modules/@observablehq/framework/dist/bin/observable.js`,
      "build",
    ],
    cwd: opts.projectRoot,
    env: {
      OBSERVABLE_TELEMETRY_DISABLE: "1",
      NO_COLOR: "1",
      ...opts.env,
      ...(opts.outDir ? { LOGPIPE_SITE_OUT: opts.outDir } : {}),
    },
    stdout: opts.verbose ? "inherit" : "piped",
    stderr: opts.verbose ? "inherit" : "piped",
  });
  const out = await cmd.output();
  const dec = new TextDecoder();
  const output = opts.verbose
    ? ""
    : dec.decode(out.stdout) + dec.decode(out.stderr);
  const ms = Math.round(performance.now() - started);
  log.info("site build finished", { ok: out.success, code: out.code, ms });
  return {
    ok: out.success,
    code: out.code,
    ms,
    output,
    distDir: opts.outDir ?? `${opts.projectRoot}/dist`,
  };
}

/**
 * Rebuilds the site into a fresh folder and swaps it in for dist/ with two
 * renames, so the API never serves a half-written site (it resolves files
 * per request, so the next request sees the new build). The batch calls this
 * after every successful run: the BI pages are at most one batch old.
 */
export async function publishSite(
  opts: Omit<BuildOptions, "outDir">,
): Promise<BuildResult> {
  const dist = `${opts.projectRoot}/dist`;
  const next = `${opts.projectRoot}/.dist-next`;
  const old = `${opts.projectRoot}/.dist-old`;
  await Deno.remove(next, { recursive: true }).catch(() => {});
  const result = await buildSite({ ...opts, outDir: next });
  if (!result.ok) return result;
  await Deno.remove(old, { recursive: true }).catch(() => {});
  await Deno.rename(dist, old).catch(() => {});
  await Deno.rename(next, dist);
  await Deno.remove(old, { recursive: true }).catch(() => {});
  return { ...result, distDir: dist };
}

/** A publish older than this is taken to be dead (its process was killed). */
const PUBLISH_LOCK_STALE_MS = 15 * 60_000;

/**
 * Holds the publish lock (a folder: mkdir is atomic) while `fn` runs, so a
 * manual `deno task batch` and the schedule in `deno task up` never build
 * into the same folders at once; a lock left by a killed process is taken
 * over once it is PUBLISH_LOCK_STALE_MS old.
 */
async function withPublishLock<T>(
  projectRoot: string,
  fn: () => Promise<T>,
): Promise<T> {
  const lock = `${projectRoot}/.dist-publish.lock`;
  for (;;) {
    try {
      await Deno.mkdir(lock);
      break;
    } catch (err) {
      if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
      const since = (await Deno.stat(lock).catch(() => undefined))?.mtime
        ?.getTime();
      if (since !== undefined && Date.now() - since > PUBLISH_LOCK_STALE_MS) {
        log.warn("taking over a stale site publish lock", { lock });
        await Deno.remove(lock, { recursive: true }).catch(() => {});
      } else {
        await delay(2_000);
      }
    }
  }
  try {
    return await fn();
  } finally {
    await Deno.remove(lock, { recursive: true }).catch(() => {});
  }
}

/**
 * What a successful batch run does next, manual or scheduled: republish the
 * site from the new marts and export (publishSite), then regenerate the dbt
 * docs the BI pages link to. Throws with the build's output when either
 * fails.
 */
export async function republishAfterBatch(
  config: Pick<Config, "projectRoot" | "localDir" | "postgres">,
): Promise<BuildResult> {
  return await withPublishLock(config.projectRoot, async () => {
    const site = await publishSite({ projectRoot: config.projectRoot });
    if (!site.ok) {
      throw new Error(`site build failed:\n${site.output.slice(-2000)}`);
    }
    const docs = await generateDocs(config);
    if (!docs.run.ok) throw new Error("dbt docs generate failed");
    return site;
  });
}
