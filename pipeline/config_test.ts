// Configuration parsing, and docker-compose.yaml kept in step with it.
import assert from "node:assert/strict";
import { parse as parseYaml } from "yaml";
import {
  ConfigError,
  DEFAULT_PORTS,
  loadConfig,
  parseDotEnv,
  redactSecrets,
  redactUrl,
  VARIABLES,
} from "./config.ts";
import { DEFAULT_MAX_FUTURE_SKEW_MS } from "./events/schema.ts";

const HOME = { LOGPIPE_HOME: "/nonexistent-logpipe-home" };

Deno.test("defaults point at the local services on 127.0.0.1", () => {
  const c = loadConfig(HOME);
  assert.deepEqual(c.kafka.brokers, [`127.0.0.1:${DEFAULT_PORTS.kafka}`]);
  assert.equal(c.kafka.external, false);
  assert.equal(c.kafka.topic, "LogEvents");
  assert.equal(c.kafka.partitions, 6);
  assert.equal(
    c.hdfs.webhdfsUrl,
    `http://127.0.0.1:${DEFAULT_PORTS.namenodeHttp}`,
  );
  assert.equal(c.hdfs.rawDir, "/logpipe/raw");
  assert.equal(c.postgres.port, DEFAULT_PORTS.postgres);
  assert.equal(c.postgres.external, false);
  assert.equal(c.api.host, "127.0.0.1");
  assert.equal(c.batch.cron, "*/10 * * * *");
  assert.equal(c.validation.maxFutureSkewMs, DEFAULT_MAX_FUTURE_SKEW_MS);
});

Deno.test("LOGPIPE_MAX_FUTURE_SKEW takes a duration", () => {
  const skew = (v: string) =>
    loadConfig({ ...HOME, LOGPIPE_MAX_FUTURE_SKEW: v }).validation
      .maxFutureSkewMs;
  assert.equal(skew("0"), 0);
  assert.equal(skew("1500ms"), 1500);
  assert.equal(skew("90s"), 90_000);
  assert.equal(skew("5m"), 300_000);
  assert.equal(skew("1h"), 3_600_000);
});

Deno.test("setting a service URL switches it to external mode", () => {
  const c = loadConfig({
    ...HOME,
    LOGPIPE_KAFKA_BROKERS: "k1:9092, k2:9092",
    LOGPIPE_WEBHDFS_URL: "http://nn.example:9870/",
    LOGPIPE_DATABASE_URL: "postgres://u:p%40ss@db.example:6432/analytics",
  });
  assert.deepEqual(c.kafka.brokers, ["k1:9092", "k2:9092"]);
  assert.ok(c.kafka.external && c.hdfs.external && c.postgres.external);
  assert.equal(c.hdfs.webhdfsUrl, "http://nn.example:9870");
  assert.equal(c.postgres.database, "analytics");
  assert.equal(c.postgres.port, 6432);
  assert.equal(c.postgres.user, "u");
});

for (
  const [env, pattern] of [
    [{ LOGPIPE_TOPIC_PARTITIONS: "six" }, /must be an integer/],
    [{ LOGPIPE_TOPIC_PARTITIONS: "0" }, /between 1 and 1000/],
    [{ LOGPIPE_API_PORT: "70000" }, /between 1 and 65535/],
    [{ LOGPIPE_HDFS_ROOT: "relative/path" }, /absolute HDFS path/],
    [{ LOGPIPE_TOPIC: "bad topic" }, /may only hold/],
    [{ LOGPIPE_BATCH_CRON: "every ten minutes" }, /5 fields/],
    [{ LOGPIPE_LOG_LEVEL: "loud" }, /debug, info, warn or error/],
    [{ LOGPIPE_MAX_FUTURE_SKEW: "5 minutes" }, /duration like 0, 90s/],
    [{ LOGPIPE_MAX_FUTURE_SKEW: "-1m" }, /duration like/],
    [{ LOGPIPE_MAX_FUTURE_SKEW: "200h" }, /at most 168 h/],
    [{ LOGPIPE_EMAIL_TO: "ops@example.com, nobody" }, /not an e-mail/],
    [{ LOGPIPE_DATABASE_URL: "postgres://h:5432/" }, /names no database/],
  ] as const
) {
  Deno.test(`rejects ${JSON.stringify(env)}`, () => {
    assert.throws(
      () => loadConfig({ ...HOME, ...env }),
      (e: unknown) => e instanceof ConfigError && pattern.test(e.message),
    );
  });
}

Deno.test(".env parsing: comments, export, quotes", () => {
  assert.deepEqual(
    parseDotEnv("# c\nexport A=1\nB = 'two words'\nC=\"x=y\"\n\nbad line\n"),
    { A: "1", B: "two words", C: "x=y" },
  );
});

Deno.test("the README lists every variable", () => {
  const text = Deno.readTextFileSync(new URL("../README.md", import.meta.url));
  for (const name of Object.keys(VARIABLES)) {
    assert.ok(text.includes(`\`${name}\``), `${name} missing from README.md`);
  }
});

Deno.test(".env.example documents every variable", () => {
  const text = Deno.readTextFileSync(
    new URL("../.env.example", import.meta.url),
  );
  for (const name of Object.keys(VARIABLES)) {
    assert.match(
      text,
      new RegExp(`^#? ?${name}=`, "m"),
      `${name} missing from .env.example`,
    );
  }
});

Deno.test("messages never show a password, webhook path or token", () => {
  const secret = "hunter2-secret";
  for (
    const env of [
      { LOGPIPE_DATABASE_URL: `postgres://u:${secret}@db.example:5432/` },
      { LOGPIPE_DATABASE_URL: `postgres://u:${secret}@db example:5432/x` },
      { LOGPIPE_DATABASE_URL: `mysql://u:${secret}@db.example/x` },
      { LOGPIPE_SMTP_URL: `smtp://u:${secret}@` },
      { LOGPIPE_SMTP_URL: `smtp//u:${secret}@mail.example:587` },
      { LOGPIPE_SLACK_WEBHOOK_URL: `hooks.slack.com/services/T0/B0/${secret}` },
      { LOGPIPE_SLACK_WEBHOOK_URL: `https://hooks slack.com/${secret}` },
      { LOGPIPE_API_TOKEN: secret },
    ]
  ) {
    assert.throws(
      () => loadConfig({ ...HOME, ...env }),
      (e: unknown) =>
        e instanceof ConfigError && !e.message.includes(secret) &&
        e.message.includes(Object.keys(env)[0]),
      JSON.stringify(env),
    );
  }
  assert.equal(
    redactUrl(`https://hooks.slack.com/services/T0/B0/${secret}`),
    "https://hooks.slack.com/…",
  );
  assert.equal(
    redactUrl(`postgres://u:${secret}@db:5432/x`),
    "postgres://u:***@db:5432/x",
  );
  assert.equal(
    redactSecrets(`connect to postgres://logpipe:${secret}@h:5433/db failed`),
    "connect to postgres://***@h:5433/db failed",
  );
});

Deno.test("LOGPIPE_API_TOKEN needs 32 characters", () => {
  assert.throws(
    () => loadConfig({ ...HOME, LOGPIPE_API_TOKEN: "x".repeat(31) }),
    (e: unknown) => e instanceof ConfigError && /at least 32/.test(e.message),
  );
  const token = "x".repeat(32);
  assert.equal(
    loadConfig({ ...HOME, LOGPIPE_API_TOKEN: token }).api.token,
    token,
  );
});

Deno.test("LOGPIPE_API_ALLOWED_HOSTS: names and name:port, validated", () => {
  assert.deepEqual(loadConfig(HOME).api.allowedHosts, []);
  assert.deepEqual(
    loadConfig({
      ...HOME,
      LOGPIPE_API_ALLOWED_HOSTS:
        " Logpipe.Example.com, 10.0.0.5:8787,[fd00::1]",
    }).api.allowedHosts,
    ["logpipe.example.com", "10.0.0.5:8787", "[fd00::1]"],
  );
  assert.throws(
    () =>
      loadConfig({ ...HOME, LOGPIPE_API_ALLOWED_HOSTS: "http://x.example" }),
    (e: unknown) => e instanceof ConfigError && /not a host/.test(e.message),
  );
});

Deno.test("config.ts is the only reader of LOGPIPE_* variables", async () => {
  // Anything else reading Deno.env directly ignores a value set in .env.
  // Tests may read their own knobs (LOGPIPE_TEST_*) from the environment.
  const root = new URL("..", import.meta.url).pathname;
  const offenders: string[] = [];
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(`${root}${dir}`)) {
      const rel = `${dir}/${e.name}`;
      if (e.isDirectory) await walk(rel);
      else if (
        e.name.endsWith(".ts") && !e.name.endsWith("_test.ts") &&
        rel !== "pipeline/config.ts"
      ) {
        const text = await Deno.readTextFile(`${root}${rel}`);
        if (/Deno\.env\.get\(\s*["'`]LOGPIPE_/.test(text)) offenders.push(rel);
      }
    }
  };
  await walk("pipeline");
  await walk("tasks");
  assert.deepEqual(offenders, []);
});

Deno.test("LOGPIPE_LOG_LEVEL and LOGPIPE_BI_PASSWORD set in .env are honoured", async () => {
  // A copy of config.ts and log.ts in a scratch project with its own .env:
  // the real project's .env is not ours to write.
  const dir = await Deno.makeTempDir({ prefix: "logpipe-dotenv-" });
  try {
    await Deno.mkdir(`${dir}/pipeline`);
    for (const f of ["config.ts", "log.ts"]) {
      await Deno.copyFile(new URL(f, import.meta.url), `${dir}/pipeline/${f}`);
    }
    await Deno.writeTextFile(
      `${dir}/.env`,
      "LOGPIPE_LOG_LEVEL=debug\nLOGPIPE_BI_PASSWORD=from-dotenv\n",
    );
    await Deno.writeTextFile(
      `${dir}/pipeline/probe.ts`,
      `import { logger } from "./log.ts";
       import { loadConfig } from "./config.ts";
       logger("probe").debug("debug line");
       console.log(loadConfig({ ...${
        JSON.stringify(HOME)
      } }).postgres.biPassword);
       console.log(loadConfig().postgres.biPassword);`,
    );
    const env = { ...Deno.env.toObject() };
    delete env.LOGPIPE_LOG_LEVEL;
    delete env.LOGPIPE_BI_PASSWORD;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--no-config", `${dir}/pipeline/probe.ts`],
      env: { ...env, LOGPIPE_HOME: HOME.LOGPIPE_HOME },
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    const stdout = new TextDecoder().decode(out.stdout).trim().split("\n");
    assert.ok(out.success, stderr);
    assert.match(stderr, /"level":"debug".*"msg":"debug line"/);
    assert.equal(stdout.at(-1), "from-dotenv");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// No Docker engine runs here, so the compose file is validated statically.
Deno.test("docker-compose.yaml matches the configuration module", () => {
  const compose = parseYaml(
    Deno.readTextFileSync(new URL("../docker-compose.yaml", import.meta.url)),
  ) as { services: Record<string, Record<string, unknown>> };
  const services = compose.services;
  for (const name of ["kafka", "namenode", "datanode", "postgres", "app"]) {
    const s = services[name];
    assert.ok(s, `service ${name} missing`);
    assert.ok(s.image || s.build, `${name} has neither image nor build`);
  }
  // Published ports: the same as the local services, on loopback only.
  const published = (name: string) =>
    ((services[name].ports ?? []) as string[]).map((p) => {
      const [host, hostPort] = p.split(":");
      assert.equal(host, "127.0.0.1", `${name} publishes ${p} beyond loopback`);
      return Number(hostPort);
    });
  assert.ok(published("kafka").includes(DEFAULT_PORTS.kafka));
  assert.ok(published("namenode").includes(DEFAULT_PORTS.namenodeHttp));
  assert.ok(published("datanode").includes(DEFAULT_PORTS.datanodeHttp));
  assert.ok(published("postgres").includes(DEFAULT_PORTS.postgres));
  assert.ok(published("app").includes(DEFAULT_PORTS.api));

  // The app runs `deno task up` in external mode with known variables only.
  const app = services.app as {
    command: string[];
    environment: Record<string, string>;
  };
  assert.deepEqual(app.command.slice(-2), ["task", "up"]);
  for (const key of Object.keys(app.environment)) {
    assert.ok(
      key in VARIABLES,
      `${key} is not a LOGPIPE_* variable the config module reads`,
    );
  }
  // Substitute placeholders the way compose would: ${VAR:-default} gives
  // the default, ${VAR:?message} a value the user must supply.
  const substitute = (v: string) =>
    v.replace(/\$\{[A-Z_]+:-([^}]*)\}/g, "$1").replace(
      /\$\{[A-Z_]+:\?[^}]*\}/g,
      "a-secret-the-user-supplies-32-chars",
    );
  const env = Object.fromEntries(
    Object.entries(app.environment).map(([k, v]) => [k, substitute(String(v))]),
  );
  const c = loadConfig({ ...HOME, ...env });
  assert.ok(c.kafka.external && c.hdfs.external && c.postgres.external);
  assert.deepEqual(c.kafka.brokers, ["kafka:19092"]);
  assert.equal(c.api.port, DEFAULT_PORTS.api);
  // The broker advertises the internal listener the app uses.
  const kafkaEnv = services.kafka.environment as Record<string, string>;
  assert.match(kafkaEnv.KAFKA_ADVERTISED_LISTENERS, /kafka:19092/);
  assert.match(
    kafkaEnv.KAFKA_ADVERTISED_LISTENERS,
    new RegExp(`127\\.0\\.0\\.1:${DEFAULT_PORTS.kafka}`),
  );
});

// The Docker set-up, statically: safe (no root, no superuser app, nothing
// secret in the image) and keeping its data (everything on the volumes).
type ComposeService = {
  image?: string;
  build?: { context: string; dockerfile: string };
  user?: string;
  restart?: string;
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
};
const readRepo = (path: string) =>
  Deno.readTextFileSync(new URL(`../${path}`, import.meta.url));
const composeServices = () =>
  (parseYaml(readRepo("docker-compose.yaml")) as {
    services: Record<string, ComposeService>;
  }).services;
/** The container path a named volume (or bind mount) is mounted on. */
const mountOf = (s: ComposeService, source: string) =>
  (s.volumes ?? []).map((v) => v.split(":")).find(([from]) => from === source)
    ?.[1];

Deno.test("compose: every service restarts, has a health check and runs unprivileged", () => {
  const services = composeServices();
  for (const [name, s] of Object.entries(services)) {
    assert.equal(s.restart, "unless-stopped", `${name}: restart policy`);
    assert.ok(
      Array.isArray(s.healthcheck?.test) && s.healthcheck.test.length > 1,
      `${name}: no health check`,
    );
    assert.ok(
      s.user && !/^(root|0)(:|$)/.test(s.user),
      `${name} runs as ${s.user ?? "the image's default user"}`,
    );
  }
  // The app starts once every dependency is healthy, not merely started.
  for (const dep of ["kafka", "namenode", "datanode", "postgres"]) {
    assert.equal(
      services.app.depends_on?.[dep]?.condition,
      "service_healthy",
      dep,
    );
  }
  // The app's user is the Dockerfile's own, set before anything runs.
  const dockerfile = readRepo("Dockerfile");
  const users = [...dockerfile.matchAll(/^USER\s+(\S+)/gm)].map((m) => m[1]);
  assert.equal(users.at(-1), services.app.user);
  assert.ok(
    dockerfile.indexOf(`USER ${services.app.user}`) <
      dockerfile.indexOf("RUN npm ci"),
    "npm ci runs as root",
  );
  // The HDFS image ends as its unprivileged user too.
  const hadoop = readRepo(
    `${services.namenode.build!.context}/${
      services.namenode.build!.dockerfile
    }`,
  );
  const hadoopUsers = [...hadoop.matchAll(/^USER\s+(\S+)/gm)].map((m) => m[1]);
  assert.equal(hadoopUsers.at(-1), services.namenode.user);
  assert.equal(services.datanode.user, services.namenode.user);
});

Deno.test("compose: Kafka, HDFS and Postgres keep their data on the volumes", () => {
  const s = composeServices();
  // Kafka's log (its data) on the volume: else down/up starts it empty.
  assert.equal(
    s.kafka.environment?.KAFKA_LOG_DIRS,
    mountOf(s.kafka, "kafka-data"),
  );
  const nameDir = s.namenode.environment
    ?.["HDFS-SITE.XML_dfs.namenode.name.dir"];
  assert.ok(nameDir, "dfs.namenode.name.dir is not set");
  assert.equal(nameDir, mountOf(s.namenode, "hdfs-name"));
  // Formatted only once: the guard looks at the same folder.
  assert.ok(s.namenode.command?.join(" ").includes(`-d ${nameDir}/current`));
  const dataDir = s.datanode.environment
    ?.["HDFS-SITE.XML_dfs.datanode.data.dir"];
  assert.ok(dataDir, "dfs.datanode.data.dir is not set");
  assert.equal(dataDir, mountOf(s.datanode, "hdfs-data"));
  // The HDFS image creates both folders, owned by its user.
  const hadoop = readRepo("docker/hadoop.Dockerfile");
  assert.match(hadoop, new RegExp(`mkdir -p ${nameDir} ${dataDir}`));
  assert.equal(
    mountOf(s.postgres, "postgres-data"),
    "/var/lib/postgresql/data",
  );
  assert.equal(mountOf(s.app, "app-state"), "/app/.local");
});

Deno.test("compose: the app's database role is no superuser, made by an init script", () => {
  const s = composeServices();
  const appUser = new URL(
    s.app.environment!.LOGPIPE_DATABASE_URL.replace(/\$\{[^}]*\}/g, "pw"),
  ).username;
  const superuser = s.postgres.environment?.POSTGRES_USER;
  assert.ok(superuser, "POSTGRES_USER must name the image's superuser");
  assert.notEqual(appUser, superuser, "the app logs in as the superuser");
  const initMount = (s.postgres.volumes ?? []).find((v) =>
    v.includes(":/docker-entrypoint-initdb.d/")
  );
  assert.ok(initMount, "no init script");
  const script = readRepo(initMount.split(":")[0].replace(/^\.\//, ""));
  assert.match(
    script,
    new RegExp(
      `create role ${appUser} login nosuperuser nocreatedb nocreaterole`,
    ),
  );
  assert.match(script, new RegExp(`create database logpipe owner ${appUser}`));
  assert.match(script, /revoke all on database logpipe from public/);
  // Passwords are psql variables, never pasted into the SQL.
  assert.doesNotMatch(script, /password '\$|password "\$/);
  for (const v of ["LOGPIPE_POSTGRES_PASSWORD", "LOGPIPE_BI_PASSWORD"]) {
    assert.ok(v in (s.postgres.environment ?? {}), `${v} not passed`);
  }
});

Deno.test("compose: the build context leaves out secrets, state and node_modules", () => {
  const rules = readRepo(".dockerignore").split("\n").map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
  // Docker's matching, for the patterns used: a path (or a folder above it)
  // matches a pattern with * globs; the last matching rule wins; ! re-includes.
  const ignored = (path: string) => {
    let out = false;
    for (const rule of rules) {
      const negate = rule.startsWith("!");
      const pattern = rule.replace(/^!/, "").replace(/\/$/, "");
      const re = new RegExp(
        `^${
          pattern.split("*").map((p) => p.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
            .join("[^/]*")
        }(/.*)?$`,
      );
      const name = path.split("/").at(-1)!;
      if (re.test(path) || (!pattern.includes("/") && re.test(name))) {
        out = !negate;
      }
    }
    return out;
  };
  for (
    const path of [
      ".env",
      ".env.production",
      ".local/postgres/logpipe.password",
      ".local/postgres/data/PG_VERSION",
      "node_modules/pg/package.json",
      ".git/config",
      "dist/index.html",
      "pipeline/consumer/consumer.log",
    ]
  ) {
    assert.ok(ignored(path), `${path} would be copied into the image`);
  }
  for (
    const path of [
      ".env.example",
      "pipeline/config.ts",
      "package-lock.json",
      "deno.json",
    ]
  ) {
    assert.ok(!ignored(path), `${path} would be left out of the image`);
  }
  assert.match(readRepo("Dockerfile"), /^COPY --chown=\S+ \. \.$/m);
});
