#!/bin/sh
# Runs once, when the postgres container initialises an empty volume
# (/docker-entrypoint-initdb.d). The image's superuser (POSTGRES_USER,
# `postgres`) stays the DBA's: the app connects as `logpipe`, an owner role
# that is no superuser and cannot create databases or roles, and BI tools as
# the read-only `logpipe_bi` (pipeline/postgres/migrate.ts grants it the
# masked views of schema `bi`). Passwords come from the environment and are
# quoted by psql (:'var'), never pasted into SQL.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v owner_password="$LOGPIPE_POSTGRES_PASSWORD" \
  -v bi_password="$LOGPIPE_BI_PASSWORD" <<'SQL'
create role logpipe login nosuperuser nocreatedb nocreaterole noreplication
  password :'owner_password';
create role logpipe_bi login nosuperuser nocreatedb nocreaterole noreplication
  password :'bi_password';
create database logpipe owner logpipe;
revoke all on database logpipe from public;
grant connect, temporary on database logpipe to logpipe;
grant connect on database logpipe to logpipe_bi;
\connect logpipe
revoke create on schema public from public;
SQL

# The owner may not manage roles, yet the BI role's limits and its password
# (LOGPIPE_BI_PASSWORD) must follow the app's configuration on every start:
# this function, run with the superuser's rights, does exactly that for
# `logpipe_bi` and nothing else, and only `logpipe` may call it
# (pipeline/postgres/migrate.ts). Names and values are quoted by format().
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname logpipe <<'SQL'
-- logpipe_admin: begin
create schema logpipe_admin;
revoke all on schema logpipe_admin from public;
grant usage on schema logpipe_admin to logpipe;
create function logpipe_admin.apply_bi_role(
  bi_password text, statement_timeout text, connection_limit integer)
returns void language plpgsql security definer set search_path = pg_catalog
as $fn$
begin
  execute format(
    'alter role logpipe_bi with login nocreatedb nocreaterole connection limit %s',
    connection_limit);
  if coalesce(bi_password, '') <> '' then
    execute format('alter role logpipe_bi with password %L', bi_password);
  end if;
  execute format('alter role logpipe_bi set statement_timeout = %L', statement_timeout);
  execute 'alter role logpipe_bi set default_transaction_read_only = on';
end
$fn$;
revoke all on function logpipe_admin.apply_bi_role(text, text, integer) from public;
grant execute on function logpipe_admin.apply_bi_role(text, text, integer) to logpipe;
-- logpipe_admin: end
SQL
