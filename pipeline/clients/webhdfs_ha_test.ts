// The WebHDFS client with several NameNodes and over HTTPS, against the
// real local HDFS. The other "NameNodes" are what a client meets in an HA
// pair: an address where nothing listens (a NameNode that is down), a
// server answering exactly what a standby NameNode answers (HTTP 403 with
// a StandbyException RemoteException), and the real NameNode behind an
// HTTPS front with a self-signed certificate (LOGPIPE_WEBHDFS_CA).
import assert from "node:assert/strict";
import { loadConfig } from "../config.ts";
import { createTestEnv } from "../testing/env.ts";
import { portIsFree } from "../services/process.ts";
import { createWebHdfs, WebHdfs, WebHdfsError } from "./webhdfs.ts";

/** Hadoop 3's answer to a client of a standby NameNode (status and body). */
const STANDBY_BODY = JSON.stringify({
  RemoteException: {
    exception: "StandbyException",
    javaClassName: "org.apache.hadoop.ipc.StandbyException",
    message:
      "Operation category READ is not supported in state standby. Visit https://s.apache.org/sbnn-error",
  },
});

function freePort(): number {
  for (let p = 21_000 + Math.floor(Math.random() * 2000); p < 24_000; p++) {
    if (portIsFree(p)) return p;
  }
  throw new Error("no free port");
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const out = await new Deno.Command("openssl", {
    args,
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
}

Deno.test({
  name:
    "WebHDFS with several NameNodes: fails over past a dead one and a standby, sticks to the active one, reports a standby-only list; HTTPS checked against the configured CA",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const env = await createTestEnv("webhdfs_ha", { noTopic: true });
    const real = env.config.hdfs.webhdfsUrl;
    const dead = `http://127.0.0.1:${freePort()}`;
    let standbyHits = 0;
    const standby = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      () => {
        standbyHits++;
        return new Response(STANDBY_BODY, {
          status: 403,
          headers: { "content-type": "application/json" },
        });
      },
    );
    const standbyUrl = `http://127.0.0.1:${standby.addr.port}`;
    const dir = await Deno.makeTempDir({ prefix: "logpipe-webhdfs-tls-" });
    let https: Deno.HttpServer<Deno.NetAddr> | undefined;
    try {
      const root = env.config.hdfs.root;
      const user = env.config.hdfs.user;

      await t.step(
        "a dead NameNode first: the call goes to the next, and stays there",
        async () => {
          const hdfs = new WebHdfs({ url: [dead, real], user });
          await hdfs.mkdirs(`${root}/ha`);
          await hdfs.create(`${root}/ha/a.txt`, "written past a dead NameNode");
          assert.equal(hdfs.base, real);
          assert.equal(
            await hdfs.readText(`${root}/ha/a.txt`),
            "written past a dead NameNode",
          );
        },
      );

      await t.step(
        "a standby first: StandbyException moves the call on",
        async () => {
          const hdfs = new WebHdfs({ url: [standbyUrl, dead, real], user });
          const before = standbyHits;
          assert.equal((await hdfs.stat(`${root}/ha/a.txt`))?.length, 28);
          assert.equal(standbyHits, before + 1);
          assert.equal(hdfs.base, real);
          // Sticky: the next calls go to the active NameNode directly.
          await hdfs.create(`${root}/ha/b.txt`, "b");
          assert.deepEqual(
            (await hdfs.listStatus(`${root}/ha`)).map((s) => s.pathSuffix)
              .sort(),
            ["a.txt", "b.txt"],
          );
          assert.equal(standbyHits, before + 1);
        },
      );

      await t.step(
        "only standbys and dead ones: the error says so",
        async () => {
          const hdfs = new WebHdfs({ url: [standbyUrl, dead], user });
          const err = await hdfs.stat(`${root}/ha/a.txt`).catch((e) => e);
          assert.ok(err instanceof WebHdfsError, String(err));
          assert.equal(err.status, 0, "the last one tried was the dead one");
          const standbyOnly = new WebHdfs({ url: [dead, standbyUrl], user });
          const err2 = await standbyOnly.stat(`${root}/ha/a.txt`).catch((e) =>
            e
          );
          assert.ok(err2 instanceof WebHdfsError);
          assert.equal(err2.exception, "StandbyException");
        },
      );

      await t.step("LOGPIPE_WEBHDFS_URL takes the list", async () => {
        const config = loadConfig({
          ...env.env,
          LOGPIPE_WEBHDFS_URL: `${standbyUrl}, ${real}/`,
        });
        assert.deepEqual(config.hdfs.webhdfsUrls, [standbyUrl, real]);
        const hdfs = createWebHdfs(config);
        assert.equal(await hdfs.readText(`${root}/ha/b.txt`), "b");
      });

      await t.step(
        "HTTPS: trusted with LOGPIPE_WEBHDFS_CA, refused without",
        async () => {
          // A CA, and the NameNode's certificate signed by it (as a cluster
          // has them; a self-signed leaf cannot be a trust anchor here).
          await openssl([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=logpipe test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
          ], dir);
          await openssl([
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=namenode",
            "-keyout",
            "nn.key",
            "-out",
            "nn.csr",
          ], dir);
          Deno.writeTextFileSync(
            `${dir}/nn.ext`,
            "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\n",
          );
          await openssl([
            "x509",
            "-req",
            "-in",
            "nn.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "nn.ext",
            "-out",
            "nn.crt",
          ], dir);
          // The real NameNode behind an HTTPS front (its redirects to the
          // DataNode pass through unchanged).
          https = Deno.serve({
            hostname: "127.0.0.1",
            port: 0,
            cert: Deno.readTextFileSync(`${dir}/nn.crt`),
            key: Deno.readTextFileSync(`${dir}/nn.key`),
            onListen: () => {},
          }, async (req) => {
            const u = new URL(req.url);
            const res = await fetch(`${real}${u.pathname}${u.search}`, {
              method: req.method,
              body: req.body,
              redirect: "manual",
            });
            return new Response(res.body, {
              status: res.status,
              headers: res.headers,
            });
          });
          const httpsUrl = `https://127.0.0.1:${https.addr.port}`;
          const trusted = createWebHdfs(
            loadConfig({
              ...env.env,
              LOGPIPE_WEBHDFS_URL: httpsUrl,
              LOGPIPE_WEBHDFS_CA: `${dir}/ca.crt`,
            }),
          );
          await trusted.create(`${root}/ha/tls.txt`, "over https");
          assert.equal(
            await trusted.readText(`${root}/ha/tls.txt`),
            "over https",
          );
          const untrusted = new WebHdfs({ url: httpsUrl, user });
          const err = await untrusted.stat(`${root}/ha/tls.txt`).catch((e) =>
            e
          );
          assert.ok(err instanceof WebHdfsError, String(err));
          assert.match(err.message, /UnknownIssuer|certificate/i);
          assert.throws(
            () =>
              loadConfig({
                ...env.env,
                LOGPIPE_WEBHDFS_CA: `${dir}/missing.crt`,
              }),
            /LOGPIPE_WEBHDFS_CA is not a readable file/,
          );
        },
      );
    } finally {
      await standby.shutdown();
      await https?.shutdown();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      await env.cleanup();
    }
  },
});
