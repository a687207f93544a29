-- Live metrics exactly once per Kafka offset (pipeline/consumer/metrics.ts):
-- per (topic, partition) the last offset the stream consumer counted into
-- monitoring.*, moved in the same transaction as the metric upserts, and the
-- claim of the consumer counting it (owner_epoch goes up by one at every
-- assignment; a consumer whose claim is no longer the current one cannot
-- add counts).
create table if not exists monitoring.consumer_counted (
  topic               text not null,
  kafka_partition     integer not null,
  owner_epoch         bigint not null,
  last_counted_offset bigint not null,
  consumer_id         text,
  updated_at          timestamptz not null default now(),
  primary key (topic, kafka_partition)
);

-- Lag is now measured against what the consumer has consumed (and counted);
-- committed_offset stays the position durable in HDFS, which is up to one
-- rotate interval behind.
alter table monitoring.consumer_lag add column if not exists consumed_offset bigint;
