// LOGPIPE_POSTGRES_SSLMODE / _SSLROOTCERT against a real PostgreSQL of the
// test's own with TLS on (LOGPIPE_POSTGRES_TLS=on: a self-signed
// certificate): logpipe's connections (withConnection, createPool) read
// sslmode with libpq's meaning, psql reads the same URL, and the settings
// that would give a false sense of safety are refused.
import assert from "node:assert/strict";
import { ConfigError, DEFAULT_PORTS, loadConfig } from "../config.ts";
import { createPool, pgConnectionString, withConnection } from "./postgres.ts";
import {
  bootstrapRoles,
  pgBinDir,
  pgDirs,
  startPostgres,
  stopPostgres,
} from "../services/postgres.ts";
import { portIsFree } from "../services/process.ts";

function freeOffset(): number {
  for (let tries = 0; tries < 50; tries++) {
    const offset = 3000 + Math.floor(Math.random() * 4000);
    if (portIsFree(DEFAULT_PORTS.postgres + offset)) return offset;
  }
  throw new Error("no free port for the test's own Postgres");
}

const SSL_OF_SESSION =
  "select ssl from pg_stat_ssl where pid = pg_backend_pid()";

Deno.test({
  name:
    "Postgres sslmode with libpq's meaning: disable, require (no check), verify-ca / verify-full against the CA; an untrusted or wrong CA is refused; psql reads the same URL",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const home = await Deno.makeTempDir({
      dir: "/tmp",
      prefix: "logpipe-pgssl-",
    });
    // The server runs as the postgres OS user when we are root.
    await Deno.chmod(home, 0o755);
    await Deno.mkdir(`${home}/logs`);
    const base: Record<string, string> = {
      LOGPIPE_HOME: home,
      LOGPIPE_PORT_OFFSET: String(freeOffset()),
      LOGPIPE_POSTGRES_TLS: "on",
    };
    let config = loadConfig(base);
    try {
      await startPostgres(config);
      await bootstrapRoles(config);
      config = loadConfig(base);
      const cert = pgDirs(config).tlsCert;
      // A CA that did not sign the server's certificate.
      const other = `${home}/other-ca.crt`;
      const made = await new Deno.Command("openssl", {
        args: [
          "req",
          "-x509",
          "-newkey",
          "rsa:2048",
          "-nodes",
          "-days",
          "1",
          "-subj",
          "/CN=other CA",
          "-keyout",
          `${home}/other-ca.key`,
          "-out",
          other,
        ],
        stdout: "null",
        stderr: "null",
      }).output();
      assert.ok(made.success);

      const withMode = (mode: string | undefined, root?: string) =>
        loadConfig({
          ...base,
          ...(mode ? { LOGPIPE_POSTGRES_SSLMODE: mode } : {}),
          ...(root ? { LOGPIPE_POSTGRES_SSLROOTCERT: root } : {}),
        });
      const sessionSsl = async (url: string) =>
        await withConnection(url, async (c) => {
          const r = await c.query(SSL_OF_SESSION);
          return r.rows[0].ssl as boolean;
        });

      await t.step("no sslmode, disable: plain text", async () => {
        assert.equal(await sessionSsl(withMode(undefined).postgres.url), false);
        const c = withMode("disable");
        assert.equal(c.postgres.sslMode, "disable");
        assert.equal(await sessionSsl(c.postgres.url), false);
      });
      await t.step(
        "require: encrypted, the certificate not checked (libpq's require)",
        async () => {
          const c = withMode("require");
          assert.match(c.postgres.url, /sslmode=require/);
          assert.match(
            pgConnectionString(c.postgres.url),
            /uselibpqcompat=true/,
          );
          assert.equal(await sessionSsl(c.postgres.url), true);
          // The pool path too.
          const pool = createPool(c, { max: 1 });
          try {
            assert.equal((await pool.query(SSL_OF_SESSION)).rows[0].ssl, true);
          } finally {
            await pool.end();
          }
        },
      );
      await t.step(
        "verify-full and verify-ca with the server's CA",
        async () => {
          assert.equal(
            await sessionSsl(withMode("verify-full", cert).postgres.url),
            true,
          );
          assert.equal(
            await sessionSsl(withMode("verify-ca", cert).postgres.url),
            true,
          );
        },
      );
      await t.step(
        "refused: verify-full without the CA, or with another CA",
        async () => {
          await assert.rejects(
            () => sessionSsl(withMode("verify-full").postgres.url),
            /self.signed|certificate|unable to verify|UnknownIssuer/i,
          );
          await assert.rejects(
            () => sessionSsl(withMode("verify-full", other).postgres.url),
          );
          await assert.rejects(
            () => sessionSsl(withMode("verify-ca", other).postgres.url),
          );
        },
      );
      await t.step(
        "psql reads the same URL (libpq's own sslmode)",
        async () => {
          const c = withMode("verify-full", cert);
          const url = new URL(c.postgres.url);
          const password = decodeURIComponent(url.password);
          url.password = "";
          const out = await new Deno.Command(`${pgBinDir()}/psql`, {
            args: [url.toString(), "-XAtc", SSL_OF_SESSION],
            env: { PGPASSWORD: password },
            stdout: "piped",
            stderr: "piped",
          }).output();
          const dec = new TextDecoder();
          assert.ok(out.success, dec.decode(out.stderr));
          assert.equal(dec.decode(out.stdout).trim(), "t");
        },
      );
      await t.step(
        "the URL's own sslmode counts; settings that disagree or verify-ca without a CA are refused",
        () => {
          const external = loadConfig({
            ...base,
            LOGPIPE_DATABASE_URL:
              `postgres://u:p@db.example:5432/x?sslmode=verify-full&sslrootcert=${cert}`,
          });
          assert.equal(external.postgres.sslMode, "verify-full");
          assert.equal(external.postgres.sslRootCert, cert);
          assert.throws(
            () =>
              loadConfig({
                ...base,
                LOGPIPE_DATABASE_URL:
                  "postgres://u:p@db.example:5432/x?sslmode=require",
                LOGPIPE_POSTGRES_SSLMODE: "disable",
              }),
            (e: unknown) =>
              e instanceof ConfigError && /disagree/.test(e.message),
          );
          assert.throws(
            () => withMode("verify-ca"),
            /verify-ca needs LOGPIPE_POSTGRES_SSLROOTCERT/,
          );
          assert.throws(() => withMode("allow"), /must be disable or prefer/);
          assert.throws(
            () => withMode("require", `${home}/missing.crt`),
            /not a readable file/,
          );
        },
      );
    } finally {
      await stopPostgres(config).catch((e) => console.error(e));
      await Deno.remove(home, { recursive: true });
    }
  },
});
