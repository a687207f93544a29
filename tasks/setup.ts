/**
 * First-run set-up, safe to run again: installs what the project needs and
 * is missing, with visible progress. Uses nothing but Deno itself, because it
 * runs before node_modules exists.
 *
 *   - npm packages (`npm ci` from package-lock.json) into node_modules
 *   - Kafka and Hadoop jars from Maven Central (`mvn dependency:copy-dependencies`
 *     of the pinned poms in pipeline/services/jvm/*) into .local/jars
 *   - the dbt venv (pinned dbt/requirements.txt) into .local/venv
 *   - with --browser: Debian's chromium for the site's browser tests
 *
 * Each step is skipped when a stamp file shows its inputs are unchanged.
 */
// config.ts has no imports, so it loads before node_modules exists.
import { setting } from "../pipeline/config.ts";
import { sha256Hex } from "../pipeline/hash.ts";
const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const LOCAL = setting("LOGPIPE_HOME") ?? `${ROOT}/.local`;
const args = new Set(Deno.args);
const quiet = args.has("--quiet");
for (const a of args) {
  if (!["--quiet", "--browser", "--help", "-h"].includes(a)) {
    console.error(`error: unknown flag "${a}" (expected --quiet, --browser)`);
    Deno.exit(2);
  }
}
if (args.has("--help") || args.has("-h")) {
  console.log(
    "usage: deno task setup [--browser] [--quiet]\n  installs npm packages, Kafka/Hadoop jars, the dbt venv (and chromium with --browser)",
  );
  Deno.exit(0);
}

const say = (msg: string) => {
  if (!quiet) console.error(`[setup] ${msg}`);
};

async function hashFiles(...paths: string[]): Promise<string> {
  const parts: Uint8Array[] = [];
  for (const p of paths) {
    try {
      parts.push(await Deno.readFile(p));
    } catch {
      parts.push(new TextEncoder().encode(`missing:${p}`));
    }
  }
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    all.set(p, o);
    o += p.length;
  }
  return await sha256Hex(all);
}

function readStamp(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path).trim();
  } catch {
    return undefined;
  }
}

async function exec(
  cmd: string[],
  opts: { cwd?: string; env?: Record<string, string> } = {},
) {
  const t0 = Date.now();
  const res = await new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    cwd: opts.cwd ?? ROOT,
    env: opts.env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!res.success) {
    const dec = new TextDecoder();
    console.error(
      dec.decode(res.stdout).slice(-4000) + dec.decode(res.stderr).slice(-4000),
    );
    console.error(`error: setup step failed: ${cmd.join(" ")}`);
    Deno.exit(1);
  }
  return Date.now() - t0;
}

function have(cmd: string): boolean {
  try {
    return new Deno.Command("sh", {
      args: ["-c", `command -v ${cmd}`],
      stdout: "null",
      stderr: "null",
    })
      .outputSync().success;
  } catch {
    return false;
  }
}

// Prerequisites a laptop must have (the README lists them).
// Java and Maven only matter for services we run ourselves (external mode
// needs neither: see the app image in docker-compose.yaml).
const localJvm = !setting("LOGPIPE_KAFKA_BROKERS") ||
  !setting("LOGPIPE_WEBHDFS_URL");
const missing = ["node", "npm", "python3", ...(localJvm ? ["java", "mvn"] : [])]
  .filter((c) => !have(c));
if (missing.length) {
  console.error(
    `error: missing prerequisites on PATH: ${
      missing.join(", ")
    } (see README "Prerequisites")`,
  );
  Deno.exit(1);
}

Deno.mkdirSync(LOCAL, { recursive: true });

// 1. npm packages.
{
  const stampPath = `${ROOT}/node_modules/.logpipe-stamp`;
  const want = await hashFiles(
    `${ROOT}/package.json`,
    `${ROOT}/package-lock.json`,
  );
  if (readStamp(stampPath) !== want) {
    say("installing npm packages (npm ci)…");
    const ms = await exec([
      "npm",
      "ci",
      "--no-audit",
      "--no-fund",
      "--loglevel=error",
    ]);
    Deno.writeTextFileSync(stampPath, want);
    say(`npm packages installed in ${(ms / 1000).toFixed(1)} s`);
  }
}

// 2. Kafka and Hadoop jars (separate folders: their jars conflict).
// Kafka's jars also carry its perf tools (deno task bench), so they are
// fetched whenever Java is at hand; Hadoop's only when HDFS runs locally.
const jarSets = [
  ...(have("java") && have("mvn") ? ["kafka"] : []),
  ...(!setting("LOGPIPE_WEBHDFS_URL") ? ["hadoop"] : []),
];
for (const name of jarSets) {
  const pom = `${ROOT}/pipeline/services/jvm/${name}/pom.xml`;
  const out = `${LOCAL}/jars/${name}`;
  const stampPath = `${out}/.logpipe-stamp`;
  const want = await hashFiles(pom);
  if (readStamp(stampPath) === want) continue;
  say(`fetching ${name} jars from Maven Central…`);
  await Deno.remove(out, { recursive: true }).catch(() => {});
  Deno.mkdirSync(out, { recursive: true });
  const ms = await exec([
    "mvn",
    "-q",
    "-B",
    "-f",
    pom,
    "dependency:copy-dependencies",
    `-DoutputDirectory=${out}`,
    "-DincludeScope=runtime",
  ]);
  Deno.writeTextFileSync(stampPath, want);
  say(`${name} jars ready in ${(ms / 1000).toFixed(1)} s`);
}

// 3. dbt venv (exact pins in dbt/requirements.txt).
{
  const req = `${ROOT}/dbt/requirements.txt`;
  const venv = `${LOCAL}/venv`;
  const stampPath = `${venv}/.logpipe-stamp`;
  let hasReq = true;
  try {
    Deno.statSync(req);
  } catch {
    hasReq = false;
  }
  if (hasReq) {
    const want = await hashFiles(req);
    if (readStamp(stampPath) !== want) {
      say("creating the dbt virtualenv (pip install -r dbt/requirements.txt)…");
      let ms = 0;
      try {
        Deno.statSync(`${venv}/bin/python`);
      } catch {
        ms += await exec(["python3", "-m", "venv", venv]);
      }
      // --no-deps: the file is a complete lock (see its header for why).
      ms += await exec([
        `${venv}/bin/pip`,
        "install",
        "--disable-pip-version-check",
        "-q",
        "--no-deps",
        "-r",
        req,
      ]);
      Deno.writeTextFileSync(stampPath, want);
      say(`dbt ready in ${(ms / 1000).toFixed(1)} s`);
    }
  }
}

// 4. Chromium for the browser tests.
if (args.has("--browser") && !have("chromium")) {
  if (Deno.uid() !== 0) {
    console.error(
      "error: chromium is missing; install it with: sudo apt-get install -y chromium",
    );
    Deno.exit(1);
  }
  say("installing chromium from Debian (apt-get)…");
  const env = {
    DEBIAN_FRONTEND: "noninteractive",
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
  };
  const ms = await exec([
    "apt-get",
    "install",
    "-y",
    "-q",
    "--no-install-recommends",
    "chromium",
  ], { env })
    .catch(() => 0);
  say(`chromium installed in ${(ms / 1000).toFixed(1)} s`);
}
