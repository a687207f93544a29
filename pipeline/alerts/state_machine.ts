/**
 * The per-rule alert state machine, as a pure function of (rule, previous
 * state, observation, now), so every edge is unit-tested without a clock or
 * a database:
 *
 *   ok ──breach──► pending ──held for_secs──► firing ──recovered──► ok
 *    └───────────breach (for_secs = 0)──────────►┘        (resolved)
 *
 * - Hysteresis: a firing rule resolves only when the value is past the
 *   recover threshold (rules.ts `recovered`), not merely back under the
 *   trigger threshold, so a value hovering at the threshold does not flap.
 * - No data (no value, or fewer samples than min_events) changes nothing:
 *   a quiet minute neither fires nor resolves an alert.
 * - A firing episode notifies once; while it keeps firing it re-notifies
 *   every renotify_secs; it sends one resolved message, only if its firing
 *   message went out. A firing notification waits until cooldown_secs have
 *   passed since the rule's previous one, so a flapping rule notifies at
 *   most once per cooldown.
 */
import { type AlertRule, breaches, metricInfo, recovered } from "./rules.ts";

export type AlertStateName = "ok" | "pending" | "firing";

/** What the evaluator keeps per rule (monitoring.alert_state). */
export interface RuleState {
  state: AlertStateName;
  since: Date;
  /** Firing episodes so far; the current/last one when firing/resolved. */
  episode: number;
  pendingSince: Date | null;
  firedAt: Date | null;
  resolvedAt: Date | null;
  /** Was the current episode's firing notification queued? */
  episodeNotified: boolean;
  lastNotifiedAt: Date | null;
  lastFireNotifiedAt: Date | null;
  /** Running number of notifications of this rule (ledger key part). */
  notifySeq: number;
}

/** A metric reading: value null = no data. */
export interface Observation {
  value: number | null;
  /** What min_events is compared with (events, orders, ...); null if n/a. */
  samples: number | null;
}

export type TransitionKind =
  | "pending"
  | "firing"
  | "renotify"
  | "resolved"
  | "cleared"
  | "disabled";

export interface Transition {
  kind: TransitionKind;
  from: AlertStateName;
  to: AlertStateName;
}

export type NotificationKind = "firing" | "renotify" | "resolved";

export interface NotificationRequest {
  kind: NotificationKind;
  episode: number;
  seq: number;
}

export interface StepResult {
  state: RuleState;
  transitions: Transition[];
  notifications: NotificationRequest[];
  /** True when the observation was not used (no value, too few samples). */
  noData: boolean;
}

/** The state of a rule never evaluated. */
export function initialState(now: Date, episode = 0): RuleState {
  return {
    state: "ok",
    since: now,
    episode,
    pendingSince: null,
    firedAt: null,
    resolvedAt: null,
    episodeNotified: false,
    lastNotifiedAt: null,
    lastFireNotifiedAt: null,
    notifySeq: 0,
  };
}

/** True when the observation cannot be judged (see the module comment). */
export function isNoData(
  rule: Pick<AlertRule, "metric" | "min_events">,
  obs: Observation,
): boolean {
  if (obs.value === null || !Number.isFinite(obs.value)) return true;
  const gated = metricInfo(rule.metric).samples !== null;
  return gated && rule.min_events > 0 && (obs.samples ?? 0) < rule.min_events;
}

/** One evaluation of one rule. Never mutates `prev`. */
export function step(
  rule: AlertRule,
  prev: RuleState,
  obs: Observation,
  now: Date,
): StepResult {
  const s: RuleState = { ...prev };
  const transitions: Transition[] = [];
  const notifications: NotificationRequest[] = [];
  const ms = now.getTime();
  const move = (to: AlertStateName, kind: TransitionKind) => {
    transitions.push({ kind, from: s.state, to });
    if (s.state !== to) s.since = now;
    s.state = to;
  };
  const notify = (kind: NotificationKind) => {
    s.notifySeq += 1;
    notifications.push({ kind, episode: s.episode, seq: s.notifySeq });
    s.lastNotifiedAt = now;
  };
  const resolve = (kind: "resolved" | "disabled") => {
    const wasNotified = s.state === "firing" && s.episodeNotified;
    move("ok", kind);
    s.pendingSince = null;
    s.resolvedAt = now;
    if (wasNotified) notify("resolved");
    s.episodeNotified = false;
  };

  if (!rule.enabled) {
    if (s.state === "firing") resolve("disabled");
    else if (s.state === "pending") {
      move("ok", "disabled");
      s.pendingSince = null;
    }
    return { state: s, transitions, notifications, noData: true };
  }

  const noData = isNoData(rule, obs);
  if (!noData) {
    const v = obs.value!;
    const breach = breaches(rule, v);
    if (s.state === "ok" && breach) {
      if (rule.for_secs > 0) {
        move("pending", "pending");
        s.pendingSince = now;
      } else fire();
    } else if (s.state === "pending") {
      if (!breach) {
        move("ok", "cleared");
        s.pendingSince = null;
      } else if (ms - s.pendingSince!.getTime() >= rule.for_secs * 1000) {
        fire();
      }
    } else if (s.state === "firing" && recovered(rule, v)) {
      resolve("resolved");
    }
  }

  // Notifications of a (still) firing episode.
  if (s.state === "firing") {
    if (!s.episodeNotified) {
      const last = s.lastFireNotifiedAt?.getTime();
      if (last === undefined || ms - last >= rule.cooldown_secs * 1000) {
        s.episodeNotified = true;
        s.lastFireNotifiedAt = now;
        notify("firing");
      }
    } else if (
      rule.renotify_secs > 0 && s.lastNotifiedAt &&
      ms - s.lastNotifiedAt.getTime() >= rule.renotify_secs * 1000 &&
      !transitions.some((t) => t.kind === "firing")
    ) {
      transitions.push({ kind: "renotify", from: "firing", to: "firing" });
      notify("renotify");
    }
  }
  return { state: s, transitions, notifications, noData };

  function fire() {
    s.episode += 1;
    move("firing", "firing");
    s.pendingSince = null;
    s.firedAt = now;
    s.resolvedAt = null;
    s.episodeNotified = false;
  }
}
