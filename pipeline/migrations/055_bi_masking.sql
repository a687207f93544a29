-- What the read-only BI role reads: schema `bi`, one view per dbt star and
-- report model (dims, facts, marts), created by dbt's bi_view() post-hook in
-- the same transaction that builds the model. The views mask personal data
-- in the warehouse, whatever tool reads them: e-mail addresses are masked
-- (first letter and domain) and street addresses are null, unless
-- ops.bi_policy says 'full' (LOGPIPE_BI_PII=full, written by migrate on every
-- start). Views run with their owner's privileges, so the BI role needs no
-- access to `analytics` or `ops`, and the policy takes effect at once, with
-- no dbt run.
create schema if not exists bi;
comment on schema bi is
  'Masked views of the analytics star schema and report marts; the only schema the read-only BI role sees.';

create table if not exists ops.bi_policy (
  singleton  boolean primary key default true check (singleton),
  pii        text not null default 'masked' check (pii in ('masked', 'full')),
  updated_at timestamptz not null default now()
);
insert into ops.bi_policy (singleton) values (true) on conflict do nothing;
