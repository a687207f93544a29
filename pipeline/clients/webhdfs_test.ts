// The WebHDFS client against the real local HDFS (NameNode + DataNode).
import assert from "node:assert/strict";
import { createTestEnv } from "../testing/env.ts";
import { createWebHdfs, WebHdfsError } from "./webhdfs.ts";

Deno.test("WebHDFS: create, append, overwrite, list, rename, read, delete", async () => {
  const t = await createTestEnv("webhdfs_ops", { noTopic: true });
  const hdfs = createWebHdfs(t.config);
  const dir = `${t.config.hdfs.root}/ops`;
  try {
    assert.ok(await hdfs.mkdirs(dir));
    await hdfs.create(`${dir}/a.txt`, "hello ");
    await hdfs.append(`${dir}/a.txt`, "world");
    assert.equal(await hdfs.readText(`${dir}/a.txt`), "hello world");

    // Without overwrite an existing file is refused; with it, replaced.
    await assert.rejects(() => hdfs.create(`${dir}/a.txt`, "x"), WebHdfsError);
    await hdfs.create(`${dir}/a.txt`, "replaced", { overwrite: true });
    assert.equal(await hdfs.readText(`${dir}/a.txt`), "replaced");

    // Rename is atomic and never overwrites: the commit step relies on it.
    await hdfs.create(`${dir}/b.txt`, "b");
    assert.equal(await hdfs.rename(`${dir}/a.txt`, `${dir}/b.txt`), false);
    assert.equal(await hdfs.rename(`${dir}/a.txt`, `${dir}/c.txt`), true);
    const names = (await hdfs.listStatus(dir)).map((s) => s.pathSuffix).sort();
    assert.deepEqual(names, ["b.txt", "c.txt"]);
    const c = (await hdfs.stat(`${dir}/c.txt`))!;
    assert.equal(c.type, "FILE");
    assert.equal(c.length, "replaced".length);

    assert.equal(await hdfs.delete(`${dir}/c.txt`), true);
    assert.equal(await hdfs.delete(`${dir}/c.txt`), false);
    assert.equal(await hdfs.exists(`${dir}/c.txt`), false);
    assert.deepEqual(await hdfs.listOrEmpty(`${dir}/missing`), []);
    const err = await hdfs.read(`${dir}/missing.txt`).catch((e) => e);
    assert.ok(err instanceof WebHdfsError && err.notFound, String(err));
  } finally {
    await t.cleanup();
  }
});

Deno.test("WebHDFS: a 50 MB file round-trips byte-identical", async () => {
  const t = await createTestEnv("webhdfs_big", { noTopic: true });
  const hdfs = createWebHdfs(t.config, { timeoutMs: 120_000 });
  try {
    const size = 50 * 1024 * 1024;
    const data = new Uint8Array(size);
    // Random bytes (crypto allows 64 KiB per call), so compression or
    // truncation anywhere would show.
    for (let o = 0; o < size; o += 65_536) {
      crypto.getRandomValues(data.subarray(o, Math.min(o + 65_536, size)));
    }
    const path = `${t.config.hdfs.root}/big/blob.bin`;
    await hdfs.create(path, data);
    assert.equal((await hdfs.stat(path))!.length, size);
    const back = new Uint8Array(await hdfs.read(path));
    assert.equal(back.length, size);
    const digest = async (b: Uint8Array<ArrayBuffer>) =>
      new Uint8Array(await crypto.subtle.digest("SHA-256", b)).join(",");
    assert.equal(await digest(back), await digest(data));
  } finally {
    await t.cleanup();
  }
});
