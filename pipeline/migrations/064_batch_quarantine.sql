-- Batch (issue 13): no single record stops the batch. Duplicated event_ids
-- are recorded (not loaded), data Postgres refuses is set aside in a
-- quarantine with its reason, and every other row still loads. Additive and
-- idempotent.

-- One row per copy of an event that was NOT loaded because the same event_id
-- is in raw.events from other Kafka coordinates (the first by coordinates is
-- kept). exact: same payload; conflicting: different payload (both kept here).
create table if not exists raw.duplicates (
  kafka_topic     text not null,
  kafka_partition integer not null,
  kafka_offset    bigint not null,
  event_id        text not null,
  kind            text not null check (kind in ('exact', 'conflicting')),
  -- The copy in raw.events.
  kept_topic      text not null,
  kept_partition  integer not null,
  kept_offset     bigint not null,
  -- Hour folder of the raw-zone file this copy came from.
  event_hour      timestamptz not null,
  source_file     text not null,
  -- This copy's row and the kept copy's row (flat columns, as JSON).
  payload         jsonb not null,
  kept_payload    jsonb not null,
  run_id          text not null,
  recorded_at     timestamptz not null default now(),
  primary key (kafka_topic, kafka_partition, kafka_offset)
);
create index if not exists duplicates_event_id_idx on raw.duplicates (event_id);
create index if not exists duplicates_hour_idx on raw.duplicates (event_hour);

-- What the batch set aside instead of failing: a row (scope 'row') or a
-- whole file (scope 'file'), with the reason, the Postgres SQLSTATE when
-- Postgres refused it, the Kafka coordinates, the row as JSON text (escaped,
-- so text Postgres cannot store, like U+0000, is kept) and where its HDFS
-- copy is. `deno task batch --reload-quarantine` loads rows again after a
-- fix (status 'reloaded').
create table if not exists raw.quarantine (
  id                 bigserial primary key,
  scope              text not null check (scope in ('row', 'file')),
  reason             text not null,
  sqlstate           text,
  detail             text not null,
  source_path        text not null,
  kafka_topic        text not null,
  kafka_partition    integer not null,
  first_offset       bigint not null,
  last_offset        bigint not null,
  event_hour         timestamptz not null,
  event_id           text,
  row_json           text,
  hdfs_path          text,
  run_id             text not null,
  quarantined_at     timestamptz not null default now(),
  status             text not null default 'quarantined'
                     check (status in ('quarantined', 'reloaded')),
  attempts           integer not null default 0,
  last_attempt_at    timestamptz,
  last_attempt_error text,
  -- What the reload did: loaded, a duplicate of …, already in raw.events.
  resolution         text,
  reloaded_by        text,
  reloaded_at        timestamptz
);
-- A Kafka record is quarantined at most once.
create unique index if not exists quarantine_row_coords_idx
  on raw.quarantine (kafka_topic, kafka_partition, first_offset) where scope = 'row';
-- A file is set aside at most once (a retry that fails again counts an attempt).
create unique index if not exists quarantine_file_idx
  on raw.quarantine (source_path) where scope = 'file';
create index if not exists quarantine_pending_copy_idx
  on raw.quarantine (id) where hdfs_path is null;
create index if not exists quarantine_status_idx
  on raw.quarantine (status, quarantined_at);
create index if not exists quarantine_hour_idx on raw.quarantine (event_hour);
