-- Offset ranges the stream consumer did not read (pipeline/consumer/partitions.ts
-- SkippedRange): deleted by retention before they were read, missing between
-- two records, or left behind by --reset-to-earliest when HDFS was ahead of
-- Kafka's log. Logged by the consumer too; alert rules watch skipped_offsets.
create table if not exists monitoring.skipped_offsets (
  id              bigserial primary key,
  topic           text not null,
  kafka_partition integer not null,
  from_offset     bigint not null,
  to_offset       bigint not null,  -- exclusive
  records         bigint generated always as (to_offset - from_offset) stored,
  reason          text not null check (reason in ('retention', 'gap', 'position_reset')),
  detail          text,
  consumer_id     text,
  detected_at     timestamptz not null default now()
);
create index if not exists skipped_offsets_detected_idx
  on monitoring.skipped_offsets (detected_at);
