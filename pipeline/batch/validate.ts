/**
 * The validate step, run AFTER the load (the original validated the wrong
 * database, before loading), over every loaded file not yet validated:
 *
 * - data checks on the file's rows in raw.events: identifiers not blank,
 *   the fields each event type requires present, nothing from the future
 *   (beyond FUTURE_TOLERANCE_MS of clock skew). A row that fails was let
 *   through by the stream validator; it is moved to the quarantine with its
 *   reason (one transaction), never fails the run;
 * - accounting (by Kafka coordinates, see ledger.ts): every row of each file
 *   is in exactly one of raw.events, raw.duplicates or the quarantine, and
 *   the ledger's total equals the three tables' totals; the primary key on
 *   event_id exists. A violation here is a defect of the pipeline, not of
 *   the data: it fails the task without retries, and the files stay
 *   unvalidated, so the next run checks them again.
 *
 * Files that pass are marked validated by this run.
 */
import type { Pool } from "../clients/postgres.ts";
import {
  addToSummary,
  emptySummary,
  type QuarantineSummary,
  storableText,
} from "./quarantine.ts";
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
  /** Rows moved to the quarantine by the data checks. */
  quarantine: QuarantineSummary;
  quarantineIds: number[];
}

/** SQL condition "row misses a field its type requires" (static text, no input). */
export function requiredFieldsCondition(
  rules: Record<string, string[]> = REQUIRED_BY_TYPE,
  alias = "",
): string {
  const ident = (s: string) => {
    if (!/^[a-z_][a-z0-9_]*$/.test(s)) throw new Error(`bad identifier ${s}`);
    return `${alias ? `${alias}.` : ""}${s}`;
  };
  return Object.entries(rules).map(([type, cols]) =>
    `(${ident("event_type")} = '${type.replace(/[^a-z_]/g, "")}' and (${
      cols.map((c) => `${ident(c)} is null`).join(" or ")
    }))`
  ).join(" or ");
}

/**
 * SQL expression naming the first data check a row of `alias` fails
 * (quarantine reason and detail), or null; `$deadline` is the placeholder of
 * the newest acceptable time. Shared with the quarantine reload.
 */
export function rowCheckSql(alias: string, deadline: string): {
  reason: string;
  detail: string;
  failing: string;
} {
  const a = (c: string) => `${alias}.${c}`;
  const blank = `(${
    ["event_id", "user_id", "session_id", "event_type", "service"].map((c) =>
      `${a(c)} = ''`
    ).join(" or ")
  })`;
  const missing = `(${requiredFieldsCondition(REQUIRED_BY_TYPE, alias)})`;
  const future = `(${a("event_ts")} > ${deadline} or ${
    a("kafka_timestamp")
  } > ${deadline})`;
  return {
    failing: `(${blank} or ${missing} or ${future})`,
    reason: `case when ${blank} then 'blank_identifier'
                  when ${missing} then 'missing_required_field'
                  else 'future_timestamp' end`,
    detail: `case when ${blank} then 'an identifier is empty'
                  when ${missing} then 'a field required for ' || ${
      a("event_type")
    } || ' events is missing'
                  else 'event_ts ' || ${
      a("event_ts")
    }::text || ' / kafka_timestamp ' ||
                       coalesce(${
      a("kafka_timestamp")
    }::text, 'null') || ' is after ' || ${deadline}::text
                       || ' (now + allowed clock skew)' end`,
  };
}

/** Rows of unvalidated ledger files, by coordinates (see ledger.ts). */
const PENDING_ROWS = `
  from raw.load_ledger l
  join raw.events e
    on e.kafka_topic = l.kafka_topic and e.kafka_partition = l.kafka_partition
   and e.kafka_offset between l.first_offset and l.last_offset
   and e.event_ts >= l.event_hour and e.event_ts < l.event_hour + interval '1 hour'
 where l.validated_by is null and l.status = 'loaded'`;

/** Runs every check over the files not yet validated; marks them when all pass. */
export async function validateLoaded(
  pool: Pool,
  runId: string,
  opts: { now?: Date; markValidated?: boolean } = {},
): Promise<ValidationReport> {
  const now = opts.now ?? new Date();
  const deadline = new Date(now.getTime() + FUTURE_TOLERANCE_MS);
  const violations: Violation[] = [];
  const quarantine = emptySummary();
  const pending = await pool.query(
    `select path, row_count from raw.load_ledger
      where validated_by is null and status = 'loaded'`,
  );
  const paths: string[] = pending.rows.map((r: { path: string }) => r.path);

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

  // Data checks: what slipped through goes to the quarantine.
  let quarantineIds: number[] = [];
  if (paths.length) {
    const check = rowCheckSql("e", "$2::timestamptz");
    const client = await pool.connect();
    try {
      await client.query("begin");
      const moved = await client.query(
        `with bad as (
           select distinct on (e.event_id) e.*, ${check.reason} as q_reason,
                  ${check.detail} as q_detail
           ${PENDING_ROWS} and ${check.failing}),
         gone as (
           delete from raw.events x using bad b where x.event_id = b.event_id
           returning b.*)
         insert into raw.quarantine (scope, reason, detail, source_path, kafka_topic,
           kafka_partition, first_offset, last_offset, event_hour, event_id,
           row_json, run_id)
         select 'row', q_reason, q_detail, source_file, kafka_topic, kafka_partition,
                kafka_offset, kafka_offset, date_trunc('hour', event_ts, 'UTC'),
                event_id,
                (to_jsonb(g) - array['q_reason', 'q_detail', 'source_file', 'loaded_at'])::text,
                $1
           from gone g
         on conflict (kafka_topic, kafka_partition, first_offset) where scope = 'row'
         do update set status = 'quarantined', reason = excluded.reason,
           detail = excluded.detail, source_path = excluded.source_path,
           row_json = excluded.row_json, run_id = excluded.run_id,
           quarantined_at = now(), hdfs_path = null
         returning id, reason, source_path, kafka_partition, first_offset, detail`,
        [runId, deadline],
      );
      await client.query("commit");
      quarantineIds = moved.rows.map((r) => Number(r.id));
      for (const r of moved.rows) {
        addToSummary(
          quarantine,
          "row",
          r.reason,
          `${
            String(r.source_path).split("/").pop()
          } @ ${r.kafka_partition}/${r.first_offset} (${
            storableText(String(r.detail)).slice(0, 160)
          })`,
        );
      }
    } catch (err) {
      await client.query("rollback").catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }

  // Accounting, after the moves.
  const totals = await pool.query(
    `select (select coalesce(sum(row_count), 0) from raw.load_ledger where status = 'loaded')::bigint as ledger,
            (select count(*) from raw.events)::bigint as events,
            (select count(*) from raw.duplicates)::bigint as duplicates,
            (select count(*) from raw.quarantine
              where scope = 'row' and status = 'quarantined')::bigint as quarantined`,
  );
  const t = totals.rows[0];
  const accounted = Number(t.events) + Number(t.duplicates) +
    Number(t.quarantined);
  if (Number(t.ledger) !== accounted) {
    violations.push({
      check: "ledger_total",
      detail:
        `ledger says ${t.ledger} rows; raw.events ${t.events} + duplicates ${t.duplicates} + quarantined ${t.quarantined} = ${accounted}`,
    });
  }

  let rows = 0;
  if (paths.length) {
    const counts = await pool.query(
      `select l.path, l.row_count,
              (select count(*) from raw.events e
                where e.kafka_topic = l.kafka_topic and e.kafka_partition = l.kafka_partition
                  and e.kafka_offset between l.first_offset and l.last_offset
                  and e.event_ts >= l.event_hour
                  and e.event_ts < l.event_hour + interval '1 hour')::bigint as events,
              (select count(*) from raw.duplicates d
                where d.kafka_topic = l.kafka_topic and d.kafka_partition = l.kafka_partition
                  and d.kafka_offset between l.first_offset and l.last_offset
                  and d.event_hour = l.event_hour)::bigint as duplicates,
              (select count(*) from raw.quarantine q
                where q.scope = 'row' and q.status = 'quarantined'
                  and q.kafka_topic = l.kafka_topic and q.kafka_partition = l.kafka_partition
                  and q.first_offset between l.first_offset and l.last_offset
                  and q.event_hour = l.event_hour)::bigint as quarantined
         from raw.load_ledger l
        where l.validated_by is null and l.status = 'loaded'`,
    );
    let shown = 0;
    for (const r of counts.rows) {
      rows += Number(r.events);
      const sum = Number(r.events) + Number(r.duplicates) +
        Number(r.quarantined);
      if (sum !== Number(r.row_count) && shown++ < 10) {
        violations.push({
          check: "ledger_row_count",
          detail:
            `${r.path}: ledger ${r.row_count} rows, accounted ${sum} (raw.events ${r.events}, duplicates ${r.duplicates}, quarantined ${r.quarantined})`,
        });
      }
    }
  }

  if (violations.length === 0 && paths.length && opts.markValidated !== false) {
    await pool.query(
      "update raw.load_ledger set validated_by = $2 where path = any($1) and validated_by is null",
      [paths, runId],
    );
  }
  return { files: paths.length, rows, violations, quarantine, quarantineIds };
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
