-- Dead-letter redrive (issue 13, `deno task redrive`): one row per dead
-- letter that was re-injected into Kafka, keyed by the dead letter's own
-- Kafka coordinates, so a dead letter is sent again at most once.
--
-- A row is written as 'sending' BEFORE its record goes out and set to 'sent'
-- after Kafka acknowledged it, with the coordinates the record got. A
-- 'sending' row found at the next start is a redrive that stopped between
-- the two: it is settled from Kafka itself, by the origin header of the
-- re-injected records (pipeline/redrive/redrive.ts; the README explains).
create table if not exists ops.redriven (
  dl_topic      text not null,
  dl_partition  integer not null,
  dl_offset     bigint not null,
  -- Why it had been dead-lettered, and when (its Kafka timestamp, else its
  -- dead-letter time), for the site and the audit.
  reason        text not null,
  dl_time       timestamptz,
  event_id      text,
  state         text not null check (state in ('sending', 'sent')),
  run_id        text not null,
  claimed_at    timestamptz not null default now(),
  sent_at       timestamptz,
  -- Where the record was re-injected (set with state 'sent').
  topic         text,
  partition     integer,
  "offset"      bigint,
  primary key (dl_topic, dl_partition, dl_offset),
  check (state = 'sending' or (sent_at is not null and topic is not null
                               and partition is not null and "offset" is not null))
);
create index if not exists redriven_sending_idx
  on ops.redriven (claimed_at) where state = 'sending';
create index if not exists redriven_target_idx
  on ops.redriven (topic, partition, "offset");
