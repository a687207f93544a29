/**
 * The read-only BI role (default `logpipe_bi`): one definition of what it is,
 * applied by the local bootstrap (as the superuser, through psql) and by
 * `migrate` (as the owner role, in external and docker-compose mode when that
 * role may manage roles).
 *
 * The role logs in, creates nothing, reads only the masked views of schema
 * `bi` (granted by migrate), and carries its own limits: a connection limit,
 * a `statement_timeout` and `default_transaction_read_only = on`, so a heavy
 * or runaway report cannot hold the warehouse.
 *
 * Names and secrets never go into SQL text: callers set them as session
 * settings (`logpipe.bi_*`, bound parameters or psql's own quoting) and the
 * DO block below reads them with current_setting() and quotes them on the
 * server with format('%I' / '%L').
 */
import type { Config } from "../config.ts";

/** The session settings BI_ROLE_SQL reads, for a given configuration. */
export function biRoleSettings(
  postgres: Pick<
    Config["postgres"],
    "biUser" | "biPassword" | "biStatementTimeoutS" | "biConnectionLimit"
  >,
): Record<string, string> {
  return {
    "logpipe.bi_name": postgres.biUser,
    // Empty = keep the role's current password (or do not create the role).
    "logpipe.bi_password": postgres.biPassword ?? "",
    "logpipe.bi_statement_timeout": `${postgres.biStatementTimeoutS}s`,
    "logpipe.bi_connection_limit": String(postgres.biConnectionLimit),
  };
}

/**
 * Creates the BI role if missing (only with a password to give it) and sets
 * its attributes, password and limits. Needs a superuser or a role with
 * CREATEROLE; reads the settings of biRoleSettings().
 */
export const BI_ROLE_SQL = `
do $bi$
declare
  bi_name text := current_setting('logpipe.bi_name');
  bi_password text := nullif(current_setting('logpipe.bi_password'), '');
begin
  if not exists (select 1 from pg_roles where rolname = bi_name) then
    if bi_password is null then
      return;
    end if;
    execute format('create role %I login', bi_name);
  end if;
  execute format(
    'alter role %I with login nocreatedb nocreaterole inherit connection limit %s',
    bi_name, current_setting('logpipe.bi_connection_limit')::integer);
  if bi_password is not null then
    execute format('alter role %I with password %L', bi_name, bi_password);
  end if;
  execute format('alter role %I set statement_timeout = %L',
    bi_name, current_setting('logpipe.bi_statement_timeout'));
  execute format('alter role %I set default_transaction_read_only = on', bi_name);
end
$bi$`;

/** The BI role's limits as Postgres holds them (for checks and tests). */
export const BI_ROLE_STATE_SQL = `
select r.rolname, r.rolconnlimit, r.rolcanlogin, r.rolcreatedb, r.rolcreaterole,
       r.rolsuper, coalesce(s.setconfig, '{}') as setconfig
from pg_roles r
left join pg_db_role_setting s on s.setrole = r.oid and s.setdatabase = 0
where r.rolname = $1`;
