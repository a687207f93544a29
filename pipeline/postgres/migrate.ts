/**
 * Schema migrations: the SQL files of pipeline/migrations, applied in name
 * order, each in its own transaction and recorded (with a checksum) in
 * ops.schema_migrations, under an advisory lock so concurrent starters do not
 * race. Every file is written to be idempotent (`if not exists`), so a file
 * whose checksum changed is simply applied again.
 *
 * Then the read-only BI role gets exactly: CONNECT, USAGE on `analytics`,
 * SELECT on its tables (now and future ones). Nothing else.
 */
import type { Config } from "../config.ts";
import { withConnection } from "../clients/postgres.ts";

const MIGRATIONS_DIR = new URL("../migrations/", import.meta.url);
const LOCK_KEY = 7_300_001; // arbitrary, logpipe-wide advisory lock id

export interface MigrationResult {
  applied: string[];
  unchanged: string[];
}

async function sha256(text: string): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(text),
  );
  return Array.from(
    new Uint8Array(digest),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
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

function ident(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
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
        const sum = await sha256(sql);
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
      await grantBiRole(
        client,
        config.postgres.biUser,
        config.postgres.biPassword,
      );
      return result;
    } finally {
      await client.query("select pg_advisory_unlock($1)", [LOCK_KEY]);
    }
  });
}

/**
 * Grants the BI role read access to `analytics` only. The role itself is
 * created by the local bootstrap; in external mode it is created here when a
 * password is configured (LOGPIPE_BI_PASSWORD) and the owner role may create
 * roles (e.g. docker-compose's Postgres), else left to the DBA: with no role
 * this is a no-op.
 */
async function grantBiRole(
  client: {
    query: (
      sql: string,
      params?: unknown[],
    ) => Promise<{ rowCount: number | null }>;
  },
  biUser: string,
  biPassword?: string,
): Promise<void> {
  const exists = await client.query(
    "select 1 from pg_roles where rolname = $1",
    [biUser],
  );
  if (!exists.rowCount) {
    const mayCreate = await client.query(
      "select 1 from pg_roles where rolname = current_user and (rolcreaterole or rolsuper)",
    );
    if (!biPassword || !mayCreate.rowCount) return;
    const literal = `'${biPassword.replaceAll("'", "''")}'`;
    await client.query(
      `create role ${ident(biUser)} login password ${literal}`,
    );
  }
  const bi = ident(biUser);
  await client.query(`do $$ begin
    execute format('grant connect on database %I to ${
    bi.replaceAll("'", "''")
  }', current_database());
  end $$`);
  await client.query(`grant usage on schema analytics to ${bi}`);
  await client.query(`grant select on all tables in schema analytics to ${bi}`);
  // Tables dbt creates later (as the owner role) become readable too.
  await client.query(
    `alter default privileges in schema analytics grant select on tables to ${bi}`,
  );
  for (const schema of ["raw", "monitoring", "ops", "public"]) {
    await client.query(`revoke all on schema ${schema} from ${bi}`);
  }
}
