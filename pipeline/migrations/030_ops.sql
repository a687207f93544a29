-- ops: the batch's run history (Deno.cron persists nothing), shown on the
-- site as a grid like Airflow's.
create table if not exists ops.dag_runs (
  run_id       text primary key,
  dag_id       text not null,
  trigger      text not null,            -- schedule | manual | backfill
  state        text not null,            -- running | success | failed
  started_at   timestamptz not null,
  ended_at     timestamptz,
  duration_ms  bigint,
  rows_loaded  bigint not null default 0,
  files_loaded integer not null default 0,
  params       jsonb not null default '{}',
  error        text
);
create index if not exists dag_runs_started_idx on ops.dag_runs (started_at desc);

create table if not exists ops.task_runs (
  run_id      text not null references ops.dag_runs (run_id) on delete cascade,
  task_group  text not null,
  task_id     text not null,
  try_number  integer not null,
  state       text not null,              -- running | success | failed | skipped | up_for_retry
  started_at  timestamptz not null,
  ended_at    timestamptz,
  duration_ms bigint,
  rows        bigint,
  detail      jsonb not null default '{}',
  error       text,
  primary key (run_id, task_id, try_number)
);

-- dbt test results of each run (name, status, failures), for the site.
create table if not exists ops.dbt_test_results (
  run_id     text not null references ops.dag_runs (run_id) on delete cascade,
  test_name  text not null,
  status     text not null,
  failures   integer,
  message    text,
  primary key (run_id, test_name)
);
