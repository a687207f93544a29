/**
 * Issue test: with the only DataNode dead, the health page shows HDFS down,
 * as the batch's check_services does (before, the page stayed green while
 * the NameNode answered).
 *
 * It runs its OWN HDFS (NameNode + DataNode under a temporary LOGPIPE_HOME
 * and a free port offset; the jars are the shared state folder's) and
 * SIGKILLs that DataNode: the shared one is never touched. Kafka and
 * PostgreSQL are the shared services, used as external ones.
 */
import assert from "node:assert/strict";
import { delay } from "../async.ts";
import { type Config, loadConfig } from "../config.ts";
import { startApi } from "../api/server.ts";
import { startService, stopService, waitHealthy } from "../services/manager.ts";
import { privateInstance } from "../testing/instance.ts";
import {
  checkServices,
  DATANODE_SILENCE_LIMIT_S,
  type ServiceCheck,
} from "./probes.ts";

/** HDFS's ports, which the private instance needs free. */
const HDFS_PORTS = [
  "namenodeRpc",
  "namenodeHttp",
  "datanodeHttp",
  "datanodeData",
  "datanodeIpc",
] as const;

async function hdfsCheck(
  config: Config,
  profile: "quick" | "strict",
): Promise<ServiceCheck> {
  const checks = await checkServices(config, { profile });
  return checks.find((c) => c.service === "hdfs")!;
}

async function apiHdfsCheck(url: string): Promise<ServiceCheck> {
  const res = await fetch(`${url}/api/pipeline/services`);
  assert.equal(res.status, 200);
  const body = await res.text();
  // What a client reads names no address.
  assert.ok(
    !body.includes("127.0.0.1"),
    `the answer names an address: ${body}`,
  );
  const checks = JSON.parse(body).services as ServiceCheck[];
  return checks.find((c) => c.service === "hdfs")!;
}

Deno.test({
  name:
    "probes: a private HDFS's DataNode SIGKILLed → quick and strict probes and the API's health page say HDFS down",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const shared = loadConfig();
    // CI uses port offset 100, the soak 4700.
    const instance = await privateInstance(shared, {
      prefix: "logpipe-probes-",
      link: ["jars/hadoop"],
      ports: HDFS_PORTS,
      offsets: { from: 300, to: 4700, step: 100 },
      env: {
        LOGPIPE_KAFKA_BROKERS: shared.kafka.brokers.join(","),
        LOGPIPE_DATABASE_URL: shared.postgres.url,
        LOGPIPE_LOG_LEVEL: "error",
      },
    });
    const { offset } = instance;
    const config = loadConfig(instance.env);
    const t0 = Date.now();
    const note = (m: string) =>
      console.log(`  [${((Date.now() - t0) / 1000).toFixed(1)} s] ${m}`);
    let api: Awaited<ReturnType<typeof startApi>> | undefined;
    try {
      // Both JVMs start at once (the DataNode retries until the NameNode
      // answers): the test's time goes to the outage, not to the start.
      await startService("namenode", config);
      await startService("datanode", config);
      note("NameNode and DataNode started");
      await waitHealthy("namenode", config, 90_000);
      note("NameNode healthy");
      await waitHealthy("datanode", config, 90_000);
      note(`private HDFS up at port offset ${offset}`);
      api = await startApi(config, { port: 0, siteDir: null });

      // Both sides of the verdict are observed: up first.
      assert.equal((await hdfsCheck(config, "quick")).up, true);
      assert.equal((await hdfsCheck(config, "strict")).up, true);
      assert.equal((await apiHdfsCheck(api.url)).up, true);

      await stopService("datanode", config, { hard: true });
      const killedAt = Date.now();
      note("DataNode SIGKILLed");

      // The NameNode lists it live for a minute more; the probes count it
      // dead once it is silent for DATANODE_SILENCE_LIMIT_S.
      const until = killedAt + (DATANODE_SILENCE_LIMIT_S + 30) * 1000;
      let quick = await hdfsCheck(config, "quick");
      while (quick.up && Date.now() < until) {
        await delay(2_000);
        quick = await hdfsCheck(config, "quick");
      }
      note(`quick probe: HDFS ${quick.up ? "up" : "down"}: ${quick.detail}`);
      assert.equal(quick.up, false, "the quick probe still says HDFS is up");
      assert.match(quick.detail, /no DataNode is live/);
      const strict = await hdfsCheck(config, "strict");
      assert.equal(strict.up, false, "the strict probe says HDFS is up");
      assert.match(strict.detail, /no DataNode is live/);

      // The API caches its checks for 5 s.
      let page = await apiHdfsCheck(api.url);
      const pageUntil = Date.now() + 15_000;
      while (page.up && Date.now() < pageUntil) {
        await delay(1_000);
        page = await apiHdfsCheck(api.url);
      }
      note(`health page: HDFS ${page.up ? "up" : "down"}: ${page.detail}`);
      assert.equal(page.up, false, "the health page still shows HDFS up");
      assert.equal(page.target, "NameNode");
      assert.match(page.detail, /no DataNode is live/);
      note(
        `HDFS shown down ${
          ((Date.now() - killedAt) / 1000).toFixed(0)
        } s after the kill`,
      );
    } finally {
      await api?.shutdown();
      await stopService("datanode", config, { hard: true }).catch(() => {});
      await stopService("namenode", config, { hard: true }).catch(() => {});
      await instance.remove();
    }
  },
});
