-- Batch (issue 5) additions to raw.load_ledger and ops.*, on top of 010_raw.sql
-- and 030_ops.sql. Additive only, so reruns are no-ops.

-- Which run validated a loaded file (null = loaded, not yet validated). The
-- validate task checks every unvalidated file, so a file loaded by a run that
-- failed validation is checked again by the next run instead of slipping by.
alter table raw.load_ledger add column if not exists validated_by text;
create index if not exists load_ledger_unvalidated_idx
  on raw.load_ledger (path) where validated_by is null;
create index if not exists load_ledger_run_idx on raw.load_ledger (run_id);

-- Task grid: look up a run's tasks in order.
create index if not exists task_runs_run_idx on ops.task_runs (run_id, started_at);

-- Exports written by the batch (one row per run that exported): where the
-- version lives in HDFS, which tables and how many rows. The site can show it.
create table if not exists ops.exports (
  run_id      text primary key references ops.dag_runs (run_id) on delete cascade,
  hdfs_dir    text not null,
  tables      jsonb not null,
  total_rows  bigint not null,
  exported_at timestamptz not null default now()
);
