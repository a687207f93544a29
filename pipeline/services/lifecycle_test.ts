// services down leaves no process of ours behind; services up brings the
// same data back. It stops the shared services, so it only runs when the
// test runner asks for it, as its very last step (LOGPIPE_TEST_LIFECYCLE=1).
import assert from "node:assert/strict";
import { loadConfig } from "../config.ts";
import { createTestEnv } from "../testing/env.ts";
import { createKafka, topicEndOffsets } from "../clients/kafka.ts";
import { createWebHdfs } from "../clients/webhdfs.ts";
import { withConnection } from "../clients/postgres.ts";
import { isAlive } from "./process.ts";
import { servicesDown, servicesStatus, servicesUp } from "./manager.ts";

/** Every live process whose command line mentions our state folder. */
function processesUsing(dir: string): number[] {
  const pids: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const cmd = Deno.readTextFileSync(`/proc/${e.name}/cmdline`).replaceAll(
        "\0",
        " ",
      );
      if (cmd.includes(dir) && isAlive(Number(e.name))) {
        pids.push(Number(e.name));
      }
    } catch { /* gone */ }
  }
  return pids;
}

Deno.test({
  name: "services down leaves nothing running; up again keeps the data",
  ignore: Deno.env.get("LOGPIPE_TEST_LIFECYCLE") !== "1",
  async fn() {
    const t = await createTestEnv("lifecycle", { partitions: 1 });
    try {
      const producer = createKafka(t.config, { quiet: true }).producer();
      await producer.connect();
      await producer.send({
        topic: t.config.kafka.topic,
        acks: -1,
        messages: [{ value: "kept" }],
      });
      await producer.disconnect();
      const hdfs = createWebHdfs(t.config);
      await hdfs.create(`${t.config.hdfs.root}/kept.txt`, "kept");
      await withConnection(t.config.postgres.url, async (c) => {
        await c.query("create table ops.kept (v text)");
        await c.query("insert into ops.kept values ('kept')");
      });

      const config = loadConfig();
      const pids = (await servicesStatus(config)).map((s) => s.pid).filter((
        p,
      ): p is number => p !== undefined);
      assert.equal(pids.length, 4, "four local service processes before down");
      await servicesDown({ config });
      for (const pid of pids) {
        assert.equal(isAlive(pid), false, `pid ${pid} still alive`);
      }
      assert.deepEqual(
        processesUsing(config.localDir),
        [],
        "no process of ours left",
      );
      assert.ok((await servicesStatus(config)).every((s) => !s.up));

      await servicesUp();
      assert.ok((await servicesStatus(loadConfig())).every((s) => s.up));
      const ends = await topicEndOffsets(t.config);
      assert.equal(ends.get(0)?.high, 1n, "the message is still in the topic");
      assert.equal(
        await hdfs.readText(`${t.config.hdfs.root}/kept.txt`),
        "kept",
      );
      const rows = await withConnection(
        t.config.postgres.url,
        (c) => c.query("select v from ops.kept"),
      );
      assert.deepEqual(rows.rows, [{ v: "kept" }]);
    } finally {
      await t.cleanup();
    }
  },
});
