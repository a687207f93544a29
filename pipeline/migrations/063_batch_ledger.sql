-- Batch (issues 12 + 13): the load ledger tracks Kafka coordinates, not file
-- names, so compacted files are never reloaded; the raw-zone listing keeps
-- per-hour-folder state so it grows with new data only. Additive and
-- idempotent, so reruns are no-ops.

-- The hour folder a ledger row's file lives in (start of the event hour).
-- Files of one (topic, partition, hour folder) never overlap in offsets, so
-- (topic, partition, event_hour, [first_offset, last_offset]) names the rows
-- of a file whatever the file is called now (a compaction renames them).
alter table raw.load_ledger add column if not exists event_hour timestamptz;
update raw.load_ledger
   set event_hour = (m[1] || ' ' || m[2] || ':00:00+00')::timestamptz
  from (select path as p,
               regexp_match(path, 'event_date=(\d{4}-\d{2}-\d{2})/event_hour=(\d{2})/') as m
          from raw.load_ledger where event_hour is null) x
 where path = x.p and x.m is not null;
-- loaded: its rows are accounted for (raw.events, raw.duplicates or the
-- quarantine); quarantined: the whole file was refused (see raw.quarantine).
alter table raw.load_ledger add column if not exists status text not null default 'loaded';
-- What the load did with the file's rows (at load time; row_count = the sum).
alter table raw.load_ledger add column if not exists rows_loaded integer;
update raw.load_ledger set rows_loaded = row_count where rows_loaded is null;
alter table raw.load_ledger add column if not exists rows_duplicate integer not null default 0;
alter table raw.load_ledger add column if not exists rows_quarantined integer not null default 0;
-- Rows whose Kafka coordinates were already accounted for by an earlier load
-- (a compacted file that also holds not-yet-loaded late rows).
alter table raw.load_ledger add column if not exists rows_already_loaded integer not null default 0;
-- How many consumer files this row stands for (> 1 after a compaction).
alter table raw.load_ledger add column if not exists merged_files integer not null default 1;

-- Overlap and coverage lookups: one index range per (topic, partition, hour).
create index if not exists load_ledger_coords_idx
  on raw.load_ledger (kafka_topic, kafka_partition, event_hour, first_offset);
-- The listing watermark: max(event_hour).
create index if not exists load_ledger_event_hour_idx on raw.load_ledger (event_hour);

-- One Kafka record is one row: the loader checks coordinates as well as
-- event_id, so a record seen again (a compacted file, an overlapping file) is
-- never loaded twice, and different content at the same coordinates is refused.
create unique index if not exists events_kafka_coords_idx
  on raw.events (kafka_topic, kafka_partition, kafka_offset);

-- The raw zone's hour folders as the batch last saw them. A folder older than
-- the listing window is listed again only when its HDFS modification time
-- changed (a late file was added, a compaction ran), so a run lists what is
-- new, not the whole history. needs_compaction: some (topic, partition) has
-- more than one file there.
create table if not exists raw.raw_hours (
  hour_start       timestamptz primary key,
  -- The folder's HDFS modification time (ms) when every file in it was
  -- loaded; null = list it again next run.
  settled_mtime    bigint,
  files            integer not null default 0,
  needs_compaction boolean not null default false,
  listed_at        timestamptz not null default now(),
  compacted_at     timestamptz
);
create index if not exists raw_hours_compaction_idx
  on raw.raw_hours (hour_start) where needs_compaction;

-- Runs that succeeded but set data aside (quarantine) say how much.
alter table ops.dag_runs add column if not exists warnings integer not null default 0;
alter table ops.dag_runs add column if not exists warning_detail jsonb;
