// The batch bench's psql reference run: the owner password never appears
// on psql's command line (readable by every local user), yet psql logs in.
import assert from "node:assert/strict";
import { loadConfig } from "../config.ts";
import { psqlCommand } from "./psql.ts";

Deno.test("psqlCommand: the password is in PGPASSWORD, not in argv", async () => {
  const config = loadConfig();
  const password = decodeURIComponent(new URL(config.postgres.url).password);
  assert.ok(password, "the local owner role has a password");
  const child = psqlCommand(config.postgres.url, [
    "-X",
    "-At",
    "-c",
    "select 'logged in', pg_sleep(1)",
  ]).spawn();
  // What `ps` shows while psql runs.
  await new Promise((r) => setTimeout(r, 200));
  const cmdline = await Deno.readTextFile(`/proc/${child.pid}/cmdline`);
  const out = await child.output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  assert.match(new TextDecoder().decode(out.stdout), /logged in/);
  assert.ok(cmdline.includes(config.postgres.database), cmdline);
  assert.ok(!cmdline.includes(password), "the password is on the command line");
});
