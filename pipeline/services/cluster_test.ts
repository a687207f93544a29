// The local cluster's shape and the cluster settings, without starting it
// (pipeline/faults/cluster_faults_test.ts runs one): nodes, ports and
// folders, the state folder's memory of the cluster, the replication logic
// of created topics, and the settings refused for being unsafe or
// contradictory.
import assert from "node:assert/strict";
import { clusterMarkerPath, ConfigError, loadConfig } from "../config.ts";
import { kafkaSecurityOptions, topicReplication } from "../clients/kafka.ts";
import { kafkaNodes } from "./kafka.ts";
import { dataNodes } from "./hdfs.ts";
import {
  CLUSTER_SERVICE_NAMES,
  SERVICE_NAMES,
  serviceNames,
} from "./manager.ts";

const HOME = { LOGPIPE_HOME: "/nonexistent-logpipe-home" };

Deno.test("LOGPIPE_CLUSTER=1: three brokers and two DataNodes on ports of their own", () => {
  const one = loadConfig(HOME);
  assert.equal(one.cluster, false);
  assert.deepEqual(serviceNames(one), SERVICE_NAMES);
  assert.equal(kafkaNodes(one).length, 1);
  assert.equal(dataNodes(one).length, 1);
  // One node keeps the folders it always had (existing state folders).
  assert.equal(kafkaNodes(one)[0].data, `${HOME.LOGPIPE_HOME}/kafka/data`);

  const c = loadConfig({
    ...HOME,
    LOGPIPE_CLUSTER: "1",
    LOGPIPE_PORT_OFFSET: "100",
  });
  assert.equal(c.cluster, true);
  assert.deepEqual(serviceNames(c), CLUSTER_SERVICE_NAMES);
  assert.deepEqual(c.kafka.brokers, [
    "127.0.0.1:9192",
    "127.0.0.1:9194",
    "127.0.0.1:9196",
  ]);
  const nodes = kafkaNodes(c);
  assert.deepEqual(nodes.map((n) => [n.id, n.name]), [
    [1, "kafka"],
    [2, "kafka-2"],
    [3, "kafka-3"],
  ]);
  const dns = dataNodes(c);
  assert.deepEqual(dns.map((d) => d.name), ["datanode", "datanode-2"]);
  const ports = [
    ...nodes.flatMap((n) => [n.port, n.controllerPort]),
    ...dns.flatMap((d) => [d.http, d.data, d.ipc]),
    c.ports.namenodeHttp,
    c.ports.namenodeRpc,
    c.ports.postgres,
    c.ports.api,
  ];
  assert.equal(new Set(ports).size, ports.length, `ports collide: ${ports}`);
  const dirs = [...nodes.map((n) => n.data), ...dns.map((d) => d.dataDir)];
  assert.equal(new Set(dirs).size, dirs.length);
  assert.notEqual(dns[0].confDir, dns[1].confDir);
});

Deno.test("a state folder started as a cluster stays one; LOGPIPE_CLUSTER=0 on it is refused", () => {
  const home = Deno.makeTempDirSync({ prefix: "logpipe-cluster-marker-" });
  try {
    assert.equal(loadConfig({ LOGPIPE_HOME: home }).cluster, false);
    Deno.writeTextFileSync(clusterMarkerPath(home), "cluster\n");
    assert.equal(loadConfig({ LOGPIPE_HOME: home }).cluster, true);
    assert.equal(loadConfig({ LOGPIPE_HOME: home }).kafka.brokers.length, 3);
    assert.throws(
      () => loadConfig({ LOGPIPE_HOME: home, LOGPIPE_CLUSTER: "0" }),
      (e: unknown) =>
        e instanceof ConfigError &&
        /was started as a local cluster/.test(e.message),
    );
    assert.throws(
      () => loadConfig({ LOGPIPE_HOME: home, LOGPIPE_CLUSTER: "yes" }),
      /must be 1 or 0/,
    );
  } finally {
    Deno.removeSync(home, { recursive: true });
  }
});

Deno.test("created topics: RF min(3, brokers), min ISR RF - 1 (at least 1), or as set", () => {
  const none = { replicationFactor: undefined, minInsyncReplicas: undefined };
  assert.deepEqual(topicReplication(none, 1), {
    replicationFactor: 1,
    minInsyncReplicas: 1,
  });
  assert.deepEqual(topicReplication(none, 2), {
    replicationFactor: 2,
    minInsyncReplicas: 1,
  });
  assert.deepEqual(topicReplication(none, 3), {
    replicationFactor: 3,
    minInsyncReplicas: 2,
  });
  assert.deepEqual(topicReplication(none, 7), {
    replicationFactor: 3,
    minInsyncReplicas: 2,
  });
  assert.deepEqual(
    topicReplication({ replicationFactor: 5, minInsyncReplicas: 3 }, 6),
    { replicationFactor: 5, minInsyncReplicas: 3 },
  );
  assert.throws(
    () => topicReplication({ ...none, replicationFactor: 3 }, 1),
    /needs at least 3 brokers; the cluster has 1/,
  );
  const c = loadConfig({
    ...HOME,
    LOGPIPE_KAFKA_REPLICATION_FACTOR: "2",
    LOGPIPE_KAFKA_MIN_INSYNC_REPLICAS: "2",
  });
  assert.equal(c.kafka.replicationFactor, 2);
  assert.equal(c.kafka.minInsyncReplicas, 2);
});

for (
  const [env, pattern] of [
    [{
      LOGPIPE_KAFKA_REPLICATION_FACTOR: "2",
      LOGPIPE_KAFKA_MIN_INSYNC_REPLICAS: "3",
    }, /cannot exceed/],
    [{ LOGPIPE_KAFKA_REPLICATION_FACTOR: "0" }, /between 1 and 32/],
    [{ LOGPIPE_KAFKA_TLS: "yes" }, /must be on or off/],
    [{ LOGPIPE_KAFKA_TLS_CA: "/etc/hostname" }, /needs LOGPIPE_KAFKA_TLS=on/],
    [
      { LOGPIPE_KAFKA_TLS: "on", LOGPIPE_KAFKA_TLS_CA: "/nonexistent.pem" },
      /not a readable file/,
    ],
    [{
      LOGPIPE_KAFKA_TLS: "on",
      LOGPIPE_KAFKA_TLS_CERT: "/etc/hostname",
    }, /go together/],
    [
      { LOGPIPE_KAFKA_SASL_MECHANISM: "gssapi" },
      /must be plain or scram-sha-256 or scram-sha-512/,
    ],
    [
      { LOGPIPE_KAFKA_SASL_MECHANISM: "scram-sha-512" },
      /needs LOGPIPE_KAFKA_SASL_USERNAME/,
    ],
    [{ LOGPIPE_KAFKA_SASL_USERNAME: "u" }, /need LOGPIPE_KAFKA_SASL_MECHANISM/],
    [{
      LOGPIPE_KAFKA_SASL_MECHANISM: "plain",
      LOGPIPE_KAFKA_SASL_USERNAME: "u",
      LOGPIPE_KAFKA_SASL_PASSWORD: "p",
    }, /sends the password in clear/],
    [
      { LOGPIPE_WEBHDFS_URL: "http://nn1:9870, ftp://nn2:9870" },
      /must use http/,
    ],
    [{ LOGPIPE_WEBHDFS_URL: " , " }, /is empty/],
  ] as const
) {
  Deno.test(`cluster settings: refuses ${JSON.stringify(env)}`, () => {
    assert.throws(
      () => loadConfig({ ...HOME, ...env }),
      (e: unknown) => e instanceof ConfigError && pattern.test(e.message),
    );
  });
}

Deno.test("kafkajs options: none by default, TLS with the system's CAs or a CA file, SASL as set", () => {
  assert.deepEqual(kafkaSecurityOptions(loadConfig(HOME).kafka), {});
  const tls = loadConfig({ ...HOME, LOGPIPE_KAFKA_TLS: "on" });
  assert.deepEqual(kafkaSecurityOptions(tls.kafka), { ssl: true });
  const scram = loadConfig({
    ...HOME,
    LOGPIPE_KAFKA_TLS: "on",
    LOGPIPE_KAFKA_TLS_CA: "/etc/hostname",
    LOGPIPE_KAFKA_SASL_MECHANISM: "SCRAM-SHA-512",
    LOGPIPE_KAFKA_SASL_USERNAME: "u",
    LOGPIPE_KAFKA_SASL_PASSWORD: "p",
  });
  const o = kafkaSecurityOptions(scram.kafka);
  assert.deepEqual(o.sasl, {
    mechanism: "scram-sha-512",
    username: "u",
    password: "p",
  });
  assert.deepEqual(o.ssl, { ca: [Deno.readTextFileSync("/etc/hostname")] });
  const ha = loadConfig({
    ...HOME,
    LOGPIPE_WEBHDFS_URL: "https://nn1:9871/, https://nn2:9871",
  });
  assert.deepEqual(ha.hdfs.webhdfsUrls, [
    "https://nn1:9871",
    "https://nn2:9871",
  ]);
  assert.equal(ha.hdfs.webhdfsUrl, "https://nn1:9871");
});

async function services(args: string[], env: Record<string, string>) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("../../tasks/services.ts", import.meta.url).pathname,
      ...args,
    ],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stderr: new TextDecoder().decode(out.stderr).trim(),
  };
}

Deno.test("services: --cluster goes with up only; up --cluster refuses a one-node Kafka's state folder, starting nothing", async () => {
  const r = await services(["down", "--cluster"], HOME);
  assert.equal(r.code, 2);
  assert.equal(r.stderr.split("\n").length, 1, r.stderr);
  assert.match(r.stderr, /--cluster goes with up only/);

  const home = Deno.makeTempDirSync({ prefix: "logpipe-cluster-refuse-" });
  try {
    Deno.mkdirSync(`${home}/kafka/data`, { recursive: true });
    Deno.writeTextFileSync(`${home}/kafka/data/meta.properties`, "node.id=1\n");
    const up = await services(["up", "--cluster"], {
      LOGPIPE_HOME: home,
      LOGPIPE_PORT_OFFSET: "9300",
    });
    assert.notEqual(up.code, 0);
    assert.match(up.stderr, /holds a single-node Kafka/);
    assert.equal(
      [...Deno.readDirSync(home)].some((e) => e.name === "cluster"),
      false,
      "the folder was not marked as a cluster",
    );
    assert.equal(
      [...Deno.readDirSync(`${home}/run`)].some((e) => e.name.endsWith(".pid")),
      false,
      "nothing was started",
    );
  } finally {
    Deno.removeSync(home, { recursive: true });
  }
});
