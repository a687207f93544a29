// /proc parsing for the benchmark meters and the soak. Fast; no services.
import assert from "node:assert/strict";
import {
  parseProcStat,
  peakRssBytes,
  ProcessTreeMeter,
  rssBytes,
} from "./proc.ts";

Deno.test("parseProcStat: pid, name, state, ppid, pgid and CPU ticks, even with ') ' in the name", () => {
  // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt
  // cmajflt utime stime cutime cstime ...
  const line = "4242 (my (odd) name) S 17 4240 4242 0 -1 4194304 10 0 0 0 " +
    "150 25 300 5 20 0 3 0 1000 1000000 500";
  assert.deepEqual(parseProcStat(line), {
    pid: 4242,
    comm: "my (odd) name",
    state: "S",
    ppid: 17,
    pgid: 4240,
    cpuTicks: 480,
  });
  const tricky = "77 (a) b (c)) R 1 77 70 0 -1 0 0 0 0 0 1 2 3 4 20 0 1 0 9";
  assert.deepEqual(parseProcStat(tricky), {
    pid: 77,
    comm: "a) b (c)",
    state: "R",
    ppid: 1,
    pgid: 77,
    cpuTicks: 10,
  });
  assert.equal(parseProcStat("garbage"), undefined);
  assert.equal(parseProcStat("12 (x) S notanumber 3"), undefined);
  assert.equal(parseProcStat("12 (x) S 1 12 12 0"), undefined, "cut short");
});

Deno.test("parseProcStat and rssBytes read this process's real /proc entries", () => {
  const s = parseProcStat(Deno.readTextFileSync(`/proc/${Deno.pid}/stat`));
  assert.equal(s?.pid, Deno.pid);
  assert.equal(s?.ppid, Deno.ppid);
  assert.ok(s!.cpuTicks >= 0);
  const rss = rssBytes(Deno.pid)!;
  assert.ok(rss > 10 * 2 ** 20, `rss ${rss}`);
  assert.ok(peakRssBytes(Deno.pid)! >= rss);
  assert.equal(rssBytes(2 ** 22 + 1), undefined, "no such process");
});

Deno.test("ProcessTreeMeter: counts a grandchild's CPU time and memory", async () => {
  // sh → python3 busy for ~0.5 s of CPU while holding ~60 MB.
  const child = new Deno.Command("sh", {
    args: [
      "-c",
      `python3 -c "b = bytearray(60_000_000)
import time
t = time.process_time()
while time.process_time() - t < 0.5: pass" & wait`,
    ],
  }).spawn();
  const meter = new ProcessTreeMeter(child.pid, 50);
  assert.equal((await child.status).code, 0);
  const u = meter.stop();
  assert.ok(u.processes >= 2, `processes ${u.processes}`);
  assert.ok(u.cpuSeconds >= 0.3, `cpu ${u.cpuSeconds}`);
  assert.ok(u.peakRssBytes >= 60_000_000, `rss ${u.peakRssBytes}`);
  assert.ok(u.wallMs >= 500, `wall ${u.wallMs}`);
});
