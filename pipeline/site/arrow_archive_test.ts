// The pieces under the drill-down loaders: the Arrow tables they emit (types
// as small as the values allow, nulls kept), the tar archive Framework
// unpacks, and reading only some columns of a Parquet file in the real HDFS.
import assert from "node:assert/strict";
import { DataType, tableFromIPC } from "apache-arrow";
import { DuckDBInstance } from "@duckdb/node-api";
import { loadConfig } from "../config.ts";
import { createWebHdfs } from "../clients/webhdfs.ts";
import { arrowFile, arrowTypeFor, tarArchive } from "./arrow_archive.ts";
import { fetchColumns, mergeRanges } from "./parquet_ranges.ts";

Deno.test("arrow: column types fit the values; values and nulls round-trip", () => {
  assert.ok(DataType.isInt(arrowTypeFor([1, 2, 127])));
  assert.equal(String(arrowTypeFor([1, -300])), "Int16");
  assert.equal(String(arrowTypeFor([1, 70_000])), "Int32");
  assert.equal(String(arrowTypeFor([1, 2 ** 40])), "Float64");
  assert.equal(String(arrowTypeFor([1.25, 2])), "Float64");
  assert.equal(
    String(arrowTypeFor(["DE", "US", null])),
    "Dictionary<Int8, Utf8>",
  );
  assert.equal(String(arrowTypeFor([true, null])), "Bool");
  const rows = [
    { day: "2026-04-01", country: "DE", n: 3, amount: 10.5, age: null },
    { day: "2026-04-02", country: "<img src=x>", n: 200, amount: 0.1, age: 41 },
  ];
  const back = tableFromIPC(arrowFile(rows));
  assert.equal(back.numRows, 2);
  assert.deepEqual(back.toArray().map((r) => r.toJSON()), rows);
  // An empty table keeps its columns.
  const empty = tableFromIPC(arrowFile([], ["day", "n"]));
  assert.deepEqual(empty.schema.fields.map((f) => f.name), ["day", "n"]);
});

Deno.test("tar: the archive unpacks with tar(1) to the same files", async () => {
  const dir = await Deno.makeTempDir({ prefix: "logpipe-tar-" });
  try {
    const big = new Uint8Array(1500).map((_, i) => i % 251);
    await Deno.writeFile(
      `${dir}/a.tar`,
      tarArchive([
        { name: "meta.json", bytes: new TextEncoder().encode('{"ok":1}') },
        { name: "sessions.arrow", bytes: big },
        { name: "empty.arrow", bytes: new Uint8Array() },
      ]),
    );
    const out = await new Deno.Command("tar", {
      args: ["-xf", `${dir}/a.tar`, "-C", dir],
    }).output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    assert.equal(await Deno.readTextFile(`${dir}/meta.json`), '{"ok":1}');
    assert.deepEqual(await Deno.readFile(`${dir}/sessions.arrow`), big);
    assert.equal((await Deno.stat(`${dir}/empty.arrow`)).size, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("mergeRanges joins overlapping and near ranges only", () => {
  assert.deepEqual(
    mergeRanges([[100, 200], [0, 50], [210, 300], [10_000, 10_100]], 20),
    [[0, 50], [100, 300], [10_000, 10_100]],
  );
});

Deno.test({
  name:
    "parquet in HDFS: only the wanted columns are transferred, and they read like the whole file",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const config = loadConfig();
    const hdfs = createWebHdfs(config);
    const root = `/logpipe-test/ranges_${crypto.randomUUID().slice(0, 8)}`;
    const dir = await Deno.makeTempDir({ prefix: "logpipe-ranges-" });
    const duck = await DuckDBInstance.create(":memory:");
    const conn = await duck.connect();
    try {
      // Two small columns and a large one nobody asks for, in 3 row groups.
      await conn.run(
        `copy (select i as id, 'q' || (i % 97) as query, md5(i::varchar) || md5((i + 1)::varchar) as pad
                 from range(150000) t(i))
           to '${dir}/full.parquet' (format parquet, compression zstd, row_group_size 50000)`,
      );
      const bytes = await Deno.readFile(`${dir}/full.parquet`);
      await hdfs.create(`${root}/full.parquet`, bytes, { overwrite: true });
      const stats = await fetchColumns(
        hdfs,
        conn,
        `${root}/full.parquet`,
        bytes.length,
        ["id", "query"],
        `${dir}/partial.parquet`,
      );
      assert.ok(
        stats.bytesRead < bytes.length / 3,
        `read ${stats.bytesRead} of ${bytes.length} bytes`,
      );
      const q = (file: string) =>
        conn.runAndReadAll(
          `select count(*)::int, sum(id)::double, count(distinct query)::int, min(query), max(query)
             from read_parquet('${dir}/${file}')`,
        ).then((r) => r.getRows());
      assert.deepEqual(await q("partial.parquet"), await q("full.parquet"));
      await assert.rejects(
        fetchColumns(
          hdfs,
          conn,
          `${root}/full.parquet`,
          bytes.length,
          ["nope"],
          `${dir}/x.parquet`,
        ),
        /no column nope/,
      );
    } finally {
      conn.closeSync();
      duck.closeSync();
      await hdfs.delete(root, { recursive: true }).catch(() => {});
      await Deno.remove(dir, { recursive: true });
    }
  },
});
