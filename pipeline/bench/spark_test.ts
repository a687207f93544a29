/**
 * What the Spark peer benchmark (`deno task bench --peer spark`) does without
 * Spark: the flag checks, the reading of Spark's
 * `_spark_metadata` log, the DuckDB comparison of two outputs, and the
 * contract that the job ports every reject reason of the validator. No test
 * here starts Spark, Kafka or HDFS.
 */
import assert from "node:assert/strict";
import { DuckDBInstance } from "@duckdb/node-api";
import { REJECT_REASON_LIST } from "../events/schema.ts";
import { loadConfig } from "../config.ts";
import { parsePeer } from "./spark_flag.ts";
import {
  compareOutputs,
  hadoopFsUri,
  sameEventIds,
  SPARK_PORTED_REASONS,
  sparkCommittedFiles,
  sparkRules,
} from "./spark.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

Deno.test("parsePeer: absent, spark, anything else a usage error", () => {
  assert.equal(parsePeer(undefined), undefined);
  assert.equal(parsePeer("spark"), "spark");
  assert.throws(() => parsePeer("flink"), /unknown peer "flink"/);
  assert.throws(() => parsePeer(""), /unknown peer ""/);
});

Deno.test("deno task bench: bad --peer / --only combinations exit 2 with one line", async () => {
  for (
    const [args, message] of [
      [["--peer", "flink"], /--peer: unknown peer "flink"/],
      [["--only", "spark"], /--only spark needs --peer spark/],
      [["--peer", "spark", "--only", "nope"], /unknown benchmark "nope"/],
      [["--peer", "spark", "--soak"], /--peer does not go with --soak/],
    ] as const
  ) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${ROOT}tasks/bench.ts`, ...args],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(out.stderr).trim();
    assert.equal(out.code, 2, `${args.join(" ")}: ${err}`);
    assert.match(err, message);
    assert.equal(err.split("\n").length, 1, err);
  }
});

Deno.test("sparkCommittedFiles: newest compact file, later batches, deletes", () => {
  const entry = (path: string, action = "add") =>
    JSON.stringify({ path, size: 1, isDir: false, action });
  const files = sparkCommittedFiles([
    // Compacted away: ignored once 1.compact exists.
    { name: "0", text: ["v1", entry("hdfs://nn/o/old-a")].join("\n") },
    {
      name: "1.compact",
      text: ["v1", entry("hdfs://nn/o/old-a"), entry("hdfs://nn/o/b")].join(
        "\n",
      ),
    },
    { name: "1", text: ["v1", entry("hdfs://nn/o/ignored")].join("\n") },
    {
      name: "2",
      text: ["v1", entry("hdfs://nn/o/c"), entry("hdfs://nn/o/b", "delete")]
        .join("\n") + "\n",
    },
    { name: "2.tmp-123", text: "partial" },
  ]);
  assert.deepEqual(files, ["hdfs://nn/o/c", "hdfs://nn/o/old-a"]);
  assert.deepEqual(
    sparkCommittedFiles([{ name: "0", text: "v1\n" + entry("x") }]),
    ["x"],
  );
  assert.throws(
    () => sparkCommittedFiles([{ name: "0", text: "v9\n{}" }]),
    /unknown log version/,
  );
});

Deno.test("compareOutputs: event_id sets, duplicates, types and values", async () => {
  const db = await DuckDBInstance.create(":memory:");
  const con = await db.connect();
  try {
    await con.run(`create table a as select * from (values
      ('e1', 1::smallint, 10.50::decimal(12,2)),
      ('e2', 1::smallint, 20.00::decimal(12,2)),
      ('e3', 1::smallint, null::decimal(12,2))) t(event_id, schema_version, amount)`);
    await con.run(`create table same as select * from a`);
    const same = await compareOutputs(con, "a", "same");
    assert.ok(sameEventIds(same));
    assert.deepEqual(same.typeDifferences, []);
    assert.deepEqual(same.valueDifferences, {});

    await con.run(`create table b as select * from (values
      ('e1', 1::integer, 10.50::decimal(12,2)),
      ('e2', 1::integer, 20.01::decimal(12,2)),
      ('e4', 1::integer, null::decimal(12,2)),
      ('e4', 1::integer, null::decimal(12,2))) t(event_id, schema_version, amount)`);
    const c = await compareOutputs(con, "a", "b");
    assert.equal(sameEventIds(c), false);
    assert.deepEqual(c.rows, [3, 4]);
    assert.deepEqual(c.distinctIds, [3, 3]);
    assert.equal(c.onlyLeft, 1);
    assert.equal(c.onlyRight, 1);
    assert.deepEqual(c.onlyLeftSample, ["e3"]);
    assert.deepEqual(c.onlyRightSample, ["e4"]);
    assert.deepEqual(c.typeDifferences, [
      "schema_version: SMALLINT ≠ INTEGER",
    ]);
    // schema_version compares equal as numbers; amount differs on e2 only.
    assert.deepEqual(c.valueDifferences, { amount: 1 });

    // Same ids but one duplicated: not the same.
    await con.run(
      `create table dup as select * from a union all select * from a where event_id = 'e1'`,
    );
    assert.equal(sameEventIds(await compareOutputs(con, "a", "dup")), false);
  } finally {
    con.closeSync();
    db.closeSync();
  }
});

Deno.test("the Spark job ports every reject reason of the validator", () => {
  const missing = REJECT_REASON_LIST.filter((r) =>
    !SPARK_PORTED_REASONS.includes(r)
  );
  assert.deepEqual(
    missing,
    [],
    "add these rules to pipeline/bench/spark/job.py and SPARK_PORTED_REASONS",
  );
  const rules = sparkRules(loadConfig());
  assert.deepEqual(rules.rejectReasons, REJECT_REASON_LIST);
  assert.ok(Array.isArray((rules.cities as Record<string, string[]>).GB));
});

Deno.test("hadoopFsUri: the NameNode's RPC port locally, WebHDFS when external", () => {
  const c = loadConfig();
  assert.equal(
    hadoopFsUri({ ...c, hdfs: { ...c.hdfs, external: false } }),
    `hdfs://127.0.0.1:${c.ports.namenodeRpc}`,
  );
  assert.equal(
    hadoopFsUri({
      ...c,
      hdfs: { ...c.hdfs, external: true, webhdfsUrl: "http://nn.example:9870" },
    }),
    "webhdfs://nn.example:9870",
  );
});
