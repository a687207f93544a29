/**
 * The probes' verdicts on plain data: what counts as HDFS up, which Kafka
 * brokers count as registered, what a client may read of a failure, and
 * how checks are named for operators.
 */
import assert from "node:assert/strict";
import { DeadlineError } from "../async.ts";
import {
  checkName,
  DATANODE_REJOINED_WITHIN_S,
  DATANODE_SILENCE_LIMIT_S,
  downCheck,
  failingServices,
  hdfsVerdict,
  kafkaVerdicts,
  type NameNodeState,
  parseNameNodeInfo,
  PublicProbeError,
  publicReason,
  servicesDown,
  usableDataNodes,
} from "./verdicts.ts";

const node = (lastContact: number, adminState = "In Service") => ({
  xferaddr: `127.0.0.1:${9866 + lastContact}`,
  lastContact,
  adminState,
});

function hdfsDetail(state: NameNodeState): { up: boolean; detail: string } {
  try {
    return { up: true, detail: hdfsVerdict(state) };
  } catch (err) {
    assert.ok(err instanceof PublicProbeError, String(err));
    return { up: false, detail: err.message };
  }
}

Deno.test("HDFS: up with one DataNode heard from recently, out of safe mode", () => {
  assert.deepEqual(
    hdfsDetail({ safeMode: "", liveDataNodes: [node(1)] }),
    { up: true, detail: "NameNode up, 1 live DataNode(s)" },
  );
});

Deno.test("HDFS: down with the NameNode up but no DataNode (the dead-DataNode case)", () => {
  assert.deepEqual(hdfsDetail({ safeMode: "", liveDataNodes: [] }), {
    up: false,
    detail: "NameNode is up but no DataNode is live",
  });
});

Deno.test("HDFS: a DataNode still listed live but silent past the limit counts as dead", () => {
  const silent = DATANODE_SILENCE_LIMIT_S + 1;
  const v = hdfsDetail({ safeMode: "", liveDataNodes: [node(silent)] });
  assert.equal(v.up, false);
  assert.match(v.detail, /no DataNode is live \(1 silent for over 30 s\)/);
  // At the limit it still counts; one fresh node of two is enough.
  assert.equal(
    hdfsDetail({
      safeMode: "",
      liveDataNodes: [node(DATANODE_SILENCE_LIMIT_S)],
    }).up,
    true,
  );
  assert.equal(
    hdfsDetail({ safeMode: "", liveDataNodes: [node(silent), node(2)] })
      .detail,
    "NameNode up, 1 live DataNode(s)",
  );
});

Deno.test("HDFS: down in safe mode even with live DataNodes; decommissioned nodes take no writes", () => {
  assert.deepEqual(
    hdfsDetail({
      safeMode:
        "Safe mode is ON. The reported blocks 0 needs additional 3 blocks",
      liveDataNodes: [node(1)],
    }),
    { up: false, detail: "NameNode is in safe mode" },
  );
  assert.equal(
    hdfsDetail({ safeMode: "", liveDataNodes: [node(1, "Decommissioned")] })
      .up,
    false,
  );
});

Deno.test("HDFS: a restarted DataNode counts as rejoined only when heard from within 3 heartbeats", () => {
  const state = {
    safeMode: "",
    liveDataNodes: [node(DATANODE_REJOINED_WITHIN_S + 1), node(3)],
  };
  assert.equal(usableDataNodes(state).length, 2);
  assert.deepEqual(
    usableDataNodes(state, DATANODE_REJOINED_WITHIN_S).map((n) =>
      n.lastContact
    ),
    [3],
  );
});

Deno.test("HDFS: the NameNodeInfo bean is parsed (LiveNodes is a JSON string)", () => {
  const state = parseNameNodeInfo({
    Safemode: "",
    LiveNodes: JSON.stringify({
      "127.0.0.1:9866": {
        xferaddr: "127.0.0.1:9866",
        lastContact: 2,
        adminState: "In Service",
      },
    }),
  });
  assert.deepEqual(state, {
    safeMode: "",
    liveDataNodes: [{
      xferaddr: "127.0.0.1:9866",
      lastContact: 2,
      adminState: "In Service",
    }],
  });
  assert.deepEqual(parseNameNodeInfo(undefined), {
    safeMode: "",
    liveDataNodes: [],
  });
});

Deno.test("Kafka: each configured broker must be registered in the cluster, by address", () => {
  const cluster = [
    { nodeId: 1, host: "127.0.0.1", port: 9092 },
    { nodeId: 3, host: "127.0.0.1", port: 9096 },
  ];
  assert.deepEqual(
    kafkaVerdicts(
      ["127.0.0.1:9092", "127.0.0.1:9094", "127.0.0.1:9096"],
      cluster,
    ),
    [
      { up: true, detail: "node 1 in a cluster of 2 broker(s)" },
      { up: false, detail: "not registered in a cluster of 2 broker(s)" },
      { up: true, detail: "node 3 in a cluster of 2 broker(s)" },
    ],
  );
  // Host names compare case-insensitively; IPv6 brackets do not matter.
  assert.equal(
    kafkaVerdicts(["[::1]:9092"], [{ nodeId: 1, host: "::1", port: 9092 }])[0]
      .up,
    true,
  );
});

Deno.test("Kafka: a bootstrap address that is no broker's counts the registered brokers", () => {
  const three = [1, 2, 3].map((n) => ({
    nodeId: n,
    host: `kafka-${n}.internal`,
    port: 9092,
  }));
  assert.deepEqual(kafkaVerdicts(["KAFKA.example.com:9092"], three), [
    { up: true, detail: "a cluster of 3 broker(s) answers" },
  ]);
  assert.deepEqual(
    kafkaVerdicts(["lb-a:9092", "lb-b:9092"], three.slice(0, 1)),
    [
      { up: false, detail: "1 of 2 expected broker(s) registered" },
      { up: false, detail: "1 of 2 expected broker(s) registered" },
    ],
  );
});

Deno.test("a client reads a generic reason, never the raw error", () => {
  assert.equal(
    publicReason(new PublicProbeError("NameNode is in safe mode")),
    "NameNode is in safe mode",
  );
  assert.equal(
    publicReason(new DeadlineError("connect timed out")),
    "no answer in time",
  );
  assert.equal(
    publicReason(new Error("connect ECONNREFUSED 10.1.2.3:9092")),
    "connection refused",
  );
  assert.equal(
    publicReason(
      new Error('password authentication failed for user "logpipe"'),
    ),
    "login refused",
  );
  assert.equal(
    publicReason(new Error("getaddrinfo ENOTFOUND db.internal")),
    "host name not found",
  );
  assert.equal(
    publicReason(new Error("weird failure at 10.1.2.3")),
    "unreachable (details in the log)",
  );
});

Deno.test("checks are named by service, with the role when a service has several", () => {
  const checks = [
    downCheck("kafka", "broker 1 of 2", "x"),
    { ...downCheck("kafka", "broker 2 of 2", "y"), up: true },
    downCheck("hdfs", "NameNode", "z"),
    { ...downCheck("postgres", "database", "ok"), up: true },
  ];
  assert.deepEqual(checks.map((c) => checkName(c, checks)), [
    "Kafka broker 1 of 2",
    "Kafka broker 2 of 2",
    "HDFS",
    "PostgreSQL",
  ]);
  assert.deepEqual(servicesDown(checks), ["Kafka", "HDFS"]);
});

Deno.test("a Kafka cluster serves with the brokers acks=all needs; any other service down fails", () => {
  const broker = (i: number, up: boolean) => ({
    ...downCheck("kafka", `broker ${i} of 3`, up ? "node" : "not registered"),
    up,
  });
  const hdfsUp = { ...downCheck("hdfs", "NameNode", "ok"), up: true };
  const oneDown = [broker(1, true), broker(2, false), broker(3, true), hdfsUp];
  assert.deepEqual(failingServices(oneDown, 2), []);
  assert.deepEqual(failingServices(oneDown), ["Kafka"], "default: all needed");
  assert.deepEqual(
    failingServices([broker(1, true), broker(2, false), broker(3, false)], 2),
    ["Kafka"],
  );
  assert.deepEqual(
    failingServices([
      ...oneDown.slice(0, 3),
      downCheck("hdfs", "NameNode", "no DataNode"),
    ], 2),
    ["HDFS"],
  );
});
