/**
 * A checksum of every mart's content, for reproducibility: two fresh
 * pipelines fed the same events must end with the same fingerprint.
 *
 * Content means the rows as a set: each row is hashed, the row hashes are
 * sorted, and the table hash is the hash of that list, so row order cannot
 * leak in. Columns named `_*` (load bookkeeping such as `_loaded_at`) and
 * `dbt_*` (dbt's own snapshot stamps) are operational metadata, not content,
 * and are left out by convention; every other column must be reproducible.
 */
import type { Config } from "../config.ts";
import { createPool } from "../clients/postgres.ts";
import { sha256Hex } from "../hash.ts";

export const FINGERPRINT_PREFIXES = ["dim_", "fact_", "mart_"];

export interface Fingerprint {
  /** Hash over all tables. */
  total: string;
  tables: { table: string; rows: number; hash: string }[];
}

function ident(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** Fingerprints every dim_/fact_/mart_ table of the analytics schema. */
export async function fingerprintMarts(
  config: Pick<Config, "postgres">,
): Promise<Fingerprint> {
  const pool = createPool(config, {
    max: 1,
    applicationName: "logpipe-fingerprint",
  });
  try {
    const cols = (await pool.query(
      `select c.table_name, c.column_name
         from information_schema.columns c
         join information_schema.tables t
           on t.table_schema = c.table_schema and t.table_name = c.table_name
        where c.table_schema = 'analytics' and t.table_type = 'BASE TABLE'
          and c.column_name not like '\\_%' and c.column_name not like 'dbt\\_%'
        order by c.table_name, c.column_name`,
    )).rows as { table_name: string; column_name: string }[];
    const byTable = new Map<string, string[]>();
    for (const c of cols) {
      if (!FINGERPRINT_PREFIXES.some((p) => c.table_name.startsWith(p))) {
        continue;
      }
      byTable.set(c.table_name, [
        ...(byTable.get(c.table_name) ?? []),
        c.column_name,
      ]);
    }
    const tables: Fingerprint["tables"] = [];
    for (
      const [table, columns] of [...byTable].sort(([a], [b]) =>
        a.localeCompare(b)
      )
    ) {
      // Columns in name order, so a column reordering in a model changes nothing.
      const row = `md5(row(${columns.map(ident).join(", ")})::text)`;
      const r = await pool.query(
        `select count(*) as rows,
                md5(coalesce(string_agg(h, '' order by h), '')) as hash
           from (select ${row} as h from analytics.${ident(table)}) t`,
      );
      tables.push({
        table,
        rows: Number(r.rows[0].rows),
        hash: r.rows[0].hash,
      });
    }
    const all = tables.map((t) => `${t.table}:${t.hash}`).join("\n");
    return { total: await sha256Hex(all), tables };
  } finally {
    await pool.end();
  }
}
