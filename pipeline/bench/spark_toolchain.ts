/**
 * The toolchain of the Spark peer benchmark (`deno task bench --peer spark`),
 * installed on first use and only then (it is ~350 MB):
 *
 * - a project-local Python venv (`${localDir}/spark-venv`, beside dbt's
 *   `${localDir}/venv`) with the exact pins of
 *   `pipeline/bench/spark/requirements.txt` (pyspark 3.5.7, py4j), installed
 *   with `pip install --no-deps` as the dbt venv is;
 * - Spark's Kafka connector jars from Maven Central
 *   (`pipeline/bench/spark/pom.xml`, every transitive dependency excluded)
 *   into `${localDir}/jars/spark-kafka`, fetched with the same
 *   `mvn dependency:copy-dependencies` and stamp file as tasks/setup.ts uses
 *   for the Kafka and Hadoop jars.
 *
 * Each part is skipped when its stamp (SHA-256 of the pin file) is current,
 * so later runs cost two stats and a `python -c`.
 */
import { type Config, setting } from "../config.ts";
import { parsePins } from "../dbt/toolchain.ts";
import { logger } from "../log.ts";
import { sha256Hex } from "../hash.ts";
import { delay } from "../async.ts";

const log = logger("bench.spark");

/** The folder holding the pins, the pom and the job. */
export const SPARK_DIR = new URL("./spark", import.meta.url).pathname;
/** Exact Python pins of the Spark venv. */
export const SPARK_REQUIREMENTS = `${SPARK_DIR}/requirements.txt`;
/** Maven pins of the Kafka connector jars. */
export const SPARK_POM = `${SPARK_DIR}/pom.xml`;
/** The PySpark Structured Streaming job. */
export const SPARK_JOB = `${SPARK_DIR}/job.py`;

/** Where the toolchain lives, all under `config.localDir`. */
export interface SparkPaths {
  venvDir: string;
  python: string;
  jarsDir: string;
}

/** Paths of the Spark toolchain for `config`. */
export function sparkPaths(config: Pick<Config, "localDir">): SparkPaths {
  const venvDir = `${config.localDir}/spark-venv`;
  return {
    venvDir,
    python: `${venvDir}/bin/python`,
    jarsDir: `${config.localDir}/jars/spark-kafka`,
  };
}

/** What `ensureSparkToolchain` found or built. */
export interface SparkToolchain {
  paths: SparkPaths;
  /** The installed pyspark package folder: what SPARK_HOME must be. */
  sparkHome: string;
  /** `${sparkHome}/bin/spark-submit`. */
  sparkSubmit: string;
  pysparkVersion: string;
  /** The connector jars, for `spark-submit --jars`. */
  jars: string[];
  /** True when this call installed the venv or fetched the jars. */
  installed: boolean;
}

async function readStamp(path: string): Promise<string> {
  return (await Deno.readTextFile(path).catch(() => "")).trim();
}

async function run(
  cmd: string,
  args: string[],
  env?: Record<string, string>,
): Promise<{ ok: boolean; out: string }> {
  const res = await new Deno.Command(cmd, {
    args,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return {
    ok: res.success,
    out: (dec.decode(res.stdout) + dec.decode(res.stderr)).trim(),
  };
}

/**
 * Holds a directory lock (mkdir is atomic) while `fn` runs, so two benches
 * never install at once; a lock older than 30 minutes is taken over.
 */
async function withLock<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const staleMs = 30 * 60_000;
  for (;;) {
    try {
      await Deno.mkdir(dir);
      break;
    } catch (err) {
      if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
      const st = await Deno.stat(dir).catch(() => null);
      if (st?.mtime && Date.now() - st.mtime.getTime() > staleMs) {
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      } else await delay(1_000);
    }
  }
  try {
    return await fn();
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** The venv with the exact pins; returns true when it (re)installed. */
async function ensureVenv(paths: SparkPaths): Promise<boolean> {
  const want = await sha256Hex(await Deno.readFile(SPARK_REQUIREMENTS));
  const stamp = `${paths.venvDir}/.logpipe-stamp`;
  if (await readStamp(stamp) === want) return false;
  log.info("installing pyspark into its venv (~320 MB, first run only)", {
    venv: paths.venvDir,
  });
  const python = setting("LOGPIPE_PYTHON") ?? "python3";
  const exists = await Deno.stat(paths.python).then(() => true, () => false);
  if (!exists) {
    const r = await run(python, ["-m", "venv", paths.venvDir]);
    if (!r.ok) throw new Error(`python -m venv failed: ${r.out.slice(-2000)}`);
  }
  // --no-deps: the file is the complete lock (see its header).
  const pip = await run(paths.python, [
    "-m",
    "pip",
    "install",
    "--disable-pip-version-check",
    "--no-input",
    "-q",
    "--no-deps",
    "-r",
    SPARK_REQUIREMENTS,
  ]);
  if (!pip.ok) {
    throw new Error(`pip install of pyspark failed:\n${pip.out.slice(-4000)}`);
  }
  await Deno.writeTextFile(stamp, want + "\n");
  return true;
}

/** The connector jars; returns true when it fetched them. */
async function ensureJars(paths: SparkPaths): Promise<boolean> {
  const want = await sha256Hex(await Deno.readFile(SPARK_POM));
  const stamp = `${paths.jarsDir}/.logpipe-stamp`;
  if (await readStamp(stamp) === want) return false;
  log.info("fetching Spark's Kafka connector jars from Maven Central", {
    into: paths.jarsDir,
  });
  await Deno.remove(paths.jarsDir, { recursive: true }).catch(() => {});
  await Deno.mkdir(paths.jarsDir, { recursive: true });
  const mvn = await run("mvn", [
    "-q",
    "-B",
    "-f",
    SPARK_POM,
    "dependency:copy-dependencies",
    `-DoutputDirectory=${paths.jarsDir}`,
    "-DincludeScope=runtime",
  ]);
  if (!mvn.ok) {
    throw new Error(`mvn dependency:copy-dependencies failed:\n${mvn.out}`);
  }
  await Deno.writeTextFile(stamp, want + "\n");
  return true;
}

/**
 * Makes sure the Spark venv and the connector jars are installed and match
 * their pins, and returns how to launch `spark-submit`. Idempotent; safe to
 * call from two processes at once.
 */
export async function ensureSparkToolchain(
  config: Pick<Config, "localDir">,
): Promise<SparkToolchain> {
  const paths = sparkPaths(config);
  await Deno.mkdir(config.localDir, { recursive: true });
  const installed = await withLock(`${paths.venvDir}.lock`, async () => {
    const venv = await ensureVenv(paths);
    const jars = await ensureJars(paths);
    return venv || jars;
  });
  const probe = await run(paths.python, [
    "-c",
    "import os, pyspark; print(pyspark.__version__); print(os.path.dirname(pyspark.__file__))",
  ]);
  if (!probe.ok) throw new Error(`pyspark does not import: ${probe.out}`);
  const [version, sparkHome] = probe.out.split("\n").map((s) => s.trim());
  const pins = parsePins(await Deno.readTextFile(SPARK_REQUIREMENTS));
  if (version !== pins.get("pyspark")) {
    throw new Error(
      `pyspark in ${paths.venvDir} is ${version}, expected ${
        pins.get("pyspark")
      }; delete the venv to rebuild it`,
    );
  }
  const jars: string[] = [];
  for await (const e of Deno.readDir(paths.jarsDir)) {
    if (e.isFile && e.name.endsWith(".jar")) {
      jars.push(`${paths.jarsDir}/${e.name}`);
    }
  }
  jars.sort();
  return {
    paths,
    sparkHome,
    sparkSubmit: `${sparkHome}/bin/spark-submit`,
    pysparkVersion: version,
    jars,
    installed,
  };
}
