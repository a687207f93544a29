/**
 * Run history in Postgres (ops.dag_runs, ops.task_runs, ops.dbt_test_results):
 * Deno.cron persists nothing, so this is the record the site's grid shows.
 *
 * Writes are queued and flushed in order; when Postgres is unreachable (the
 * outage a retrying task is riding out) they stay queued and go out with the
 * next write that gets through, or at close(). Every write is an idempotent
 * upsert keyed by (run, task, try), so replaying the queue is safe.
 */
import type { Pool } from "../clients/postgres.ts";
import type { Logger } from "../log.ts";
import type { TryRecord } from "./runner.ts";
import { delay } from "../async.ts";

interface Op {
  what: string;
  sql: string;
  params: unknown[];
}

/** A dbt test's result as stored for the site. */
export interface DbtTestRow {
  name: string;
  status: string;
  failures?: number | null;
  message?: string | null;
}

/** A finished run's totals. */
export interface RunEnd {
  state: "success" | "success_with_warnings" | "failed";
  endedAt: Date;
  durationMs: number;
  rowsLoaded: number;
  filesLoaded: number;
  error?: string;
  /** Items set aside by the run, and what they were. */
  warnings?: number;
  warningDetail?: Record<string, unknown>;
}

/** Records one run's history; never throws from the recording methods. */
export class RunHistory {
  readonly #pool: Pool;
  readonly #log: Logger;
  #queue: Op[] = [];
  #flushing: Promise<void> = Promise.resolve();

  constructor(pool: Pool, log: Logger) {
    this.#pool = pool;
    this.#log = log;
  }

  /** Pending writes (not yet in Postgres). */
  get pending(): number {
    return this.#queue.length;
  }

  /**
   * Inserts the run row. Unlike the other writes this one must succeed
   * (the caller holds the run lock, so Postgres is up right now).
   */
  async startRun(run: {
    runId: string;
    dagId: string;
    trigger: string;
    startedAt: Date;
    params: Record<string, unknown>;
  }): Promise<void> {
    await this.#pool.query(
      `insert into ops.dag_runs (run_id, dag_id, trigger, state, started_at, params)
       values ($1, $2, $3, 'running', $4, $5)`,
      [
        run.runId,
        run.dagId,
        run.trigger,
        run.startedAt,
        JSON.stringify(run.params),
      ],
    );
  }

  /** Marks runs left 'running' by a process that died (we hold the lock, so none is alive). */
  async failZombieRuns(dagId: string, byRunId: string): Promise<string[]> {
    const res = await this.#pool.query(
      `update ops.dag_runs set state = 'failed', ended_at = coalesce(ended_at, now()),
         error = coalesce(error, '') || 'run died without finishing (found by ' || $2 || ')'
       where dag_id = $1 and state = 'running' returning run_id`,
      [dagId, byRunId],
    );
    const ids = res.rows.map((r: { run_id: string }) => r.run_id);
    if (ids.length) {
      await this.#pool.query(
        `update ops.task_runs set state = 'failed', ended_at = coalesce(ended_at, now()),
           error = coalesce(error, 'process died during this try')
         where run_id = any($1) and state in ('running', 'up_for_retry')`,
        [ids],
      );
    }
    return ids;
  }

  /** Upserts one task try (start or end). */
  recordTry(rec: TryRecord): Promise<void> {
    return this.#enqueue({
      what: `task ${rec.taskId} try ${rec.tryNumber}`,
      sql: `insert into ops.task_runs
          (run_id, task_group, task_id, try_number, state, started_at, ended_at,
           duration_ms, rows, detail, error)
        values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
        on conflict (run_id, task_id, try_number) do update set
          state = excluded.state, ended_at = excluded.ended_at,
          duration_ms = excluded.duration_ms, rows = excluded.rows,
          detail = excluded.detail, error = excluded.error`,
      params: [
        rec.runId,
        rec.group,
        rec.taskId,
        rec.tryNumber,
        rec.state,
        rec.startedAt,
        rec.endedAt ?? null,
        rec.durationMs ?? null,
        rec.rows ?? null,
        JSON.stringify({
          ...rec.detail,
          max_tries: rec.maxTries,
          ...(rec.retryInMs !== undefined
            ? { retry_in_ms: rec.retryInMs }
            : {}),
        }),
        rec.error ? rec.error.slice(0, 4000) : null,
      ],
    });
  }

  /** Stores dbt test results of the run. */
  recordDbtTests(runId: string, tests: DbtTestRow[]): Promise<void> {
    if (tests.length === 0) return Promise.resolve();
    return this.#enqueue({
      what: `dbt test results (${tests.length})`,
      sql:
        `insert into ops.dbt_test_results (run_id, test_name, status, failures, message)
        select $1, t->>'name', t->>'status', (t->>'failures')::integer, t->>'message'
        from jsonb_array_elements($2::jsonb) t
        on conflict (run_id, test_name) do update set status = excluded.status,
          failures = excluded.failures, message = excluded.message`,
      params: [runId, JSON.stringify(tests)],
    });
  }

  /** Stores where this run's export went. */
  recordExport(
    runId: string,
    hdfsDir: string,
    tables: Record<string, number>,
  ): Promise<void> {
    const total = Object.values(tables).reduce((a, b) => a + b, 0);
    return this.#enqueue({
      what: "export record",
      sql: `insert into ops.exports (run_id, hdfs_dir, tables, total_rows)
        values ($1, $2, $3, $4) on conflict (run_id) do update set
        hdfs_dir = excluded.hdfs_dir, tables = excluded.tables, total_rows = excluded.total_rows`,
      params: [runId, hdfsDir, JSON.stringify(tables), total],
    });
  }

  /** Closes the run row. */
  finishRun(runId: string, end: RunEnd): Promise<void> {
    return this.#enqueue({
      what: "run end",
      sql: `update ops.dag_runs set state = $2, ended_at = $3, duration_ms = $4,
          rows_loaded = $5, files_loaded = $6, error = $7, warnings = $8,
          warning_detail = $9 where run_id = $1`,
      params: [
        runId,
        end.state,
        end.endedAt,
        end.durationMs,
        end.rowsLoaded,
        end.filesLoaded,
        end.error ? end.error.slice(0, 4000) : null,
        end.warnings ?? 0,
        end.warningDetail ? JSON.stringify(end.warningDetail) : null,
      ],
    });
  }

  #enqueue(op: Op): Promise<void> {
    this.#queue.push(op);
    return this.flush();
  }

  /** Sends queued writes in order; stops at the first failure (kept for later). */
  flush(): Promise<void> {
    this.#flushing = this.#flushing.then(async () => {
      while (this.#queue.length) {
        const op = this.#queue[0];
        try {
          await this.#pool.query(op.sql, op.params);
        } catch (err) {
          this.#log.warn("run history write deferred", {
            what: op.what,
            pending: this.#queue.length,
            error: err instanceof Error ? err.message : String(err),
          });
          return;
        }
        this.#queue.shift();
      }
    });
    return this.#flushing;
  }

  /** Flushes, retrying every second until `deadlineMs` passes; true if all written. */
  async drain(deadlineMs = 60_000): Promise<boolean> {
    const end = Date.now() + deadlineMs;
    for (;;) {
      await this.flush();
      if (this.#queue.length === 0) return true;
      if (Date.now() > end) {
        this.#log.error("run history writes lost (Postgres unreachable)", {
          lost: this.#queue.map((o) => o.what),
        });
        return false;
      }
      await delay(1000);
    }
  }
}
