/**
 * The batch's verdict over a set of checks (plain data; the probes
 * themselves run against real services in datanode_dead_test.ts).
 */
import assert from "node:assert/strict";
import { loadConfig } from "../config.ts";
import {
  assertServicesUp,
  downCheck,
  kafkaBrokersNeeded,
  ServicesDownError,
} from "./probes.ts";

const up = (c: ReturnType<typeof downCheck>, detail: string) => ({
  ...c,
  up: true,
  detail,
});

Deno.test("brokers needed: the topic's min.insync.replicas, at most the configured brokers", () => {
  const base = loadConfig({ LOGPIPE_HOME: "/nonexistent-logpipe-home" });
  const kafka = (brokers: string[], extra: Record<string, unknown> = {}) => ({
    kafka: { ...base.kafka, brokers, ...extra },
  });
  assert.equal(kafkaBrokersNeeded(kafka(["h:1"])), 1);
  assert.equal(kafkaBrokersNeeded(kafka(["h:1", "h:2", "h:3"])), 2);
  assert.equal(
    kafkaBrokersNeeded(kafka(["h:1", "h:2", "h:3"], { minInsyncReplicas: 3 })),
    3,
  );
  // A replication factor above the bootstrap list: every broker listed.
  assert.equal(
    kafkaBrokersNeeded(kafka(["lb:9092"], { replicationFactor: 3 })),
    1,
  );
});

Deno.test("assertServicesUp: the error names the services that cannot serve, and only their failed checks", () => {
  const checks = [
    up(downCheck("kafka", "broker 1 of 3", ""), "node 1"),
    downCheck("kafka", "broker 2 of 3", "not registered"),
    up(downCheck("kafka", "broker 3 of 3", ""), "node 3"),
    downCheck("hdfs", "NameNode", "NameNode is up but no DataNode is live"),
    up(downCheck("postgres", "database", ""), "select 1 ok"),
  ];
  assert.throws(
    () => assertServicesUp(checks, { kafkaBrokersNeeded: 2 }),
    (err: unknown) => {
      assert.ok(err instanceof ServicesDownError);
      assert.deepEqual(err.down, ["HDFS"]);
      assert.equal(
        err.message,
        "services down: HDFS (NameNode is up but no DataNode is live)",
      );
      return true;
    },
  );
  const healthyHdfs = checks.map((c) =>
    c.service === "hdfs" ? up(c, "NameNode up") : c
  );
  assert.equal(
    assertServicesUp(healthyHdfs, { kafkaBrokersNeeded: 2 }),
    healthyHdfs,
  );
  assert.throws(
    () => assertServicesUp(healthyHdfs),
    /services down: Kafka broker 2 of 3 \(not registered\)/,
  );
});
