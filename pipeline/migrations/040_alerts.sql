-- Alerting (issue 8): threshold rules over monitoring.* and ops.*, the
-- evaluator's per-rule state, every state transition, and a notification
-- outbox so a restarted evaluator never re-sends what it already sent.
-- Additive only (`if not exists`), so reruns are no-ops.

-- One row per rule. `id` is a stable slug so rules kept in git (JSON file)
-- and the default set are upserted by id, never duplicated.
create table if not exists monitoring.alert_rules (
  id                text primary key,
  name              text not null,
  description       text not null default '',
  metric            text not null,
  -- {"event_type": [...], "country": [...], "device": [...]} (all optional)
  filter            jsonb not null default '{}',
  window_secs       integer not null check (window_secs > 0),
  comparison        text not null check (comparison in ('>', '>=', '<', '<=')),
  threshold         double precision not null,
  -- Hysteresis: a firing rule resolves only once the value is past this
  -- (below it for > / >=, above it for < / <=). Null = the threshold itself.
  recover_threshold double precision,
  -- Fewer samples (events, orders, ...) than this in the window = no data:
  -- the state is kept, nothing fires on a 1-of-2 error rate.
  min_events        integer not null default 0 check (min_events >= 0),
  -- The condition must hold this long before the rule fires (0 = at once).
  for_secs          integer not null default 0 check (for_secs >= 0),
  severity          text not null check (severity in ('info', 'warning', 'critical')),
  channels          text[] not null default '{slack}',
  -- While firing, notify again every renotify_secs (0 = never).
  renotify_secs     integer not null default 0 check (renotify_secs >= 0),
  -- At most one firing notification per rule per cooldown_secs (flapping).
  cooldown_secs     integer not null default 0 check (cooldown_secs >= 0),
  enabled           boolean not null default true,
  source            text not null default 'api',   -- default | file | api
  version           integer not null default 1,
  created_at        timestamptz not null default now(),
  updated_at        timestamptz not null default now()
);

-- The evaluator's state of each rule (ok | pending | firing).
create table if not exists monitoring.alert_state (
  rule_id              text primary key references monitoring.alert_rules (id) on delete cascade,
  state                text not null default 'ok' check (state in ('ok', 'pending', 'firing')),
  since                timestamptz not null default now(),
  -- Firing episodes of this rule, counted from 1; notifications are keyed by it.
  episode              bigint not null default 0,
  pending_since        timestamptz,
  fired_at             timestamptz,
  resolved_at          timestamptz,
  -- Was this episode's firing notification queued (cooldown may delay it)?
  episode_notified     boolean not null default false,
  last_notified_at     timestamptz,
  -- Last firing notification of any episode (for the cooldown).
  last_fire_notified_at timestamptz,
  notify_seq           integer not null default 0,
  last_value           double precision,
  last_samples         double precision,
  last_evaluated_at    timestamptz,
  last_error           text,
  rule_version         integer
);

-- Every transition, with the value that triggered it. No foreign key: the
-- history outlives a deleted rule.
create table if not exists monitoring.alert_events (
  id          bigserial primary key,
  rule_id     text not null,
  rule_name   text not null,
  episode     bigint not null,
  kind        text not null,   -- pending | firing | renotify | resolved | cleared | disabled
  from_state  text not null,
  to_state    text not null,
  value       double precision,
  threshold   double precision not null,
  comparison  text not null,
  samples     double precision,
  severity    text not null,
  metric      text not null,
  message     text not null,
  at          timestamptz not null default now()
);
create index if not exists alert_events_at_idx on monitoring.alert_events (at desc);
create index if not exists alert_events_rule_idx on monitoring.alert_events (rule_id, at desc);

-- Notification outbox and ledger: written in the same transaction as the
-- transition that causes it, sent afterwards, marked sent. The unique key
-- makes a message for (rule, episode, kind, seq, channel) exist once.
create table if not exists monitoring.alert_notifications (
  id          bigserial primary key,
  rule_id     text not null,
  episode     bigint not null,
  kind        text not null,   -- firing | renotify | resolved
  seq         integer not null,
  channel     text not null,   -- slack | email
  status      text not null default 'pending', -- pending | sent | failed | skipped | expired
  attempts    integer not null default 0,
  payload     jsonb not null,
  created_at  timestamptz not null default now(),
  sent_at     timestamptz,
  error       text,
  unique (rule_id, episode, kind, seq, channel)
);
create index if not exists alert_notifications_pending_idx
  on monitoring.alert_notifications (id) where status = 'pending';

-- Small key/value facts of the alerting feature, e.g. that the default rule
-- set was created once (a default rule a user deleted stays deleted).
create table if not exists monitoring.alert_settings (
  key        text primary key,
  value      jsonb not null,
  updated_at timestamptz not null default now()
);
