import assert from "node:assert/strict";
import { resolveStatic, serveStatic } from "./static.ts";

Deno.test("resolveStatic: clean URLs, index, and no escape from the root", async () => {
  const root = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${root}/index.html`, "home");
    await Deno.writeTextFile(`${root}/realtime.html`, "rt");
    await Deno.mkdir(`${root}/_file`);
    await Deno.writeTextFile(`${root}/_file/a.json`, "{}");
    await Deno.mkdir(`${root}/.observablehq`);
    await Deno.writeTextFile(`${root}/.observablehq/secret`, "x");
    assert.equal(await resolveStatic(root, "/"), `${root}/index.html`);
    assert.equal(
      await resolveStatic(root, "/realtime"),
      `${root}/realtime.html`,
    );
    assert.equal(
      await resolveStatic(root, "/_file/a.json"),
      `${root}/_file/a.json`,
    );
    assert.equal(await resolveStatic(root, "/../etc/passwd"), undefined);
    assert.equal(
      await resolveStatic(root, "/%2e%2e/%2e%2e/etc/passwd"),
      undefined,
    );
    assert.equal(await resolveStatic(root, "/.observablehq/secret"), undefined);
    assert.equal(await resolveStatic(root, "/%ZZ"), undefined);
    assert.equal(await resolveStatic(root, "/missing"), undefined);
    const res = await serveStatic(
      root,
      new Request("http://x/realtime"),
      "/realtime",
    );
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "text/html; charset=utf-8");
    assert.match(
      res.headers.get("content-security-policy")!,
      /connect-src 'self'/,
    );
    assert.equal(await res.text(), "rt");
    const miss = await serveStatic(root, new Request("http://x/nope"), "/nope");
    assert.equal(miss.status, 404);
    await miss.body?.cancel();
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
