import assert from "node:assert/strict";
import {
  contentSecurityPolicy,
  inlineScriptHashes,
  resolveStatic,
  serveStatic,
} from "./static.ts";

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

Deno.test("resolveStatic: a symlink out of the root is refused", async () => {
  const root = await Deno.makeTempDir();
  const outside = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${outside}/secret.txt`, "password");
    await Deno.mkdir(`${outside}/folder`);
    await Deno.writeTextFile(`${outside}/folder/x.html`, "x");
    await Deno.writeTextFile(`${root}/inside.txt`, "fine");
    await Deno.symlink(`${outside}/secret.txt`, `${root}/leak.txt`);
    await Deno.symlink(`${outside}/folder`, `${root}/linked`);
    await Deno.symlink(`${root}/inside.txt`, `${root}/alias.txt`);
    assert.equal(await resolveStatic(root, "/leak.txt"), undefined);
    assert.equal(await resolveStatic(root, "/linked/x"), undefined);
    assert.equal(await resolveStatic(root, "/linked/x.html"), undefined);
    // A link that stays inside the root is fine.
    assert.equal(await resolveStatic(root, "/alias.txt"), `${root}/alias.txt`);
    const res = await serveStatic(
      root,
      new Request("http://x/leak.txt"),
      "/leak.txt",
    );
    assert.equal(res.status, 404);
    assert.doesNotMatch(await res.text(), /password/);
  } finally {
    await Deno.remove(root, { recursive: true });
    await Deno.remove(outside, { recursive: true });
  }
});

Deno.test("pages get a CSP with their inline scripts' hashes, never 'unsafe-inline' scripts", async () => {
  const root = await Deno.makeTempDir();
  try {
    const boot = `\nimport {define} from "./_observablehq/client.js";\n`;
    await Deno.writeTextFile(
      `${root}/page.html`,
      `<html><head><script type="module">${boot}</script>` +
        `<script type="module" src="./_npm/x.js"></script></head>` +
        `<body><script>{sidebar()}</script></body></html>`,
    );
    const expected = async (text: string) =>
      `sha256-${
        btoa(String.fromCharCode(
          ...new Uint8Array(
            await crypto.subtle.digest(
              "SHA-256",
              new TextEncoder().encode(text),
            ),
          ),
        ))
      }`;
    const hashes = await inlineScriptHashes(
      await Deno.readTextFile(`${root}/page.html`),
    );
    assert.deepEqual(hashes, [
      await expected(boot),
      await expected("{sidebar()}"),
    ]);
    const res = await serveStatic(root, new Request("http://x/page"), "/page");
    assert.equal(res.status, 200);
    await res.body?.cancel();
    const csp = res.headers.get("content-security-policy")!;
    const scriptSrc = csp.split("; ").find((d) => d.startsWith("script-src"))!;
    assert.equal(
      scriptSrc,
      `script-src 'self' '${hashes[0]}' '${hashes[1]}'`,
    );
    assert.doesNotMatch(scriptSrc, /unsafe/);
    assert.equal(csp, contentSecurityPolicy(hashes));
    // Everything else (JSON, scripts, data) allows no inline script at all.
    await Deno.writeTextFile(`${root}/data.json`, "{}");
    const data = await serveStatic(
      root,
      new Request("http://x/data.json"),
      "/data.json",
    );
    await data.body?.cancel();
    assert.match(
      data.headers.get("content-security-policy")!,
      /script-src 'self';/,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
