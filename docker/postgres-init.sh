#!/bin/sh
# Runs once, when the postgres container initialises an empty volume
# (/docker-entrypoint-initdb.d). The image's superuser (POSTGRES_USER,
# `postgres`) stays the DBA's: the app connects as `logpipe`, an owner role
# that is no superuser and cannot create databases or roles, and BI tools as
# the read-only `logpipe_bi` (pipeline/postgres/migrate.ts grants it the
# `analytics` schema). Passwords come from the environment and are quoted by
# psql (:'var'), never pasted into SQL.
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
