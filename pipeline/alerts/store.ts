/**
 * Postgres access for alerting: rules (CRUD, default seeding, rule-file
 * sync), per-rule state, transitions and the notification outbox. Tables are
 * defined in pipeline/migrations/040_alerts.sql.
 */
import type { AlertRule } from "./rules.ts";
import type { Db } from "./metrics.ts";
import type { RuleState } from "./state_machine.ts";
import { defaultRules } from "./defaults.ts";

/** A stored rule with its bookkeeping columns. */
export interface StoredRule extends AlertRule {
  source: string;
  version: number;
  created_at: Date;
  updated_at: Date;
}

const RULE_COLUMNS =
  `id, name, description, metric, filter, window_secs, comparison, threshold,
   recover_threshold, min_events, for_secs, severity, channels, renotify_secs,
   cooldown_secs, enabled, source, version, created_at, updated_at`;

function ruleValues(r: AlertRule): unknown[] {
  return [
    r.id,
    r.name,
    r.description,
    r.metric,
    JSON.stringify(r.filter),
    r.window_secs,
    r.comparison,
    r.threshold,
    r.recover_threshold,
    r.min_events,
    r.for_secs,
    r.severity,
    r.channels,
    r.renotify_secs,
    r.cooldown_secs,
    r.enabled,
  ];
}

const INSERT_COLUMNS =
  `id, name, description, metric, filter, window_secs, comparison, threshold,
   recover_threshold, min_events, for_secs, severity, channels, renotify_secs,
   cooldown_secs, enabled, source`;
const INSERT_VALUES =
  `$1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, $10, $11, $12, $13::text[], $14, $15, $16, $17`;
const UPDATE_SET = `name = excluded.name, description = excluded.description,
   metric = excluded.metric, filter = excluded.filter,
   window_secs = excluded.window_secs, comparison = excluded.comparison,
   threshold = excluded.threshold, recover_threshold = excluded.recover_threshold,
   min_events = excluded.min_events, for_secs = excluded.for_secs,
   severity = excluded.severity, channels = excluded.channels,
   renotify_secs = excluded.renotify_secs, cooldown_secs = excluded.cooldown_secs,
   enabled = excluded.enabled, source = excluded.source,
   version = monitoring.alert_rules.version + 1, updated_at = now()`;

function normalize(row: Record<string, unknown>): StoredRule {
  return row as unknown as StoredRule;
}

/** All rules, by name. */
export async function listRules(db: Db): Promise<StoredRule[]> {
  const { rows } = await db.query(
    `select ${RULE_COLUMNS} from monitoring.alert_rules order by name, id`,
  );
  return rows.map(normalize);
}

/** One rule, or undefined. */
export async function getRule(
  db: Db,
  id: string,
): Promise<StoredRule | undefined> {
  const { rows } = await db.query(
    `select ${RULE_COLUMNS} from monitoring.alert_rules where id = $1`,
    [id],
  );
  return rows[0] ? normalize(rows[0]) : undefined;
}

/** Inserts a new rule; returns undefined when the id is taken. */
export async function insertRule(
  db: Db,
  rule: AlertRule,
  source = "api",
): Promise<StoredRule | undefined> {
  const { rows } = await db.query(
    `insert into monitoring.alert_rules (${INSERT_COLUMNS})
     values (${INSERT_VALUES})
     on conflict (id) do nothing
     returning ${RULE_COLUMNS}`,
    [...ruleValues(rule), source],
  );
  return rows[0] ? normalize(rows[0]) : undefined;
}

/** Replaces an existing rule (version + 1); undefined when it does not exist. */
export async function updateRule(
  db: Db,
  rule: AlertRule,
  source = "api",
): Promise<StoredRule | undefined> {
  const { rows } = await db.query(
    `update monitoring.alert_rules set
       name = $2, description = $3, metric = $4, filter = $5::jsonb,
       window_secs = $6, comparison = $7, threshold = $8, recover_threshold = $9,
       min_events = $10, for_secs = $11, severity = $12, channels = $13::text[],
       renotify_secs = $14, cooldown_secs = $15, enabled = $16, source = $17,
       version = version + 1, updated_at = now()
     where id = $1
     returning ${RULE_COLUMNS}`,
    [...ruleValues(rule), source],
  );
  return rows[0] ? normalize(rows[0]) : undefined;
}

/** Inserts or replaces a rule (rule files). */
export async function upsertRule(
  db: Db,
  rule: AlertRule,
  source: string,
): Promise<void> {
  await db.query(
    `insert into monitoring.alert_rules (${INSERT_COLUMNS})
     values (${INSERT_VALUES})
     on conflict (id) do update set ${UPDATE_SET}
     where (monitoring.alert_rules.name, monitoring.alert_rules.description,
            monitoring.alert_rules.metric, monitoring.alert_rules.filter,
            monitoring.alert_rules.window_secs, monitoring.alert_rules.comparison,
            monitoring.alert_rules.threshold, monitoring.alert_rules.recover_threshold,
            monitoring.alert_rules.min_events, monitoring.alert_rules.for_secs,
            monitoring.alert_rules.severity, monitoring.alert_rules.channels,
            monitoring.alert_rules.renotify_secs, monitoring.alert_rules.cooldown_secs,
            monitoring.alert_rules.enabled, monitoring.alert_rules.source)
       is distinct from
           (excluded.name, excluded.description, excluded.metric, excluded.filter,
            excluded.window_secs, excluded.comparison, excluded.threshold,
            excluded.recover_threshold, excluded.min_events, excluded.for_secs,
            excluded.severity, excluded.channels, excluded.renotify_secs,
            excluded.cooldown_secs, excluded.enabled, excluded.source)`,
    [...ruleValues(rule), source],
  );
}

/** Deletes a rule (its state goes with it; its history stays). */
export async function deleteRule(db: Db, id: string): Promise<boolean> {
  const { rows } = await db.query(
    "delete from monitoring.alert_rules where id = $1 returning id",
    [id],
  );
  return rows.length > 0;
}

/** Turns a rule on or off. */
export async function setEnabled(
  db: Db,
  id: string,
  enabled: boolean,
): Promise<StoredRule | undefined> {
  const { rows } = await db.query(
    `update monitoring.alert_rules
        set enabled = $2, version = version + 1, updated_at = now()
      where id = $1 returning ${RULE_COLUMNS}`,
    [id, enabled],
  );
  return rows[0] ? normalize(rows[0]) : undefined;
}

/**
 * Creates the default rules once per database (a marker in
 * monitoring.alert_settings), so a default rule someone deleted stays
 * deleted. Returns how many were created.
 */
export async function seedDefaults(db: Db): Promise<number> {
  const { rows } = await db.query(
    `insert into monitoring.alert_settings (key, value)
     values ('defaults_seeded', to_jsonb(now()))
     on conflict (key) do nothing returning key`,
  );
  if (!rows.length) return 0;
  let n = 0;
  for (const rule of defaultRules()) {
    if (await insertRule(db, rule, "default")) n++;
  }
  return n;
}

/**
 * Makes the rules of a rule file the rules with source "file": upserts each
 * (a file rule edited through the API is reset to the file's version) and
 * deletes file rules no longer in the file. Rules created through the API
 * or the defaults are left alone unless the file names their id.
 */
export async function syncRuleFile(
  db: Db,
  rules: AlertRule[],
): Promise<{ upserted: number; deleted: number }> {
  for (const r of rules) await upsertRule(db, r, "file");
  const { rows } = await db.query(
    `delete from monitoring.alert_rules
      where source = 'file' and not (id = any($1::text[])) returning id`,
    [rules.map((r) => r.id)],
  );
  return { upserted: rules.length, deleted: rows.length };
}

// ----------------------------------------------------------------- state ----

interface StateRow {
  rule_id: string;
  state: RuleState["state"];
  since: Date;
  episode: number;
  pending_since: Date | null;
  fired_at: Date | null;
  resolved_at: Date | null;
  episode_notified: boolean;
  last_notified_at: Date | null;
  last_fire_notified_at: Date | null;
  notify_seq: number;
}

/** The stored states of all rules, by rule id. */
export async function loadStates(db: Db): Promise<Map<string, RuleState>> {
  const { rows } = await db.query<StateRow>(
    "select * from monitoring.alert_state",
  );
  return new Map(rows.map((r) => [r.rule_id, {
    state: r.state,
    since: r.since,
    episode: Number(r.episode),
    pendingSince: r.pending_since,
    firedAt: r.fired_at,
    resolvedAt: r.resolved_at,
    episodeNotified: r.episode_notified,
    lastNotifiedAt: r.last_notified_at,
    lastFireNotifiedAt: r.last_fire_notified_at,
    notifySeq: r.notify_seq,
  }]));
}

/**
 * The first episode and notification number for a rule without state: past
 * the highest ever recorded for its id, so a rule deleted and re-created
 * under the same id never reuses a notification key (and never loses a
 * message to the outbox's unique key).
 */
export async function nextCounters(
  db: Db,
  ruleId: string,
): Promise<{ episode: number; seq: number }> {
  const { rows } = await db.query<{ episode: number; seq: number }>(
    `select greatest(
              coalesce((select max(episode) from monitoring.alert_notifications where rule_id = $1), 0),
              coalesce((select max(episode) from monitoring.alert_events where rule_id = $1), 0))::int8
              as episode,
            coalesce((select max(seq) from monitoring.alert_notifications where rule_id = $1), 0)::int8
              as seq`,
    [ruleId],
  );
  return { episode: Number(rows[0].episode), seq: Number(rows[0].seq) };
}

/** Saves a rule's state and the last reading. */
export async function saveState(
  db: Db,
  ruleId: string,
  s: RuleState,
  reading: {
    value: number | null;
    samples: number | null;
    error: string | null;
    version: number;
  },
  now: Date,
): Promise<void> {
  await db.query(
    `insert into monitoring.alert_state (rule_id, state, since, episode, pending_since,
       fired_at, resolved_at, episode_notified, last_notified_at, last_fire_notified_at,
       notify_seq, last_value, last_samples, last_evaluated_at, last_error, rule_version)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
     on conflict (rule_id) do update set
       state = excluded.state, since = excluded.since, episode = excluded.episode,
       pending_since = excluded.pending_since, fired_at = excluded.fired_at,
       resolved_at = excluded.resolved_at, episode_notified = excluded.episode_notified,
       last_notified_at = excluded.last_notified_at,
       last_fire_notified_at = excluded.last_fire_notified_at,
       notify_seq = excluded.notify_seq, last_value = excluded.last_value,
       last_samples = excluded.last_samples, last_evaluated_at = excluded.last_evaluated_at,
       last_error = excluded.last_error, rule_version = excluded.rule_version`,
    [
      ruleId,
      s.state,
      s.since,
      s.episode,
      s.pendingSince,
      s.firedAt,
      s.resolvedAt,
      s.episodeNotified,
      s.lastNotifiedAt,
      s.lastFireNotifiedAt,
      s.notifySeq,
      reading.value,
      reading.samples,
      now,
      reading.error,
      reading.version,
    ],
  );
}

/** One recorded transition. */
export interface AlertEventRow {
  rule_id: string;
  rule_name: string;
  episode: number;
  kind: string;
  from_state: string;
  to_state: string;
  value: number | null;
  threshold: number;
  comparison: string;
  samples: number | null;
  severity: string;
  metric: string;
  message: string;
  at: Date;
}

/** Records a transition. */
export async function insertEvent(db: Db, e: AlertEventRow): Promise<void> {
  await db.query(
    `insert into monitoring.alert_events (rule_id, rule_name, episode, kind, from_state,
       to_state, value, threshold, comparison, samples, severity, metric, message, at)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
    [
      e.rule_id,
      e.rule_name,
      e.episode,
      e.kind,
      e.from_state,
      e.to_state,
      e.value,
      e.threshold,
      e.comparison,
      e.samples,
      e.severity,
      e.metric,
      e.message,
      e.at,
    ],
  );
}

/** Queues a notification (once per rule, episode, kind, seq and channel). */
export async function enqueueNotification(
  db: Db,
  n: {
    ruleId: string;
    episode: number;
    kind: string;
    seq: number;
    channel: string;
    payload: unknown;
  },
): Promise<void> {
  await db.query(
    `insert into monitoring.alert_notifications (rule_id, episode, kind, seq, channel, payload)
     values ($1, $2, $3, $4, $5, $6::jsonb)
     on conflict (rule_id, episode, kind, seq, channel) do nothing`,
    [n.ruleId, n.episode, n.kind, n.seq, n.channel, JSON.stringify(n.payload)],
  );
}

// ------------------------------------------------------- for the API ----

/** Rules with their live state (for the site). */
export async function rulesWithState(db: Db): Promise<unknown[]> {
  const { rows } = await db.query(
    `select r.id, r.name, r.description, r.metric, r.filter, r.window_secs, r.comparison,
            r.threshold, r.recover_threshold, r.min_events, r.for_secs, r.severity,
            r.channels, r.renotify_secs, r.cooldown_secs, r.enabled, r.source, r.version,
            r.created_at, r.updated_at,
            coalesce(s.state, 'ok') as state, s.since, s.episode, s.fired_at, s.resolved_at,
            s.last_value, s.last_samples, s.last_evaluated_at, s.last_error, s.last_notified_at
       from monitoring.alert_rules r
       left join monitoring.alert_state s on s.rule_id = r.id
      order by case coalesce(s.state, 'ok') when 'firing' then 0 when 'pending' then 1 else 2 end,
               r.name, r.id`,
  );
  return rows;
}

/** Firing alerts, newest first. */
export async function firingAlerts(db: Db): Promise<unknown[]> {
  const { rows } = await db.query(
    `select r.id, r.name, r.metric, r.comparison, r.threshold, r.severity, r.window_secs,
            r.filter, s.episode, s.fired_at, s.since, s.last_value, s.last_samples,
            s.last_evaluated_at, s.last_notified_at
       from monitoring.alert_state s
       join monitoring.alert_rules r on r.id = s.rule_id
      where s.state = 'firing' and r.enabled
      order by case r.severity when 'critical' then 0 when 'warning' then 1 else 2 end,
               s.fired_at desc`,
  );
  return rows;
}

/** The newest transitions (optionally of one rule). */
export async function recentEvents(
  db: Db,
  limit: number,
  ruleId?: string,
): Promise<unknown[]> {
  const { rows } = await db.query(
    `select id, rule_id, rule_name, episode, kind, from_state, to_state, value, threshold,
            comparison, samples, severity, metric, message, at
       from monitoring.alert_events
      where ($2::text is null or rule_id = $2)
      order by at desc, id desc limit $1`,
    [limit, ruleId ?? null],
  );
  return rows;
}
