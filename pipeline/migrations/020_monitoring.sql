-- monitoring: live metrics the stream consumer upserts every few seconds
-- (never per event) and the API serves to the live pages.

-- Counts per 10-second bucket and dimension combination. Old buckets are
-- rolled up to 1-minute buckets after an hour and deleted after 7 days.
create table if not exists monitoring.event_counts (
  bucket        timestamptz not null,
  bucket_secs   integer not null default 10,
  event_type    text not null,
  geo_country   text not null,
  device_type   text not null,
  level         text not null,
  events        bigint not null default 0,
  orders        bigint not null default 0,
  failed_orders bigint not null default 0,
  revenue       numeric(14, 2) not null default 0,
  primary key (bucket, event_type, geo_country, device_type, level)
);

-- Per bucket: throughput in/out, processing latency (event_ts -> committed)
-- percentiles, files and bytes written.
create table if not exists monitoring.consumer_stats (
  bucket          timestamptz not null,
  consumer_id     text not null,
  records_in      bigint not null default 0,
  events_out      bigint not null default 0,
  dead_letters    bigint not null default 0,
  files_written   bigint not null default 0,
  bytes_written   bigint not null default 0,
  latency_p50_ms  double precision,
  latency_p95_ms  double precision,
  latency_p99_ms  double precision,
  primary key (bucket, consumer_id)
);

-- Latest lag per partition (offsets and seconds), upserted.
create table if not exists monitoring.consumer_lag (
  topic            text not null,
  kafka_partition  integer not null,
  committed_offset bigint not null,
  end_offset       bigint not null,
  lag_offsets      bigint not null,
  lag_seconds      double precision not null,
  consumer_id      text,
  updated_at       timestamptz not null default now(),
  primary key (topic, kafka_partition)
);

create table if not exists monitoring.dead_letter_counts (
  bucket  timestamptz not null,
  reason  text not null,
  records bigint not null default 0,
  primary key (bucket, reason)
);

-- The most recent events, flattened, for the live feed; bounded (the
-- consumer trims it to the newest 1,000 rows).
create table if not exists monitoring.recent_events (
  event_id         text primary key,
  event_ts         timestamptz not null,
  event_type       text not null,
  level            text not null,
  service          text not null,
  user_id          text not null,
  session_id       text not null,
  device_type      text not null,
  geo_country      text not null,
  geo_city         text not null,
  response_time_ms integer not null,
  product_id       text,
  order_id         text,
  amount           numeric(12, 2),
  search_query     text,
  error_code       text,
  event_json       jsonb not null,
  kafka_partition  integer not null,
  kafka_offset     bigint not null,
  committed_at     timestamptz not null default now()
);
create index if not exists recent_events_ts_idx on monitoring.recent_events (event_ts desc);

-- Heartbeat of each running component (consumer, producer, batch, api).
create table if not exists monitoring.components (
  component   text not null,
  instance_id text not null,
  state       text not null,
  detail      jsonb not null default '{}',
  started_at  timestamptz not null,
  updated_at  timestamptz not null default now(),
  primary key (component, instance_id)
);
