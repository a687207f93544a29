-- raw: what the batch loads from the HDFS raw zone, one row per valid event,
-- with the flattened columns of the Parquet files (pipeline/events/flatten.ts)
-- plus the Kafka coordinates and the file it came from.
create table if not exists raw.events (
  event_id           text primary key,
  schema_version     smallint not null,
  event_type         text not null,
  event_ts           timestamptz not null,
  level              text not null,
  service            text not null,
  user_id            text not null,
  session_id         text not null,
  device_type        text not null,
  geo_country        text not null,
  geo_city           text not null,
  response_time_ms   integer not null,
  -- product_view / add_to_cart / single-product context
  product_id         text,
  quantity           integer,
  unit_price         numeric(12, 2),
  -- orders (purchase, order_complete, order_failed)
  order_id           text,
  amount             numeric(12, 2),
  payment_method     text,
  shipping_method    text,
  shipping_address   text,
  delivery_estimate  date,
  completed_at       timestamptz,
  failed_at          timestamptz,
  failure_reason     text,
  items_json         jsonb,
  -- search
  search_query       text,
  results_count      integer,
  filter_category    text,
  filter_price_range text,
  filter_brand       text,
  searched_at        timestamptz,
  -- error
  error_code         text,
  error_message      text,
  error_at           timestamptz,
  http_status        integer,
  -- lineage: nothing of the original is dropped
  details_json       jsonb not null,
  kafka_topic        text not null,
  kafka_partition    integer not null,
  kafka_offset       bigint not null,
  kafka_timestamp    timestamptz,
  source_file        text not null,
  loaded_at          timestamptz not null default now()
);
create index if not exists events_event_ts_idx on raw.events (event_ts);
create index if not exists events_source_file_idx on raw.events (source_file);

-- One row per raw-zone file loaded; inserted in the same transaction as the
-- file's rows, so a file is loaded exactly once.
create table if not exists raw.load_ledger (
  path            text primary key,
  kafka_topic     text not null,
  kafka_partition integer not null,
  first_offset    bigint not null,
  last_offset     bigint not null,
  row_count       integer not null,
  byte_size       bigint not null,
  checksum        text not null,
  run_id          text not null,
  loaded_at       timestamptz not null default now()
);

-- Catalogs (data/users.json, data/products.json), upserted every batch run.
create table if not exists raw.users (
  user_id     text primary key,
  username    text not null,
  email       text not null,
  full_name   text not null,
  first_name  text not null,
  last_name   text not null,
  sex         text not null,
  age         integer not null,
  country     text not null,
  city        text not null,
  signup_date date not null,
  updated_at  timestamptz not null default now()
);

create table if not exists raw.products (
  product_id  text primary key,
  name        text not null,
  category    text not null,
  subcategory text not null,
  brand       text not null,
  price       numeric(12, 2) not null,
  stock       integer not null,
  rating      numeric(2, 1) not null,
  date_added  date not null,
  weight      text not null,
  description text not null,
  updated_at  timestamptz not null default now()
);
