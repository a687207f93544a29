/**
 * The validate step, run AFTER the load (the original validated the wrong
 * database, before loading): for every loaded file not yet validated,
 * ledger row counts equal the rows in raw.events, no event_id is doubled,
 * required fields are present, nothing is from the future; plus the global
 * reconciliation ledger total = table total. Files that pass are marked
 * validated by this run; a violation fails the task without retries (it is
 * data, not a hiccup) and the files stay unvalidated, so the next run checks
 * them again.
 */
import type { Pool } from "../clients/postgres.ts";
import { NonRetryableError } from "./retry.ts";

/** Fields each event type must carry beyond the table's NOT NULL columns. */
export const REQUIRED_BY_TYPE: Record<string, string[]> = {
  product_view: ["product_id", "unit_price"],
  add_to_cart: ["product_id", "quantity", "unit_price"],
  search: ["search_query", "results_count", "searched_at"],
  purchase: ["order_id", "amount", "payment_method", "items_json"],
  order_complete: ["order_id", "amount", "payment_method", "items_json"],
  order_failed: ["order_id", "amount", "payment_method", "failure_reason"],
  error: ["error_code", "error_message", "http_status"],
};

/** Allowed clock skew between producers and this host. */
export const FUTURE_TOLERANCE_MS = 5 * 60_000;

/** One failed check. */
export interface Violation {
  check: string;
  detail: string;
}

/** What validation looked at. */
export interface ValidationReport {
  files: number;
  rows: number;
  violations: Violation[];
}

/** SQL condition "row misses a field its type requires" (static text, no input). */
export function requiredFieldsCondition(
  rules: Record<string, string[]> = REQUIRED_BY_TYPE,
): string {
  const ident = (s: string) => {
    if (!/^[a-z_][a-z0-9_]*$/.test(s)) throw new Error(`bad identifier ${s}`);
    return s;
  };
  return Object.entries(rules).map(([type, cols]) =>
    `(event_type = '${ident(type)}' and (${
      cols.map((c) => `${ident(c)} is null`).join(" or ")
    }))`
  ).join(" or ");
}

/** Runs every check over the files not yet validated; marks them when all pass. */
export async function validateLoaded(
  pool: Pool,
  runId: string,
  opts: { now?: Date; markValidated?: boolean } = {},
): Promise<ValidationReport> {
  const now = opts.now ?? new Date();
  const violations: Violation[] = [];
  const pending = await pool.query(
    "select path, row_count from raw.load_ledger where validated_by is null",
  );
  const paths: string[] = pending.rows.map((r: { path: string }) => r.path);
  const expectedRows = pending.rows.reduce(
    (a: number, r: { row_count: number }) => a + Number(r.row_count),
    0,
  );

  // The primary key is what makes duplicates impossible: prove it is there.
  const pk = await pool.query(
    `select 1 from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
     where i.indrelid = 'raw.events'::regclass and i.indisprimary and i.indisvalid
       and i.indnatts = 1 and a.attname = 'event_id'`,
  );
  if (pk.rowCount !== 1) {
    violations.push({
      check: "unique_event_id",
      detail: "raw.events has no valid primary key on event_id",
    });
  }

  // Global reconciliation: every row belongs to a ledger file and vice versa.
  const totals = await pool.query(
    `select (select coalesce(sum(row_count), 0) from raw.load_ledger)::bigint as ledger,
            (select count(*) from raw.events)::bigint as events`,
  );
  const { ledger, events } = totals.rows[0];
  if (Number(ledger) !== Number(events)) {
    violations.push({
      check: "ledger_total",
      detail: `ledger says ${ledger} rows, raw.events holds ${events}`,
    });
  }

  let rows = 0;
  if (paths.length) {
    const counts = await pool.query(
      `select l.path, l.row_count, count(e.event_id)::bigint as loaded
       from raw.load_ledger l left join raw.events e on e.source_file = l.path
       where l.path = any($1) group by l.path, l.row_count
       having count(e.event_id) <> l.row_count limit 10`,
      [paths],
    );
    for (const r of counts.rows) {
      violations.push({
        check: "ledger_row_count",
        detail: `${r.path}: ledger ${r.row_count}, loaded ${r.loaded}`,
      });
    }
    const dups = await pool.query(
      `select event_id, count(*)::int as n from raw.events where source_file = any($1)
       group by event_id having count(*) > 1 limit 10`,
      [paths],
    );
    for (const r of dups.rows) {
      violations.push({
        check: "unique_event_id",
        detail: `${r.event_id} × ${r.n}`,
      });
    }
    const checks = await pool.query(
      `select
         count(*)::bigint as rows,
         count(*) filter (where event_id = '' or user_id = '' or session_id = ''
                            or event_type = '' or service = '')::bigint as blank_ids,
         count(*) filter (where ${requiredFieldsCondition()})::bigint as missing_fields,
         count(*) filter (where event_ts > $2 or kafka_timestamp > $2)::bigint as future,
         (array_agg(event_id) filter (where ${requiredFieldsCondition()}))[1:5] as missing_examples,
         (array_agg(event_id) filter (where event_ts > $2 or kafka_timestamp > $2))[1:5] as future_examples
       from raw.events where source_file = any($1)`,
      [paths, new Date(now.getTime() + FUTURE_TOLERANCE_MS)],
    );
    const c = checks.rows[0];
    rows = Number(c.rows);
    if (rows !== expectedRows) {
      violations.push({
        check: "ledger_row_count",
        detail:
          `unvalidated files: ledger ${expectedRows} rows, loaded ${rows}`,
      });
    }
    if (Number(c.blank_ids) > 0) {
      violations.push({
        check: "required_not_null",
        detail: `${c.blank_ids} rows with an empty identifier`,
      });
    }
    if (Number(c.missing_fields) > 0) {
      violations.push({
        check: "required_not_null",
        detail:
          `${c.missing_fields} rows miss a field their event type requires, e.g. ${
            (c.missing_examples ?? []).join(", ")
          }`,
      });
    }
    if (Number(c.future) > 0) {
      violations.push({
        check: "not_in_future",
        detail: `${c.future} rows dated after ${now.toISOString()} (+${
          FUTURE_TOLERANCE_MS / 60_000
        } min), e.g. ${(c.future_examples ?? []).join(", ")}`,
      });
    }
  }

  if (violations.length === 0 && paths.length && opts.markValidated !== false) {
    await pool.query(
      "update raw.load_ledger set validated_by = $2 where path = any($1) and validated_by is null",
      [paths, runId],
    );
  }
  return { files: paths.length, rows, violations };
}

/** Throws NonRetryableError naming every violation. */
export function assertValid(report: ValidationReport): void {
  if (report.violations.length) {
    throw new NonRetryableError(
      `validation failed: ${
        report.violations.map((v) => `${v.check}: ${v.detail}`).join("; ")
      }`,
    );
  }
}
