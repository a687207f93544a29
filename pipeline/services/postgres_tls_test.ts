/**
 * LOGPIPE_POSTGRES_LISTEN / _ALLOW / _TLS and the BI role's limits, on a
 * throwaway PostgreSQL cluster of this test's own (own LOGPIPE_HOME, own
 * port), never the shared one: the listen address and pg_hba.conf need
 * restarts, and the BI role's settings are cluster-wide.
 *
 * Reaching the cluster "from another host" uses this machine's own
 * non-loopback address: a connection to it comes from it, so it matches the
 * ALLOW rule and not the loopback one. Without such an address the network
 * steps are skipped (and say so); the BI role steps always run.
 */
import assert from "node:assert/strict";
import { ConfigError, loadConfig, parsePostgresServer } from "../config.ts";
import { withConnection } from "../clients/postgres.ts";
import { migrate } from "../postgres/migrate.ts";
import { BI_ROLE_STATE_SQL } from "../postgres/bi_role.ts";
import {
  bootstrapRoles,
  pgDirs,
  startPostgres,
  stopPostgres,
  superuserSql,
} from "./postgres.ts";

Deno.test("LOGPIPE_POSTGRES_LISTEN / _ALLOW are refused unless TLS is on; CIDRs are checked", () => {
  assert.throws(
    () => parsePostgresServer("0.0.0.0", undefined, undefined),
    (e) =>
      e instanceof ConfigError && /LOGPIPE_POSTGRES_TLS=on/.test(e.message),
  );
  assert.throws(
    () => parsePostgresServer(undefined, "10.0.0.0/8", "off"),
    ConfigError,
  );
  assert.throws(
    () => parsePostgresServer("0.0.0.0", "10.0.0.0/33", "on"),
    /not a CIDR/,
  );
  assert.throws(() => parsePostgresServer("a b", "", "on"), /not an IP/);
  assert.throws(() => parsePostgresServer("", "", "yes"), /on or off/);
  // Loopback alone needs no TLS.
  assert.deepEqual(parsePostgresServer("127.0.0.1,localhost", "", undefined), {
    listen: ["127.0.0.1", "localhost"],
    allow: [],
    tls: false,
  });
  assert.deepEqual(
    parsePostgresServer("0.0.0.0", "172.16.0.0/12, fd00::/8", "on"),
    {
      listen: ["127.0.0.1", "0.0.0.0"],
      allow: ["172.16.0.0/12", "fd00::/8"],
      tls: true,
    },
  );
});

/** A free TCP port offset from the defaults (only Postgres is started). */
function freeOffset(): number {
  for (let tries = 0; tries < 50; tries++) {
    const offset = 3000 + Math.floor(Math.random() * 4000);
    try {
      Deno.listen({ hostname: "127.0.0.1", port: 5433 + offset }).close();
      return offset;
    } catch { /* taken: try another */ }
  }
  throw new Error("no free port for the test's own Postgres");
}

/** psql with a connection string; never throws: ok, and what it printed. */
async function psql(
  conninfo: string,
  password: string,
  sql = "select 1",
): Promise<{ ok: boolean; out: string }> {
  const res = await new Deno.Command("psql", {
    args: ["-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql, conninfo],
    env: { PGPASSWORD: password, PGCONNECT_TIMEOUT: "5" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return {
    ok: res.success,
    out: (dec.decode(res.stdout) + dec.decode(res.stderr)).trim(),
  };
}

const HOSTILE_PASSWORD = `it's "quoted"; $$ drop role x; $$ \\ end`;

Deno.test({
  name:
    "own Postgres: TLS with a self-signed certificate (mode 600), hostssl + scram-sha-256 only for LOGPIPE_POSTGRES_ALLOW, plain text refused; BI role limits and password in local, docker-compose and external mode",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const home = await Deno.makeTempDir({
      dir: "/tmp",
      prefix: "logpipe-tls-",
    });
    // The server runs as the postgres OS user when we are root: let it in.
    await Deno.chmod(home, 0o755);
    await Deno.mkdir(`${home}/logs`); // as `services up` makes it
    const nic = Deno.networkInterfaces().find((n) =>
      n.family === "IPv4" && !n.address.startsWith("127.")
    );
    const base: Record<string, string> = {
      LOGPIPE_HOME: home,
      LOGPIPE_PORT_OFFSET: String(freeOffset()),
      LOGPIPE_POSTGRES_TLS: "on",
      LOGPIPE_BI_PASSWORD: HOSTILE_PASSWORD,
      LOGPIPE_BI_STATEMENT_TIMEOUT_S: "1",
      LOGPIPE_BI_CONNECTION_LIMIT: "2",
      ...(nic
        ? {
          LOGPIPE_POSTGRES_LISTEN: nic.address,
          LOGPIPE_POSTGRES_ALLOW: `${nic.address}/32`,
        }
        : {}),
    };
    let config = loadConfig(base);
    const port = config.ports.postgres;
    try {
      await startPostgres(config);
      await bootstrapRoles(config);
      config = loadConfig(base); // the owner password now exists
      await migrate(config);
      const d = pgDirs(config);
      const ownerPassword = Deno.readTextFileSync(d.ownerPasswordFile).trim();

      await t.step(
        "certificate and key: generated once, mode 600 in a mode-700 folder, owned by the server user",
        async () => {
          assert.equal(Deno.statSync(d.tls).mode! & 0o777, 0o700);
          for (const f of [d.tlsKey, d.tlsCert]) {
            const st = Deno.statSync(f);
            assert.equal(st.mode! & 0o777, 0o600, f);
            if (Deno.uid() === 0) {
              assert.notEqual(st.uid, 0, `${f} owned by root`);
            }
          }
          const san = await new Deno.Command("openssl", {
            args: [
              "x509",
              "-noout",
              "-ext",
              "subjectAltName",
              "-in",
              d.tlsCert,
            ],
            stdout: "piped",
          }).output();
          const text = new TextDecoder().decode(san.stdout);
          assert.match(text, /DNS:localhost/);
          assert.match(text, /IP Address:127\.0\.0\.1/);
          if (nic) assert.ok(text.includes(`IP Address:${nic.address}`), text);
        },
      );

      await t.step(
        "loopback stays as before: password login without TLS",
        async () => {
          const r = await psql(
            `host=127.0.0.1 port=${port} dbname=logpipe user=logpipe sslmode=disable`,
            ownerPassword,
            "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
          );
          assert.ok(r.ok, r.out);
          assert.equal(r.out, "f");
        },
      );

      await t.step(
        "every remote rule is hostssl + scram-sha-256, and passwords are SCRAM",
        async () => {
          const rules = (await superuserSql(
            config,
            "select type || ' ' || coalesce(address, '') || ' ' || auth_method from pg_hba_file_rules where type <> 'local' order by line_number",
          )).trim().split("\n");
          assert.equal(rules[0], "host 127.0.0.1 scram-sha-256");
          assert.deepEqual(
            rules.slice(1),
            config.postgres.server.allow.map((c) =>
              `hostssl ${c.split("/")[0]} scram-sha-256`
            ),
          );
          const scram = await superuserSql(
            config,
            "select bool_and(rolpassword like 'SCRAM-SHA-256$%') from pg_authid where rolname in ('logpipe', 'logpipe_bi')",
          );
          assert.equal(scram.trim(), "t");
        },
      );

      if (nic) {
        const remote =
          `host=${nic.address} port=${port} dbname=logpipe user=logpipe_bi`;
        await t.step(
          `from ${nic.address} (allowed): TLS accepted and verified against the certificate, plain text refused`,
          async () => {
            const tls = await psql(
              `${remote} sslmode=require`,
              HOSTILE_PASSWORD,
              "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
            );
            assert.ok(tls.ok, tls.out);
            assert.equal(tls.out, "t");
            const verified = await psql(
              `${remote} sslmode=verify-full sslrootcert=${d.tlsCert}`,
              HOSTILE_PASSWORD,
            );
            assert.ok(verified.ok, verified.out);
            const plain = await psql(
              `${remote} sslmode=disable`,
              HOSTILE_PASSWORD,
            );
            assert.equal(plain.ok, false);
            assert.match(plain.out, /no pg_hba\.conf entry .*no encryption/);
          },
        );

        await t.step(
          "restarted without LOGPIPE_POSTGRES_ALLOW: the same TLS login is refused (pg_hba.conf follows the configuration)",
          async () => {
            await stopPostgres(config);
            const closed = loadConfig({ ...base, LOGPIPE_POSTGRES_ALLOW: "" });
            await startPostgres(closed);
            const r = await psql(`${remote} sslmode=require`, HOSTILE_PASSWORD);
            assert.equal(r.ok, false);
            assert.match(r.out, /no pg_hba\.conf entry/);
            await stopPostgres(closed);
            await startPostgres(config);
          },
        );
      } else {
        console.log(
          "no non-loopback IPv4 address on this machine: the remote TLS steps are skipped",
        );
      }

      const biUrl = (
        password: string,
        database = "logpipe",
        user = "logpipe_bi",
      ) => {
        const u = new URL(`postgres://127.0.0.1:${port}/${database}`);
        u.username = user;
        u.password = password;
        return u.toString();
      };

      await t.step(
        "BI role: connection limit, statement_timeout and read-only default set; a password full of quotes works",
        async () => {
          const [state] = await withConnection(
            config.postgres.url,
            async (c) =>
              (await c.query(BI_ROLE_STATE_SQL, ["logpipe_bi"])).rows,
          );
          assert.equal(state.rolconnlimit, 2);
          assert.equal(state.rolcreatedb, false);
          assert.equal(state.rolcreaterole, false);
          assert.deepEqual([...state.setconfig].sort(), [
            "default_transaction_read_only=on",
            "statement_timeout=1s",
          ]);
          await withConnection(biUrl(HOSTILE_PASSWORD), async (c) => {
            const ro = await c.query("show default_transaction_read_only");
            assert.equal(ro.rows[0].default_transaction_read_only, "on");
            await assert.rejects(
              c.query("select pg_sleep(3)"),
              (e: { code?: string }) => e.code === "57014",
            );
            await assert.rejects(
              c.query("create temporary table t (x int)"),
              (e: { code?: string }) => e.code === "25006", // read-only transaction
            );
            // Even in a read-write transaction: no TEMP (PUBLIC's is revoked).
            await c.query("begin read write");
            await assert.rejects(
              c.query("create temporary table t (x int)"),
              (e: { code?: string }) => e.code === "42501",
            );
            await c.query("rollback");
            // Two sessions allowed, the third refused.
            await withConnection(biUrl(HOSTILE_PASSWORD), async () => {
              await assert.rejects(
                withConnection(
                  biUrl(HOSTILE_PASSWORD),
                  () => Promise.resolve(),
                ),
                /too many connections for role/,
              );
            });
          });
        },
      );

      await t.step(
        "BI role: an existing role's password follows LOGPIPE_BI_PASSWORD",
        async () => {
          const next = { ...base, LOGPIPE_BI_PASSWORD: "second-password-1" };
          await bootstrapRoles(loadConfig(next));
          await assert.rejects(
            withConnection(biUrl(HOSTILE_PASSWORD), () => Promise.resolve()),
            /password authentication failed/,
          );
          await withConnection(
            biUrl("second-password-1"),
            () => Promise.resolve(),
          );
        },
      );

      await t.step(
        "docker-compose's owner may not manage roles: migrate applies the BI password and limits through the init script's logpipe_admin.apply_bi_role()",
        async () => {
          const script = Deno.readTextFileSync(
            new URL("../../docker/postgres-init.sh", import.meta.url),
          );
          const fn = /-- logpipe_admin: begin\n([\s\S]*?)-- logpipe_admin: end/
            .exec(script)?.[1];
          assert.ok(fn, "the init script defines logpipe_admin");
          // This instance's owner `logpipe` has no CREATEROLE, like compose's.
          await superuserSql(
            config,
            `alter role logpipe_bi reset all;
             alter role logpipe_bi connection limit -1;
             ${fn}`,
            "logpipe",
          );
          await migrate(
            loadConfig({ ...base, LOGPIPE_BI_PASSWORD: "via-admin-function" }),
          );
          const [state] = await withConnection(
            config.postgres.url,
            async (c) =>
              (await c.query(BI_ROLE_STATE_SQL, ["logpipe_bi"])).rows,
          );
          assert.equal(state.rolconnlimit, 2);
          assert.deepEqual([...state.setconfig].sort(), [
            "default_transaction_read_only=on",
            "statement_timeout=1s",
          ]);
          await withConnection(
            biUrl("via-admin-function"),
            () => Promise.resolve(),
          );
          // Only the owner may call it.
          const denied = await superuserSql(
            config,
            "select has_function_privilege('logpipe_bi', 'logpipe_admin.apply_bi_role(text,text,integer)', 'execute')",
            "logpipe",
          );
          assert.equal(denied.trim(), "f");
        },
      );

      await t.step(
        "external mode: an owner with CREATEROLE creates the BI role with its limits, re-keys it, and PUBLIC loses CONNECT/TEMP",
        async () => {
          await superuserSql(
            config,
            `create role compose_owner login createrole createdb password 'compose-owner-pw';
           create database compose_db owner compose_owner;`,
          );
          const compose = {
            ...base,
            LOGPIPE_DATABASE_URL:
              `postgres://compose_owner:compose-owner-pw@127.0.0.1:${port}/compose_db`,
            LOGPIPE_BI_USER: "compose_bi",
            LOGPIPE_BI_PASSWORD: "compose-bi-1",
          };
          await migrate(loadConfig(compose));
          const [state] = await withConnection(
            config.postgres.url,
            async (c) =>
              (await c.query(BI_ROLE_STATE_SQL, ["compose_bi"])).rows,
          );
          assert.ok(state, "compose_bi created");
          assert.equal(state.rolconnlimit, 2);
          assert.ok(
            state.setconfig.includes("default_transaction_read_only=on"),
          );
          const publicPrivs = await superuserSql(
            config,
            "select has_database_privilege('public', 'compose_db', 'CONNECT') or has_database_privilege('public', 'compose_db', 'TEMP')",
          );
          assert.equal(publicPrivs.trim(), "f");
          await withConnection(
            biUrl("compose-bi-1", "compose_db", "compose_bi"),
            () => Promise.resolve(),
          );
          // Another login role of the cluster no longer gets in through PUBLIC.
          await assert.rejects(
            withConnection(
              biUrl("via-admin-function", "compose_db"),
              () => Promise.resolve(),
            ),
            /permission denied for database/,
          );
          await migrate(
            loadConfig({ ...compose, LOGPIPE_BI_PASSWORD: "compose-bi-2" }),
          );
          await assert.rejects(
            withConnection(
              biUrl("compose-bi-1", "compose_db", "compose_bi"),
              () => Promise.resolve(),
            ),
            /password authentication failed/,
          );
          await withConnection(
            biUrl("compose-bi-2", "compose_db", "compose_bi"),
            () => Promise.resolve(),
          );
        },
      );
    } finally {
      await stopPostgres(config).catch((e) => console.error(e));
      await Deno.remove(home, { recursive: true });
    }
  },
});
