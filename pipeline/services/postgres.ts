/**
 * A private PostgreSQL cluster from the installed Debian binaries: its own
 * data folder and port, listening on 127.0.0.1 only. Postgres refuses to run
 * as root, so when we are root every server command runs as the unprivileged
 * `postgres` OS user. Passwords are generated on first start and kept in the
 * git-ignored state folder (mode 600), never in the repository.
 */
import type { Config } from "../config.ts";
import { logFile, servicePaths } from "./paths.ts";
import { isAlive } from "./process.ts";

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
  opts: { asServerUser?: boolean; stdin?: string } = {},
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
    env: { HOME: "/tmp", LC_ALL: "C.UTF-8" },
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
  Deno.writeTextFileSync(path, `${v}\n`, { mode: 0o600 });
  Deno.chmodSync(path, 0o600);
  return v;
}

async function chownToServerUser(path: string): Promise<void> {
  if (!isRoot()) return;
  const res = await run(["chown", "-R", `${OS_USER}:${OS_USER}`, path]);
  if (!res.ok) throw new Error(`chown ${path} failed: ${res.out}`);
}

/** The postmaster pid from postmaster.pid, if the server runs. */
export function postgresPid(
  config: Pick<Config, "localDir">,
): number | undefined {
  try {
    const first =
      Deno.readTextFileSync(`${pgDirs(config).data}/postmaster.pid`).split(
        "\n",
      )[0];
    const pid = Number(first);
    return Number.isInteger(pid) && isAlive(pid) ? pid : undefined;
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
  // Only password logins over TCP; the superuser only over the private socket.
  Deno.writeTextFileSync(
    `${d.data}/pg_hba.conf`,
    [
      "# logpipe: superuser via the private unix socket (peer), everyone else by password on loopback",
      `local all ${OS_USER} peer`,
      "host all all 127.0.0.1/32 scram-sha-256",
      "",
    ].join("\n"),
  );
  await chownToServerUser(d.data);
}

/** Starts the server (pg_ctl -w waits until it accepts connections). */
export async function startPostgres(
  config: Pick<Config, "localDir" | "ports">,
): Promise<number> {
  await initCluster(config);
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
  if (!postgresPid(config)) return;
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
}

/** Runs SQL as the superuser over the private socket. */
export async function superuserSql(
  config: Pick<Config, "localDir" | "ports">,
  sql: string,
  database = "postgres",
): Promise<string> {
  const d = pgDirs(config);
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
  ], { asServerUser: true, stdin: sql });
  if (!res.ok) throw new Error(`psql failed: ${res.out}`);
  return res.out;
}

function sqlLiteral(s: string): string {
  return `'${s.replaceAll("'", "''")}'`;
}

/**
 * Creates (or re-keys) the logpipe owner role and database and the
 * read-only BI role. Idempotent.
 */
export async function bootstrapRoles(
  config: Pick<Config, "localDir" | "postgres" | "ports">,
): Promise<void> {
  const d = pgDirs(config);
  const owner = readOrCreateSecret(d.ownerPasswordFile);
  // config.ts is the one reader of LOGPIPE_BI_PASSWORD (environment or
  // .env); without it, biPassword is the file's own value or undefined.
  const bi = readOrCreateSecret(d.biPasswordFile, config.postgres.biPassword);
  const ownerName = config.postgres.user || "logpipe";
  const biName = config.postgres.biUser;
  await superuserSql(
    config,
    `
do $$ begin
  if not exists (select 1 from pg_roles where rolname = ${
      sqlLiteral(ownerName)
    }) then
    execute format('create role %I login createdb', ${sqlLiteral(ownerName)});
  end if;
  execute format('alter role %I with login createdb password %L', ${
      sqlLiteral(ownerName)
    }, ${sqlLiteral(owner)});
  if not exists (select 1 from pg_roles where rolname = ${
      sqlLiteral(biName)
    }) then
    execute format('create role %I login', ${sqlLiteral(biName)});
  end if;
  execute format('alter role %I with login nocreatedb nocreaterole password %L', ${
      sqlLiteral(biName)
    }, ${sqlLiteral(bi)});
end $$;
select 'create database ' || quote_ident(${
      sqlLiteral(config.postgres.database)
    }) || ' owner ' || quote_ident(${sqlLiteral(ownerName)})
where not exists (select 1 from pg_database where datname = ${
      sqlLiteral(config.postgres.database)
    }) \\gexec
`,
  );
  // PG15 already keeps CREATE on public from PUBLIC; make the BI role's lack of
  // write access explicit at the database level too.
  await superuserSql(
    config,
    `revoke create on schema public from public;
     revoke all on database ${quoteIdent(config.postgres.database)} from public;
     grant connect, temporary on database ${
      quoteIdent(config.postgres.database)
    } to ${quoteIdent(ownerName)};
     grant connect on database ${quoteIdent(config.postgres.database)} to ${
      quoteIdent(biName)
    };`,
    config.postgres.database,
  );
}

function quoteIdent(s: string): string {
  return `"${s.replaceAll('"', '""')}"`;
}
