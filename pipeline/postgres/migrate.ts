/**
 * Schema migrations: the SQL files of pipeline/migrations, applied in name
 * order, each in its own transaction and recorded (with a checksum) in
 * ops.schema_migrations, under an advisory lock so concurrent starters do not
 * race. Every file is written to be idempotent (`if not exists`), so a file
 * whose checksum changed is simply applied again.
 *
 * Then the database's privileges and the read-only BI role: PUBLIC loses
 * CONNECT and TEMP on the database (when the owner role owns it), the BI role
 * is created or re-keyed with its limits when the owner role may manage roles
 * (pipeline/postgres/bi_role.ts), and it gets exactly CONNECT, USAGE on the
 * masked schema `bi` and SELECT on its views (now and future ones). Nothing
 * in `analytics`, `raw`, `monitoring`, `ops` or `public`. The masking policy
 * (ops.bi_policy) follows LOGPIPE_BI_PII.
 */
import type { Config } from "../config.ts";
import { withConnection } from "../clients/postgres.ts";
import { logger } from "../log.ts";
import { BI_ROLE_SQL, BI_ROLE_STATE_SQL, biRoleSettings } from "./bi_role.ts";
import { sha256Hex } from "../hash.ts";

const log = logger("migrate");

const MIGRATIONS_DIR = new URL("../migrations/", import.meta.url);
const LOCK_KEY = 7_300_001; // arbitrary, logpipe-wide advisory lock id

export interface MigrationResult {
  applied: string[];
  unchanged: string[];
}

/** The migration files, sorted by name. */
export function migrationFiles(): { name: string; sql: string }[] {
  const names = [...Deno.readDirSync(MIGRATIONS_DIR)]
    .filter((e) => e.isFile && /^\d{3}_.*\.sql$/.test(e.name))
    .map((e) => e.name)
    .sort();
  return names.map((name) => ({
    name,
    sql: Deno.readTextFileSync(new URL(name, MIGRATIONS_DIR)),
  }));
}

/** Applies pending migrations and the BI grants to `url` (default: config). */
export async function migrate(
  config: Pick<Config, "postgres">,
  url = config.postgres.url,
): Promise<MigrationResult> {
  return await withConnection(url, async (client) => {
    await client.query("select pg_advisory_lock($1)", [LOCK_KEY]);
    try {
      await client.query("create schema if not exists ops");
      await client.query(`create table if not exists ops.schema_migrations (
        name text primary key,
        checksum text not null,
        applied_at timestamptz not null default now())`);
      const done = new Map<string, string>(
        (await client.query("select name, checksum from ops.schema_migrations"))
          .rows.map((
            r: { name: string; checksum: string },
          ) => [r.name, r.checksum]),
      );
      const result: MigrationResult = { applied: [], unchanged: [] };
      for (const { name, sql } of migrationFiles()) {
        const sum = await sha256Hex(sql);
        if (done.get(name) === sum) {
          result.unchanged.push(name);
          continue;
        }
        await client.query("begin");
        try {
          await client.query(sql);
          await client.query(
            `insert into ops.schema_migrations (name, checksum) values ($1, $2)
             on conflict (name) do update set checksum = excluded.checksum, applied_at = now()`,
            [name, sum],
          );
          await client.query("commit");
        } catch (err) {
          await client.query("rollback").catch(() => {});
          throw new Error(
            `migration ${name} failed: ${
              err instanceof Error ? err.message : err
            }`,
          );
        }
        result.applied.push(name);
      }
      await applyBiRole(client, config.postgres);
      return result;
    } finally {
      await client.query("select pg_advisory_unlock($1)", [LOCK_KEY]);
    }
  });
}

/**
 * Database privileges and grants, quoted on the server (names come from the
 * session settings of biRoleSettings()). PUBLIC's CONNECT and TEMP are
 * revoked only when the current role owns the database (or is superuser),
 * after granting them to itself, so it never locks itself out; on a managed
 * database owned by someone else that is the DBA's call.
 */
const BI_GRANTS_SQL = `
do $grants$
declare
  bi_name text := current_setting('logpipe.bi_name');
  s text;
begin
  if exists (
    select 1 from pg_database d, pg_roles r
    where d.datname = current_database() and r.rolname = current_user
      and (d.datdba = r.oid or r.rolsuper)
  ) then
    execute format('grant connect, temporary on database %I to %I',
      current_database(), current_user);
    execute format('revoke connect, temporary on database %I from public',
      current_database());
    execute 'revoke create on schema public from public';
  end if;
  if not exists (select 1 from pg_roles where rolname = bi_name) then
    return;
  end if;
  execute format('grant connect on database %I to %I', current_database(), bi_name);
  execute format('grant usage on schema bi to %I', bi_name);
  execute format('grant select on all tables in schema bi to %I', bi_name);
  -- The views dbt creates later (as this role) become readable too.
  execute format('alter default privileges in schema bi grant select on tables to %I', bi_name);
  -- Earlier versions granted analytics itself; the masked views replace that.
  execute format('alter default privileges in schema analytics revoke select on tables from %I', bi_name);
  execute format('revoke all on all tables in schema analytics from %I', bi_name);
  foreach s in array array['analytics', 'raw', 'monitoring', 'ops', 'public'] loop
    execute format('revoke all on schema %I from %I', s, bi_name);
  end loop;
end
$grants$`;

/** The BI role docker/postgres-init.sh creates, and its role-managing function. */
const COMPOSE_BI_USER = "logpipe_bi";
const APPLY_BI_ROLE = "logpipe_admin.apply_bi_role(text,text,integer)";

type Queryable = {
  query: (
    sql: string,
    params?: unknown[],
  ) => Promise<{ rowCount: number | null; rows: Record<string, unknown>[] }>;
};

/**
 * The BI role and its grants. The role itself (creation, password, limits) is
 * managed here when the owner role may (superuser or CREATEROLE), or through
 * docker-compose's logpipe_admin.apply_bi_role(); locally the bootstrap does
 * it as the superuser; on a managed database without either it is the DBA's,
 * and a role missing its limits is reported.
 */
async function applyBiRole(
  client: Queryable,
  postgres: Config["postgres"],
): Promise<void> {
  const settings = biRoleSettings(postgres);
  for (const [key, value] of Object.entries(settings)) {
    await client.query("select set_config($1, $2, false)", [key, value]);
  }
  try {
    const me = await client.query(
      "select 1 from pg_roles where rolname = current_user and (rolcreaterole or rolsuper)",
    );
    if (me.rowCount) await client.query(BI_ROLE_SQL);
    else if (postgres.biUser === COMPOSE_BI_USER) {
      // docker-compose: the owner may not manage roles, but the init script
      // (docker/postgres-init.sh) lets it apply these to logpipe_bi alone.
      const admin = await client.query(
        `select 1 where to_regprocedure($1) is not null
           and has_function_privilege(to_regprocedure($1), 'execute')`,
        [APPLY_BI_ROLE],
      );
      if (admin.rowCount) {
        await client.query(
          "select logpipe_admin.apply_bi_role($1, $2, $3)",
          [
            postgres.biPassword ?? "",
            settings["logpipe.bi_statement_timeout"],
            postgres.biConnectionLimit,
          ],
        );
      }
    }
  } finally {
    // The password stays in this session no longer than needed.
    await client.query("select set_config('logpipe.bi_password', '', false)");
  }
  await client.query(BI_GRANTS_SQL);
  await client.query(
    `insert into ops.bi_policy (singleton, pii) values (true, $1)
     on conflict (singleton) do update set pii = excluded.pii, updated_at = now()
     where ops.bi_policy.pii <> excluded.pii`,
    [postgres.biPii],
  );
  const state = await client.query(BI_ROLE_STATE_SQL, [postgres.biUser]);
  if (!state.rowCount) {
    log.warn(
      "the BI role does not exist: set LOGPIPE_BI_PASSWORD (with an owner role that may create roles) or have the DBA create it",
      { role: postgres.biUser },
    );
    return;
  }
  const setconfig = state.rows[0].setconfig as string[];
  const missing = [
    `statement_timeout=${settings["logpipe.bi_statement_timeout"]}`,
    "default_transaction_read_only=on",
  ].filter((want) => !setconfig.includes(want));
  if (missing.length) {
    log.warn(
      "the BI role lacks its limits and this role may not set them; ask the DBA to run ALTER ROLE ... SET for each",
      { role: postgres.biUser, missing },
    );
  }
}
