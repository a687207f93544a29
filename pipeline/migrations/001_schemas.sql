-- The four schemas of DESIGN §4. Roles and grants are applied by
-- pipeline/postgres/migrate.ts because their names come from configuration.
create schema if not exists raw;
create schema if not exists monitoring;
create schema if not exists ops;
create schema if not exists analytics;
