/**
 * A private PostgreSQL cluster from the installed Debian binaries: its own
 * data folder and port, listening on 127.0.0.1 only unless
 * LOGPIPE_POSTGRES_LISTEN / _ALLOW open it to other hosts, which config.ts
 * allows only with LOGPIPE_POSTGRES_TLS=on: remote logins are then `hostssl`
 * + scram-sha-256 only, with a self-signed certificate generated on the first
 * start with TLS. The network settings (listen addresses, TLS, pg_hba.conf)
 * are rewritten from the configuration on every start.
 *
 * Postgres refuses to run as root, so when we are root every server command
 * runs as the unprivileged `postgres` OS user. Passwords are generated on
 * first start and kept in the git-ignored state folder (mode 600), never in
 * the repository.
 */
import type { Config } from "../config.ts";
import { BI_ROLE_SQL, biRoleSettings } from "../postgres/bi_role.ts";
import { logFile, servicePaths, writePrivateFile } from "./paths.ts";
import { isAlive, processStartedAtMs, waitForExit } from "./process.ts";

const OS_USER = "postgres";

/** Folder of the Debian server binaries (initdb, pg_ctl, postgres). */
export function pgBinDir(): string {
  for (const v of ["17", "16", "15"]) {
    try {
      Deno.statSync(`/usr/lib/postgresql/${v}/bin/pg_ctl`);
      return `/usr/lib/postgresql/${v}/bin`;
    } catch { /* try the next */ }
  }
  throw new Error(
    "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin (install postgresql-15)",
  );
}

const isRoot = () => Deno.uid() === 0;

async function run(
  cmd: string[],
  opts: {
    asServerUser?: boolean;
    stdin?: string;
    env?: Record<string, string>;
  } = {},
): Promise<{ ok: boolean; out: string }> {
  const full = opts.asServerUser && isRoot()
    ? [
      "setpriv",
      `--reuid=${OS_USER}`,
      `--regid=${OS_USER}`,
      "--init-groups",
      ...cmd,
    ]
    : cmd;
  const child = new Deno.Command(full[0], {
    args: full.slice(1),
    stdin: opts.stdin !== undefined ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
    env: { HOME: "/tmp", LC_ALL: "C.UTF-8", ...opts.env },
  }).spawn();
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(opts.stdin));
    await w.close();
  }
  const res = await child.output();
  const dec = new TextDecoder();
  return {
    ok: res.success,
    out: dec.decode(res.stdout) + dec.decode(res.stderr),
  };
}

export function pgDirs(config: Pick<Config, "localDir">) {
  const dir = servicePaths(config).postgres.dir;
  return {
    dir,
    data: `${dir}/data`,
    socket: `${dir}/socket`,
    ownerPasswordFile: `${dir}/logpipe.password`,
    biPasswordFile: `${dir}/bi.password`,
    tls: `${dir}/tls`,
    tlsCert: `${dir}/tls/server.crt`,
    tlsKey: `${dir}/tls/server.key`,
  };
}

function randomPassword(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(18));
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "x").replaceAll(
    "/",
    "y",
  );
}

function readOrCreateSecret(path: string, fixed?: string): string {
  try {
    const v = Deno.readTextFileSync(path).trim();
    if (v && (!fixed || v === fixed)) return v;
  } catch { /* create it */ }
  const v = fixed ?? randomPassword();
  writePrivateFile(path, `${v}\n`);
  return v;
}

async function chownToServerUser(path: string): Promise<void> {
  if (!isRoot()) return;
  const res = await run(["chown", "-R", `${OS_USER}:${OS_USER}`, path]);
  if (!res.ok) throw new Error(`chown ${path} failed: ${res.out}`);
}

/**
 * The postmaster pid from postmaster.pid, if the server runs. A stale file
 * (a crash, a reboot) may name a pid that now belongs to another process:
 * the pid counts only if that process started when the postmaster recorded
 * its own start (line 3, epoch seconds), give or take the rounding.
 */
export function postgresPid(
  config: Pick<Config, "localDir">,
): number | undefined {
  try {
    const lines = Deno.readTextFileSync(
      `${pgDirs(config).data}/postmaster.pid`,
    ).split("\n");
    const pid = Number(lines[0]);
    const recordedMs = Number(lines[2]) * 1000;
    if (!Number.isInteger(pid) || !isAlive(pid)) return undefined;
    const startedMs = processStartedAtMs(pid);
    if (startedMs === undefined || !Number.isFinite(recordedMs)) {
      return undefined;
    }
    // The postmaster records its start right after exec: within seconds.
    return startedMs <= recordedMs + 2_000 && startedMs >= recordedMs - 30_000
      ? pid
      : undefined;
  } catch {
    return undefined;
  }
}

/** initdb on first start; checks the server user can reach the folder. */
async function initCluster(
  config: Pick<Config, "localDir" | "ports">,
): Promise<void> {
  const d = pgDirs(config);
  Deno.mkdirSync(d.dir, { recursive: true });
  try {
    Deno.statSync(`${d.data}/PG_VERSION`);
    return;
  } catch { /* first start */ }
  if (isRoot()) {
    const probe = await run(["test", "-x", d.dir], { asServerUser: true });
    if (!probe.ok) {
      throw new Error(
        `the ${OS_USER} OS user cannot reach ${d.dir} (a parent folder is not world-executable); set LOGPIPE_HOME to a folder it can reach`,
      );
    }
  }
  Deno.mkdirSync(d.data, { recursive: true });
  Deno.mkdirSync(d.socket, { recursive: true });
  await chownToServerUser(d.data);
  await chownToServerUser(d.socket);
  Deno.chmodSync(d.data, 0o700);
  Deno.chmodSync(d.socket, 0o700);
  const res = await run([
    `${pgBinDir()}/initdb`,
    "-D",
    d.data,
    "-U",
    OS_USER,
    "--auth-local=peer",
    "--auth-host=scram-sha-256",
    "--encoding=UTF8",
    "--locale=C.UTF-8",
  ], { asServerUser: true });
  if (!res.ok) throw new Error(`initdb failed:\n${res.out}`);
  // Our settings go in an included file so initdb's defaults stay readable.
  const conf = [
    "# logpipe (pipeline/services/postgres.ts)",
    "listen_addresses = '127.0.0.1'",
    `port = ${config.ports.postgres}`,
    `unix_socket_directories = '${d.socket}'`,
    "max_connections = 200",
    "shared_buffers = 256MB",
    "work_mem = 16MB",
    "maintenance_work_mem = 128MB",
    "max_wal_size = 2GB",
    // Durability stays on: exactly-once loading relies on committed means durable.
    "fsync = on",
    "synchronous_commit = on",
    "log_min_duration_statement = 5000",
    "timezone = 'UTC'",
    "",
  ].join("\n");
  const confPath = `${d.data}/postgresql.conf`;
  Deno.writeTextFileSync(confPath, `\n${conf}`, { append: true });
  // pg_hba.conf and the listen addresses: writeNetworkConfig, on every start.
  await chownToServerUser(d.data);
}

/** A postgresql.conf string value. */
function confString(s: string): string {
  return `'${s.replaceAll("'", "''")}'`;
}

/** The names a client may use for this server: what the certificate covers. */
export function certificateNames(
  server: Config["postgres"]["server"],
): { dns: string[]; ip: string[] } {
  const dns = new Set(["localhost"]);
  const ip = new Set(["127.0.0.1"]);
  try {
    dns.add(Deno.hostname());
  } catch { /* no hostname: localhost and the addresses still work */ }
  for (const a of server.listen) {
    if (/^[\d.]+$/.test(a) && a !== "0.0.0.0") ip.add(a);
    else if (a.includes(":") && a !== "::") ip.add(a);
  }
  // Every address of this machine now (e.g. the WSL2 VM's eth0 address that
  // Windows connects to); a changed address needs a new certificate.
  for (const nic of Deno.networkInterfaces()) {
    if (nic.family === "IPv4" && !nic.address.startsWith("127.")) {
      ip.add(nic.address);
    }
  }
  return { dns: [...dns], ip: [...ip] };
}

/**
 * A self-signed server certificate (RSA 2048, 825 days) for every name in
 * certificateNames(), generated once: the key and the certificate are created
 * empty with mode 600 in a mode-700 folder before openssl writes them.
 */
async function ensureCertificate(
  config: Pick<Config, "localDir" | "postgres">,
): Promise<void> {
  const d = pgDirs(config);
  try {
    Deno.statSync(d.tlsKey);
    Deno.statSync(d.tlsCert);
    return;
  } catch { /* first start with TLS */ }
  Deno.mkdirSync(d.tls, { recursive: true, mode: 0o700 });
  Deno.chmodSync(d.tls, 0o700);
  for (const f of [d.tlsKey, d.tlsCert]) {
    Deno.writeFileSync(f, new Uint8Array(), { mode: 0o600 });
  }
  const names = certificateNames(config.postgres.server);
  const san = [
    ...names.dns.map((n) => `DNS:${n}`),
    ...names.ip.map((n) => `IP:${n}`),
  ].join(",");
  const res = await run([
    "openssl",
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-sha256",
    "-days",
    "825",
    "-subj",
    "/CN=logpipe-postgres",
    "-addext",
    `subjectAltName=${san}`,
    "-addext",
    "extendedKeyUsage=serverAuth",
    "-keyout",
    d.tlsKey,
    "-out",
    d.tlsCert,
  ]);
  if (!res.ok) {
    for (const f of [d.tlsKey, d.tlsCert]) Deno.removeSync(f);
    throw new Error(
      `openssl could not make the server certificate: ${res.out}`,
    );
  }
  for (const f of [d.tlsKey, d.tlsCert]) Deno.chmodSync(f, 0o600);
  await chownToServerUser(d.tls);
}

const NETWORK_CONF = "logpipe.network.conf";

/**
 * Writes the listen addresses, TLS settings and pg_hba.conf from the
 * configuration. Loopback keeps password logins with or without TLS (the
 * pipeline itself); every LOGPIPE_POSTGRES_ALLOW CIDR gets a `hostssl` rule
 * only, so a plain-text login from another host matches no rule and is
 * refused.
 */
async function writeNetworkConfig(
  config: Pick<Config, "localDir" | "postgres">,
): Promise<void> {
  const d = pgDirs(config);
  const server = config.postgres.server;
  if (server.tls) await ensureCertificate(config);
  const conf = [
    "# logpipe: rewritten on every start from LOGPIPE_POSTGRES_LISTEN / _TLS (pipeline/services/postgres.ts)",
    `listen_addresses = ${confString(server.listen.join(","))}`,
    "password_encryption = 'scram-sha-256'",
    `ssl = ${server.tls ? "on" : "off"}`,
    ...(server.tls
      ? [
        `ssl_cert_file = ${confString(d.tlsCert)}`,
        `ssl_key_file = ${confString(d.tlsKey)}`,
        "ssl_min_protocol_version = 'TLSv1.2'",
      ]
      : []),
    "",
  ].join("\n");
  Deno.writeTextFileSync(`${d.data}/${NETWORK_CONF}`, conf, { mode: 0o600 });
  const main = `${d.data}/postgresql.conf`;
  const include = `include_if_exists = '${NETWORK_CONF}'`;
  if (!Deno.readTextFileSync(main).includes(include)) {
    // Last in the file, so it overrides the listen address initdb time wrote.
    Deno.writeTextFileSync(main, `\n${include}\n`, { append: true });
  }
  Deno.writeTextFileSync(
    `${d.data}/pg_hba.conf`,
    [
      "# logpipe: rewritten on every start from LOGPIPE_POSTGRES_ALLOW (pipeline/services/postgres.ts).",
      "# Superuser via the private unix socket (peer); password logins on loopback;",
      "# other hosts only from the allowed CIDRs, only over TLS.",
      `local all ${OS_USER} peer`,
      "host all all 127.0.0.1/32 scram-sha-256",
      ...server.allow.map((cidr) => `hostssl all all ${cidr} scram-sha-256`),
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
  await chownToServerUser(d.data);
}

/** Starts the server (pg_ctl -w waits until it accepts connections). */
export async function startPostgres(
  config: Pick<Config, "localDir" | "ports" | "postgres">,
): Promise<number> {
  await initCluster(config);
  await writeNetworkConfig(config);
  const d = pgDirs(config);
  const log = logFile(config, "postgres");
  Deno.writeTextFileSync(log, "", { append: true });
  await chownToServerUser(log);
  const res = await run([
    `${pgBinDir()}/pg_ctl`,
    "-D",
    d.data,
    "-l",
    log,
    "-w",
    "-t",
    "60",
    "start",
  ], { asServerUser: true });
  if (!res.ok) throw new Error(`pg_ctl start failed:\n${res.out}`);
  const pid = postgresPid(config);
  if (!pid) throw new Error("postgres started but wrote no postmaster.pid");
  return pid;
}

/** Stops the server (fast mode: rolls back open transactions). */
export async function stopPostgres(
  config: Pick<Config, "localDir">,
): Promise<void> {
  const pid = postgresPid(config);
  if (!pid) return;
  const res = await run([
    `${pgBinDir()}/pg_ctl`,
    "-D",
    pgDirs(config).data,
    "-m",
    "fast",
    "-w",
    "-t",
    "60",
    "stop",
  ], { asServerUser: true });
  if (!res.ok && postgresPid(config)) {
    throw new Error(`pg_ctl stop failed:\n${res.out}`);
  }
  // pg_ctl -w returns once postmaster.pid is gone, which the postmaster
  // removes on its way out, before the process has exited: wait for the
  // process too, so "stopped" means no process (the lifecycle test once
  // found the postmaster still alive right after `services down`).
  await waitForExit(pid, 10_000, 20);
}

/**
 * Runs SQL as the superuser over the private socket. `vars` reach psql
 * through its environment (never argv, never the SQL text): the script reads
 * them with `\getenv` and uses them as psql variables (`:'name'` quotes a
 * literal, `:"name"` an identifier).
 */
export async function superuserSql(
  config: Pick<Config, "localDir" | "ports">,
  sql: string,
  database = "postgres",
  vars: Record<string, string> = {},
): Promise<string> {
  const d = pgDirs(config);
  const env: Record<string, string> = {};
  const reads: string[] = [];
  for (const [name, value] of Object.entries(vars)) {
    if (!/^[a-z_][a-z0-9_]*$/.test(name)) {
      throw new Error(`psql variable name "${name}" is not a plain name`);
    }
    env[`LOGPIPE_PSQL_${name.toUpperCase()}`] = value;
    reads.push(`\\getenv ${name} LOGPIPE_PSQL_${name.toUpperCase()}`);
  }
  const res = await run([
    "psql",
    "-X",
    "-q",
    "-v",
    "ON_ERROR_STOP=1",
    "-h",
    d.socket,
    "-p",
    String(config.ports.postgres),
    "-U",
    OS_USER,
    "-d",
    database,
    "-At",
  ], { asServerUser: true, stdin: [...reads, sql].join("\n"), env });
  if (!res.ok) throw new Error(`psql failed: ${res.out}`);
  return res.out;
}

/**
 * Creates (or re-keys) the logpipe owner role and database and the read-only
 * BI role with its limits (pipeline/postgres/bi_role.ts). Idempotent. Names
 * and passwords travel as psql variables into session settings and are
 * quoted on the server by format('%I' / '%L'). Database privileges (PUBLIC's
 * CONNECT/TEMP revoked, the BI role's grants) are migrate's, in every mode.
 */
export async function bootstrapRoles(
  config: Pick<Config, "localDir" | "postgres" | "ports">,
): Promise<void> {
  const d = pgDirs(config);
  const owner = readOrCreateSecret(d.ownerPasswordFile);
  // config.ts is the one reader of LOGPIPE_BI_PASSWORD (environment or
  // .env); without it, biPassword is the file's own value or undefined.
  const bi = readOrCreateSecret(d.biPasswordFile, config.postgres.biPassword);
  const settings: Record<string, string> = {
    "logpipe.owner_name": config.postgres.user || "logpipe",
    "logpipe.owner_password": owner,
    "logpipe.database": config.postgres.database,
    ...biRoleSettings({ ...config.postgres, biPassword: bi }),
  };
  const vars: Record<string, string> = {};
  const sets: string[] = [];
  for (const [key, value] of Object.entries(settings)) {
    const v = key.replace("logpipe.", "");
    vars[v] = value;
    sets.push(`set ${key} = :'${v}';`);
  }
  await superuserSql(
    config,
    `${sets.join("\n")}
do $owner$
declare
  owner_name text := current_setting('logpipe.owner_name');
begin
  if not exists (select 1 from pg_roles where rolname = owner_name) then
    execute format('create role %I login createdb', owner_name);
  end if;
  execute format('alter role %I with login createdb password %L',
    owner_name, current_setting('logpipe.owner_password'));
end
$owner$;
${BI_ROLE_SQL};
select format('create database %I owner %I',
    current_setting('logpipe.database'), current_setting('logpipe.owner_name'))
where not exists (
  select 1 from pg_database where datname = current_setting('logpipe.database')
) \\gexec
`,
    "postgres",
    vars,
  );
}
