// Configuration parsing, and docker-compose.yaml kept in step with it.
import assert from "node:assert/strict";
import { parse as parseYaml } from "yaml";
import {
  ConfigError,
  DEFAULT_PORTS,
  loadConfig,
  parseDotEnv,
  VARIABLES,
} from "./config.ts";

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
      "secret",
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
