// A pooled connection the server drops while idle must not crash the
// process (node-pg reports it as an 'error' event on the pool).
import assert from "node:assert/strict";
import { loadConfig } from "../config.ts";
import { createPool, withConnection } from "./postgres.ts";

Deno.test("an idle pooled connection terminated by the server is survived", async () => {
  const config = loadConfig();
  const pool = createPool(config, {
    max: 1,
    applicationName: "logpipe-pool-test",
  });
  try {
    const pid =
      (await pool.query("select pg_backend_pid() as pid")).rows[0].pid;
    // The connection is idle in the pool now: kill it from another session,
    // as a Postgres restart would.
    await withConnection(config.postgres.url, async (c) => {
      const r = await c.query("select pg_terminate_backend($1) as ok", [pid]);
      assert.equal(r.rows[0].ok, true);
    });
    await new Promise((r) => setTimeout(r, 500));
    // Still alive (an uncaught error would have failed the test run), and
    // the next query gets a fresh connection.
    const again =
      (await pool.query("select pg_backend_pid() as pid")).rows[0].pid;
    assert.notEqual(again, pid);
  } finally {
    await pool.end();
  }
});
