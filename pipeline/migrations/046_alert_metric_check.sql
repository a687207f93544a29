-- Alert rules watch only metrics the evaluator knows (issue 13). The API and
-- rule files validate the metric with an own-property lookup; this CHECK is
-- the database's own guard, for rows written any other way. Before it, a
-- rule whose metric was `constructor` or `__proto__` passed validation (`in`
-- sees inherited keys) and made every evaluation tick throw.
--
-- The list is METRIC_IDS of pipeline/alerts/rules.ts; a test
-- (pipeline/alerts/isolation_test.ts) fails when the two differ, so a new
-- metric comes with a new migration that replaces this constraint.
--
-- Added NOT VALID, then validated: a database that already holds such a
-- rule still migrates. Its constraint then stays NOT VALID (new and updated
-- rows are checked all the same) and the evaluator records the error on that
-- rule alone until it is fixed or deleted.
alter table monitoring.alert_rules
  drop constraint if exists alert_rules_metric_known;
alter table monitoring.alert_rules
  add constraint alert_rules_metric_known check (metric in (
    'error_rate',
    'failed_order_rate',
    'events_per_minute',
    'latency_p95_ms',
    'consumer_lag_seconds',
    'dead_letters_per_minute',
    'revenue_vs_hour_avg',
    'minutes_since_last_batch'
  )) not valid;
do $$
begin
  alter table monitoring.alert_rules validate constraint alert_rules_metric_known;
exception when check_violation then
  raise warning 'monitoring.alert_rules holds rules with an unknown metric; '
    'alert_rules_metric_known stays NOT VALID until they are fixed or deleted';
end $$;
