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
