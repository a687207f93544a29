/**
 * Pids are trusted only with their identity (boot and start time): a pid
 * file, up.json or postmaster.pid that names a pid now used by another
 * process (after a reboot, say) never gets that process stopped. Also the
 * private state folders, secret files and log rotation.
 */
import assert from "node:assert/strict";
import { loadConfig } from "../config.ts";
import { rotateLog } from "../log.ts";
import { ensureDirs, servicesDown } from "./manager.ts";
import { pidFile, servicePaths, writePrivateFile } from "./paths.ts";
import { postgresPid } from "./postgres.ts";
import {
  bootId,
  isAlive,
  pidFileText,
  processIdentity,
  processStartedAtMs,
  readLivePid,
  readLiveProcessRecord,
  spawnDetached,
  stopProcess,
  writeProcessRecord,
} from "./process.ts";

/** A bystander: some unrelated process whose pid a stale record names. */
function bystander(): Deno.ChildProcess {
  return new Deno.Command("sleep", { args: ["60"] }).spawn();
}

const HOUR_AGO = new Date(Date.now() - 3600_000);

Deno.test("pid files: identity recorded, a reused pid is not trusted", async () => {
  const dir = await Deno.makeTempDir({ prefix: "logpipe-pid-" });
  const other = bystander();
  try {
    const pid = await spawnDetached({
      cmd: ["sleep", "60"],
      logFile: `${dir}/sleep.log`,
      pidFile: `${dir}/sleep.pid`,
    });
    assert.match(
      await Deno.readTextFile(`${dir}/sleep.pid`),
      new RegExp(`^${pid}\\nboot=${bootId()} start=\\d+\\n$`),
    );
    assert.equal(readLivePid(`${dir}/sleep.pid`), pid);

    // The bystander's pid, recorded for a process that started earlier,
    // or in another boot: both are someone else's process now.
    const id = processIdentity(other.pid)!;
    const f = `${dir}/stale.pid`;
    await Deno.writeTextFile(f, pidFileText({ ...id, start: id.start - 1 }));
    assert.equal(readLivePid(f), undefined);
    await Deno.writeTextFile(f, pidFileText({ ...id, boot: "another-boot" }));
    assert.equal(readLivePid(f), undefined);
    await Deno.writeTextFile(f, pidFileText(id));
    assert.equal(readLivePid(f), other.pid);
    // A file from before identities (the pid alone) counts only for a
    // process that already ran when it was written.
    await Deno.writeTextFile(f, `${other.pid}\n`);
    assert.equal(readLivePid(f), other.pid);
    await Deno.utime(f, HOUR_AGO, HOUR_AGO);
    assert.equal(readLivePid(f), undefined);
    await stopProcess(pid);
    assert.equal(readLivePid(`${dir}/sleep.pid`), undefined);
  } finally {
    other.kill("SIGKILL");
    await other.status;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("services down leaves alone a process whose pid a stale pid file names", async () => {
  const home = await Deno.makeTempDir({ prefix: "logpipe-home-" });
  const other = bystander();
  try {
    const config = loadConfig({
      LOGPIPE_HOME: home,
      LOGPIPE_PORT_OFFSET: "9000",
    });
    ensureDirs(config);
    // Written an hour ago, before the bystander started (a reboot since).
    for (const name of ["kafka", "namenode", "datanode"]) {
      await Deno.writeTextFile(pidFile(config, name), `${other.pid}\n`);
      await Deno.utime(pidFile(config, name), HOUR_AGO, HOUR_AGO);
    }
    await servicesDown({ config });
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(isAlive(other.pid), "services down killed an unrelated process");
  } finally {
    other.kill("SIGKILL");
    await other.status;
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("postmaster.pid is trusted only for the process that wrote it", async () => {
  const home = await Deno.makeTempDir({ prefix: "logpipe-home-" });
  const other = bystander();
  try {
    const config = { localDir: home };
    const data = `${servicePaths(config).postgres.dir}/data`;
    await Deno.mkdir(data, { recursive: true });
    const started = Math.round(processStartedAtMs(other.pid)! / 1000);
    const write = (startSecs: number) =>
      Deno.writeTextFile(
        `${data}/postmaster.pid`,
        `${other.pid}\n${data}\n${startSecs}\n5433\n`,
      );
    await write(started);
    assert.equal(postgresPid(config), other.pid);
    await write(started - 3600); // a postmaster of an hour ago, since gone
    assert.equal(postgresPid(config), undefined);
  } finally {
    other.kill("SIGKILL");
    await other.status;
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("up.json: identities recorded; reused pids are not orphans to stop", async () => {
  const dir = await Deno.makeTempDir({ prefix: "logpipe-up-" });
  const child = bystander();
  const other = bystander();
  try {
    const file = `${dir}/up.json`;
    writeProcessRecord(file, Deno.pid, [child.pid]);
    assert.deepEqual(readLiveProcessRecord(file), {
      up: Deno.pid,
      children: [child.pid],
    });
    assert.equal((await Deno.stat(file)).mode! & 0o777, 0o600);
    // A record from before a reboot: other's pid, another boot.
    const id = processIdentity(other.pid)!;
    await Deno.writeTextFile(
      file,
      JSON.stringify({
        up: { ...id, boot: "another-boot" },
        children: [{ ...id, start: id.start - 5 }],
      }),
    );
    assert.deepEqual(readLiveProcessRecord(file), {
      up: undefined,
      children: [],
    });
    // The old format (bare pids), written before the bystander started.
    await Deno.writeTextFile(
      file,
      JSON.stringify({ pid: other.pid, children: [other.pid] }),
    );
    await Deno.utime(file, HOUR_AGO, HOUR_AGO);
    assert.deepEqual(readLiveProcessRecord(file), {
      up: undefined,
      children: [],
    });
  } finally {
    for (const p of [child, other]) {
      p.kill("SIGKILL");
      await p.status;
    }
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("state folders are private; secrets are created 600 and replaced atomically", async () => {
  const home = await Deno.makeTempDir({ prefix: "logpipe-home-" });
  try {
    await Deno.chmod(home, 0o755);
    const config = { localDir: home };
    ensureDirs(config);
    const p = servicePaths(config);
    const mode = async (path: string) => (await Deno.stat(path)).mode! & 0o777;
    // As root the folders Postgres must cross are traverse-only for its
    // group; otherwise owner-only.
    const shared = Deno.uid() === 0 ? [0o710, 0o711] : [0o700];
    for (const d of [p.root, p.logs, p.postgres.dir]) {
      assert.ok(shared.includes(await mode(d)), `${d}: ${await mode(d)}`);
    }
    assert.equal(await mode(p.run), 0o700);

    const secret = `${p.postgres.dir}/x.password`;
    await Deno.writeTextFile(secret, "old\n", { mode: 0o644 });
    await Deno.chmod(secret, 0o644);
    const before = (await Deno.stat(secret)).ino;
    writePrivateFile(secret, "new\n");
    assert.equal(await mode(secret), 0o600);
    assert.equal(await Deno.readTextFile(secret), "new\n");
    assert.notEqual(
      (await Deno.stat(secret)).ino,
      before,
      "rewritten in place",
    );
    const leftovers = [...Deno.readDirSync(p.postgres.dir)].filter((e) =>
      e.name.endsWith(".tmp")
    );
    assert.deepEqual(leftovers, []);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("logs rotate by size while their writer keeps appending", async () => {
  const dir = await Deno.makeTempDir({ prefix: "logpipe-logs-" });
  try {
    const path = `${dir}/component.log`;
    // A writer like the services' (sh >>): append mode, never reopened.
    const writer = await Deno.open(path, { create: true, append: true });
    const enc = new TextEncoder();
    const policy = { maxBytes: 1000, keep: 2 };
    for (let round = 1; round <= 4; round++) {
      await writer.write(enc.encode(`round ${round}\n`.repeat(200)));
      assert.ok(rotateLog(path, policy), `round ${round} rotated`);
    }
    await writer.write(enc.encode("after\n"));
    writer.close();
    // The live file starts afresh (no hole of zeros where the old data was).
    assert.equal(await Deno.readTextFile(path), "after\n");
    assert.match(await Deno.readTextFile(`${path}.1`), /^round 4\n/);
    assert.match(await Deno.readTextFile(`${path}.2`), /^round 3\n/);
    const files = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.deepEqual(files, [
      "component.log",
      "component.log.1",
      "component.log.2",
    ]);
    assert.equal(rotateLog(path, policy), false, "small files stay");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
