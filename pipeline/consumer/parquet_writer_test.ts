/**
 * The Parquet path without services: generated events → validate → flatten →
 * MicroBatch NDJSON → DuckDB Parquet, read back with DuckDB and compared
 * with the input value by value.
 */
import assert from "node:assert/strict";
import { DuckDBInstance } from "@duckdb/node-api";
import { createGenerator, recordBytes } from "../events/generator.ts";
import { validateEvent } from "../events/schema.ts";
import { FLAT_COLUMNS, type FlatRow, flattenEvent } from "../events/flatten.ts";
import { MicroBatch } from "./micro_batch.ts";
import { ParquetWriter } from "../zones/parquet_writer.ts";

/** DuckDB's DESCRIBE spells TIMESTAMPTZ out. */
function duckdbTypeName(t: string): string {
  return t === "TIMESTAMPTZ" ? "TIMESTAMP WITH TIME ZONE" : t;
}

Deno.test("NDJSON flat rows become typed zstd Parquet with nothing lost", async () => {
  const dir = await Deno.makeTempDir({ prefix: "logpipe-parquet-" });
  const writer = await ParquetWriter.create({ threads: 1 });
  try {
    const gen = createGenerator({
      seed: "parquet-test",
      startTime: Date.parse("2026-01-01T07:59:00Z"),
      rate: 50,
    });
    const b = new MicroBatch("LogEvents", 0, dir);
    const rows: FlatRow[] = [];
    let offset = 100;
    for (const rec of gen) {
      const res = validateEvent(recordBytes(rec));
      assert.ok(res.ok, "the generator without bad-rate makes valid events");
      const row = flattenEvent(res.event, {
        topic: "LogEvents",
        partition: 0,
        offset,
        timestamp: String(rec.ts),
      });
      b.addEvent(offset, 1, rec.ts, row.event_ts, JSON.stringify(row));
      rows.push(row);
      offset++;
      if (rows.length === 6_000) break; // two minutes of event time: hours 07 and 08
    }
    const groups = await b.finish();
    assert.equal(groups.length, 2);
    const inst = await DuckDBInstance.create(":memory:");
    const con = await inst.connect();
    let total = 0;
    for (const g of groups) {
      const out = `${g.path}.parquet`;
      assert.equal(await writer.convert(g.path, out), g.count);
      const meta = await con.runAndReadAll(
        `select distinct compression from parquet_metadata('${out}')`,
      );
      assert.deepEqual(meta.getRows().map((r) => r[0]), ["ZSTD"]);
      const hour = g.dir.slice(-2);
      const check = await con.runAndReadAll(
        `select count(*)::int, min(kafka_offset)::bigint, max(kafka_offset)::bigint,
                count(*) filter (where strftime(event_ts at time zone 'UTC', '%H') <> '${hour}')::int
           from '${out}'`,
      );
      const [n, lo, hi, wrongHour] = check.getRows()[0];
      assert.equal(n, g.count);
      assert.equal(Number(lo), g.firstOffset);
      assert.equal(Number(hi), g.lastOffset);
      assert.equal(wrongHour, 0);
      total += Number(n);
    }
    assert.equal(total, rows.length);
    // Column names and types are the contract's, in order.
    const out0 = `${groups[0].path}.parquet`;
    const desc = await con.runAndReadAll(`describe select * from '${out0}'`);
    assert.deepEqual(
      desc.getRows().map((r) => [r[0], r[1]]),
      FLAT_COLUMNS.map((c) => [c.name, duckdbTypeName(c.duckdbType)]),
    );
    // Values survive exactly (money to the cent, timestamps to the ms, JSON text).
    const all = groups.map((g) => `'${g.path}.parquet'`).join(", ");
    const back = await con.runAndReadAll(
      `select event_id, amount::varchar, strftime(event_ts at time zone 'UTC', '%Y-%m-%dT%H:%M:%S.%gZ'),
              details_json, kafka_offset::bigint
         from read_parquet([${all}]) order by kafka_offset`,
    );
    const got = back.getRows();
    assert.equal(got.length, rows.length);
    for (let i = 0; i < rows.length; i++) {
      const [id, amount, ts, details, off] = got[i];
      assert.equal(id, rows[i].event_id);
      assert.equal(amount === null ? null : Number(amount), rows[i].amount);
      assert.equal(ts, rows[i].event_ts);
      assert.deepEqual(
        JSON.parse(details as string),
        JSON.parse(rows[i].details_json),
      );
      assert.equal(Number(off), rows[i].kafka_offset);
    }
    con.closeSync();
    inst.closeSync();
  } finally {
    writer.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a large file of large rows converts within the writer's memory limit (row groups bounded in bytes)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "logpipe-parquet-big-" });
  // As the consumer creates it: one thread, a folder to spill to.
  const writer = await ParquetWriter.create({
    threads: 1,
    tempDirectory: `${dir}/duckdb`,
  });
  try {
    const gen = createGenerator({
      seed: "parquet-big",
      startTime: Date.parse("2026-01-01T07:00:00Z"),
      rate: 50,
    });
    // 8,000 rows of ~20 KB (167 MB of NDJSON): with row groups bounded in
    // rows only this runs out of DuckDB's memory limit; by bytes it streams.
    const pad = JSON.stringify({ pad: "x".repeat(20_000) });
    const lines: string[] = [];
    let offset = 0;
    for (const rec of gen) {
      const res = validateEvent(recordBytes(rec));
      assert.ok(res.ok);
      const row = flattenEvent(res.event, {
        topic: "LogEvents",
        partition: 0,
        offset,
        timestamp: String(rec.ts),
      });
      row.details_json = pad;
      lines.push(JSON.stringify(row));
      if (++offset === 8_000) break;
    }
    const path = `${dir}/big.ndjson`;
    await Deno.writeTextFile(path, lines.join("\n") + "\n");
    lines.length = 0;
    assert.equal(await writer.convert(path, `${path}.parquet`), 8_000);
  } finally {
    writer.close();
    await Deno.remove(dir, { recursive: true });
  }
});
