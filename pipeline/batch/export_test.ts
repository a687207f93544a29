import assert from "node:assert/strict";
import { DuckDBInstance } from "@duckdb/node-api";
import { createPool } from "../clients/postgres.ts";
import { createWebHdfs } from "../clients/webhdfs.ts";
import { logger } from "../log.ts";
import { duckTypeFor, exportMarts } from "./export.ts";
import { latestExportDir } from "../zones/exports.ts";
import { createTestEnv } from "../testing/env.ts";

Deno.test("Postgres types map to exact DuckDB types", () => {
  const c = (
    dataType: string,
    p: number | null = null,
    s: number | null = null,
  ) =>
    duckTypeFor({ name: "x", dataType, numericPrecision: p, numericScale: s });
  assert.equal(c("numeric", 12, 2), "DECIMAL(12,2)");
  assert.equal(c("numeric"), "DOUBLE");
  assert.equal(c("timestamp with time zone"), "TIMESTAMPTZ");
  assert.equal(c("bigint"), "BIGINT");
  assert.equal(c("jsonb"), "VARCHAR");
});

Deno.test({
  name:
    "export: marts to HDFS Parquet, swapped atomically by the _LATEST pointer, values exact",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const t = await createTestEnv("export", { noTopic: true });
    const pool = createPool(t.config);
    const hdfs = createWebHdfs(t.config);
    const duck = await DuckDBInstance.create(":memory:");
    const conn = await duck.connect();
    try {
      await pool.query(
        `create table analytics.mart_test (id integer, name text, amount numeric(12,2),
        ts timestamptz, day date, flag boolean, doc jsonb)`,
      );
      await pool.query(`insert into analytics.mart_test values
        (1, 'a,"b"', 10.05, '2026-01-01T10:00:00.123Z', '2026-01-01', true, '{"k":"<b>x</b>"}'),
        (2, '', null, null, null, null, null),
        (3, null, 0.10, '2026-01-02T00:00:00Z', '2026-01-02', false, '[1,2]')`);
      await pool.query("create table analytics.dim_empty (k text)");
      await pool.query("create table analytics.stg_not_exported (k text)");
      const log = logger("export-test");
      const first = await exportMarts({
        pool,
        hdfs,
        exportsDir: t.config.hdfs.exportsDir,
        runId: "run_1",
        log,
      });
      assert.deepEqual(first.tables, { dim_empty: 0, mart_test: 3 });
      assert.equal(
        await latestExportDir(hdfs, t.config.hdfs.exportsDir),
        `${t.config.hdfs.exportsDir}/versions/run_1`,
      );

      await pool.query(
        "insert into analytics.mart_test values (4, 'd', 1, null, null, null, null)",
      );
      const second = await exportMarts({
        pool,
        hdfs,
        exportsDir: t.config.hdfs.exportsDir,
        runId: "run_2",
        log,
      });
      assert.equal(second.tables.mart_test, 4);
      const latest = await latestExportDir(hdfs, t.config.hdfs.exportsDir);
      assert.equal(latest, `${t.config.hdfs.exportsDir}/versions/run_2`);
      // No temp folders are left; the old version is kept for readers mid-read.
      const top = (await hdfs.listStatus(t.config.hdfs.exportsDir)).map((s) =>
        s.pathSuffix
      ).sort();
      assert.deepEqual(top, ["_LATEST", "versions"]);
      const versions =
        (await hdfs.listStatus(`${t.config.hdfs.exportsDir}/versions`)).map((
          s,
        ) => s.pathSuffix).sort();
      assert.deepEqual(versions, ["run_1", "run_2"]);

      const local = await Deno.makeTempFile({ suffix: ".parquet" });
      await Deno.writeFile(
        local,
        await hdfs.read(`${latest}/mart_test.parquet`),
      );
      const rows = (await conn.runAndReadAll(
        `select id, name, amount::varchar as amount, strftime(ts, '%Y-%m-%dT%H:%M:%S.%g') as ts, day::varchar as day, flag, doc
         from read_parquet('${local}') order by id`,
      )).getRowObjectsJS();
      assert.deepEqual(rows[0], {
        id: 1,
        name: 'a,"b"',
        amount: "10.05",
        ts: "2026-01-01T10:00:00.123",
        day: "2026-01-01",
        flag: true,
        doc: '{"k": "<b>x</b>"}',
      });
      assert.equal(rows[1].name, "", "empty string stays empty");
      assert.equal(rows[2].name, null, "NULL stays NULL");
      assert.equal(rows.length, 4);
      const manifest = JSON.parse(
        await hdfs.readText(`${latest}/_manifest.json`),
      );
      assert.equal(manifest.tables.mart_test.rows, 4);
      await Deno.remove(local);
    } finally {
      conn.closeSync();
      duck.closeSync();
      await pool.end();
      await t.cleanup();
    }
  },
});
