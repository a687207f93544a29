// Migrations and the read-only BI role, on the real local PostgreSQL.
import assert from "node:assert/strict";
import { createTestEnv } from "../testing/env.ts";
import { withConnection } from "../clients/postgres.ts";
import { migrate, migrationFiles } from "./migrate.ts";

const SCHEMA_SHAPE = `
  select table_schema, table_name, column_name, data_type, is_nullable
  from information_schema.columns
  where table_schema in ('raw', 'monitoring', 'ops', 'analytics')
  order by 1, 2, 3`;

Deno.test("migrations apply twice without change", async () => {
  const t = await createTestEnv("migrate_twice", { noTopic: true });
  try {
    // createTestEnv already migrated once.
    const before = await withConnection(
      t.config.postgres.url,
      (c) => c.query(SCHEMA_SHAPE),
    );
    const second = await migrate(t.config);
    assert.deepEqual(second.applied, []);
    assert.equal(second.unchanged.length, migrationFiles().length);
    const after = await withConnection(
      t.config.postgres.url,
      (c) => c.query(SCHEMA_SHAPE),
    );
    assert.deepEqual(after.rows, before.rows);
    assert.ok(
      before.rows.some((r) =>
        r.table_name === "events" && r.table_schema === "raw"
      ),
    );
  } finally {
    await t.cleanup();
  }
});

Deno.test("the BI role reads the views of schema bi only and can write nothing", async () => {
  const t = await createTestEnv("bi_role", { noTopic: true });
  try {
    await withConnection(t.config.postgres.url, async (c) => {
      await c.query(
        "create table analytics.bi_probe (id int primary key, v text)",
      );
      await c.query("insert into analytics.bi_probe values (1, 'x')");
      // As dbt's bi_view() post-hook does: a view created later by the owner.
      await c.query(
        "create view bi.bi_probe as select * from analytics.bi_probe",
      );
    });
    const biUrl = new URL(t.config.postgres.url);
    biUrl.username = t.config.postgres.biUser;
    biUrl.password = t.config.postgres.biPassword ?? "";
    await withConnection(biUrl.toString(), async (c) => {
      const r = await c.query("select v from bi.bi_probe");
      assert.deepEqual(r.rows, [{ v: "x" }]);
      const statements = [
        "select v from analytics.bi_probe",
        "insert into bi.bi_probe values (2, 'y')",
        "update bi.bi_probe set v = 'z'",
        "delete from bi.bi_probe",
        "create table bi.bi_new (id int)",
        "create table analytics.bi_new (id int)",
        "create temporary table bi_tmp (id int)",
        "select count(*) from raw.events",
        "select count(*) from monitoring.recent_events",
        "select count(*) from ops.dag_runs",
        "create table public.bi_new (id int)",
      ];
      // The role's default_transaction_read_only refuses writes first ...
      for (const sql of statements) {
        await assert.rejects(
          () => c.query(sql),
          /permission denied|read-only transaction/,
          sql,
        );
      }
      // ... but a client may turn it off: the grants alone must still refuse.
      await c.query("set default_transaction_read_only = off");
      for (const sql of statements) {
        await assert.rejects(() => c.query(sql), /permission denied/, sql);
      }
    });
  } finally {
    await t.cleanup();
  }
});
