// The soak harness's pure parts (/proc parsing is in proc_test.ts): process trees, the JMX
// parser, least squares, the flat/grows verdict, files per closed hour and
// flag validation. Fast; no services.
import assert from "node:assert/strict";
import { UsageError } from "../cli.ts";
import { loadConfig } from "../config.ts";
import {
  componentOfCmdline,
  COMPONENTS,
  environHas,
  FILES_PER_PARTITION_HOUR,
  fitSoak,
  formatSoakReport,
  judgeHourFiles,
  judgeSeries,
  leastSquares,
  parseFsNamesystemJmx,
  processTree,
  type SoakOptions,
  soakOptionsFromFlags,
  soakRequested,
  type SoakSample,
  soakSchedule,
  soakVerdict,
} from "./soak.ts";

Deno.test("processTree follows children and grandchildren, skips zombies and other trees", () => {
  const p = (pid: number, ppid: number, state = "S") => ({
    pid,
    ppid,
    pgid: pid,
    state,
    comm: "x",
  });
  const procs = [
    p(1, 0),
    p(10, 1), // root
    p(11, 10),
    p(12, 10),
    p(13, 12), // grandchild
    p(14, 12, "Z"), // zombie: not counted
    p(20, 1), // another tree
    p(21, 20),
  ];
  assert.deepEqual(processTree(procs, 10).sort((a, b) => a - b), [
    10,
    11,
    12,
    13,
  ]);
  assert.deepEqual(processTree(procs, 20).sort((a, b) => a - b), [20, 21]);
  assert.deepEqual(processTree(procs, 99), [99]);
});

Deno.test("componentOfCmdline names up's components by their task script", () => {
  const cmd = (...a: string[]) => a.join("\0") + "\0";
  assert.equal(
    componentOfCmdline(
      cmd(
        "/usr/bin/deno",
        "run",
        "-A",
        "--v8-flags=--max-old-space-size=192",
        "tasks/consume.ts",
      ),
    ),
    "consumer",
  );
  assert.equal(
    componentOfCmdline(
      cmd("deno", "run", "-A", "tasks/batch.ts", "--schedule"),
    ),
    "batch",
  );
  assert.equal(
    componentOfCmdline(cmd("deno", "run", "-A", "/w/main/tasks/api.ts")),
    "api",
  );
  assert.equal(
    componentOfCmdline(cmd("deno", "run", "-A", "tasks/produce.ts")),
    "producer",
  );
  assert.equal(
    componentOfCmdline(cmd("deno", "run", "-A", "tasks/alerts.ts")),
    "alerts",
  );
  assert.equal(
    componentOfCmdline(cmd("deno", "run", "tasks/up.ts")),
    undefined,
  );
  assert.equal(
    componentOfCmdline(cmd("deno", "run", "tasks/consume.ts.bak")),
    undefined,
  );
});

Deno.test("parseFsNamesystemJmx reads FilesTotal and BlocksTotal", () => {
  const doc = {
    beans: [{
      name: "Hadoop:service=NameNode,name=FSNamesystem",
      FilesTotal: 1234,
      BlocksTotal: 567,
    }],
  };
  assert.deepEqual(parseFsNamesystemJmx(doc), {
    filesTotal: 1234,
    blocksTotal: 567,
  });
  assert.equal(parseFsNamesystemJmx({ beans: [] }), undefined);
  assert.equal(parseFsNamesystemJmx(null), undefined);
  assert.equal(
    parseFsNamesystemJmx({
      beans: [{
        name: "Hadoop:service=NameNode,name=FSNamesystem",
        FilesTotal: "x",
      }],
    }),
    undefined,
  );
});

Deno.test("leastSquares: exact line, noisy line, flat, and too few points", () => {
  const exact = leastSquares([0, 1, 2, 3], [5, 7, 9, 11]);
  assert.equal(exact.slope, 2);
  assert.equal(exact.intercept, 5);
  assert.equal(exact.residualStdev, 0);
  // y = 3 − x with ±1 alternating noise: slope stays near −1.
  const xs = Array.from({ length: 10 }, (_, i) => i);
  const noisy = leastSquares(xs, xs.map((x) => 3 - x + (x % 2 ? 1 : -1)));
  assert.ok(Math.abs(noisy.slope + 1) < 0.1, `slope ${noisy.slope}`);
  assert.ok(noisy.residualStdev > 0.9 && noisy.residualStdev < 1.2);
  assert.equal(leastSquares([1, 1, 1], [2, 3, 4]).slope, 0);
  assert.throws(() => leastSquares([1], [1]), RangeError);
  assert.throws(() => leastSquares([1, 2], [1]), RangeError);
});

Deno.test("judgeSeries: a steady leak grows, noise around a level is flat", () => {
  const hours = Array.from({ length: 12 }, (_, i) => i / 12);
  // 200 MB rising 30 MB over the hour: 15 % > 10 % and far above the noise.
  const leak = judgeSeries(hours, hours.map((h) => 200 + 30 * h), "memory");
  assert.equal(leak.verdict, "grows");
  assert.ok(Math.abs(leak.slopePerHour - 30) < 1e-9);
  // ±8 MB jitter around 200 MB: flat.
  const jitter = judgeSeries(
    hours,
    hours.map((_, i) => 200 + (i % 3 - 1) * 8),
    "memory",
  );
  assert.equal(jitter.verdict, "flat");
  // Growth within 10 % of the mean is flat (5 % over the phase).
  assert.equal(
    judgeSeries(hours, hours.map((h) => 200 + 10 * h), "memory").verdict,
    "flat",
  );
  // A shrinking series is flat.
  assert.equal(
    judgeSeries(hours, hours.map((h) => 300 - 100 * h), "memory").verdict,
    "flat",
  );
  // The floor: lag from 0 to 3,000 records is within 2 s at 2,000 ev/s.
  assert.equal(
    judgeSeries(hours, hours.map((h) => 3000 * h), "lag", 4000).verdict,
    "flat",
  );
  assert.equal(
    judgeSeries(hours, hours.map((h) => 3000 * h), "lag", 0).verdict,
    "grows",
  );
  // Storage is reported, never judged; two samples are too few.
  assert.equal(
    judgeSeries(hours, hours.map((h) => 1e6 * h), "growth").verdict,
    "–",
  );
  assert.equal(
    judgeSeries([0, 1], [1, 100], "memory").verdict,
    "too few samples",
  );
  assert.equal(judgeSeries([], [], "memory").verdict, "too few samples");
});

function sample(
  tMin: number,
  phase: "low" | "high",
  consumerMb: number,
  extra: Partial<SoakSample> = {},
): SoakSample {
  const per = <T>(v: T) =>
    Object.fromEntries(COMPONENTS.map((c) => [c, v])) as Record<
      typeof COMPONENTS[number],
      T
    >;
  return {
    at: new Date(Date.UTC(2026, 11, 1, 10) + tMin * 60_000).toISOString(),
    tMin,
    phase,
    rate: phase === "low" ? 50 : 2000,
    settling: false,
    rss: { ...per(100 * 1024 * 1024), consumer: consumerMb * 1024 * 1024 },
    fds: per(40),
    processes: per(1),
    hdfsFilesTotal: 10 + tMin,
    hdfsBlocksTotal: tMin,
    rawFiles: tMin * 6,
    rawHourFiles: {},
    pgBytes: { "raw.events": 1e6 * tMin, "monitoring.consumer_stats": 8192 },
    topicRecords: 3000 * tMin,
    lagRecords: 10,
    notes: [],
    ...extra,
  };
}

Deno.test("fitSoak fits each stretch apart and leaves settling samples out", () => {
  const samples: SoakSample[] = [];
  // Low: flat 200 MB, but the first two (settling) samples at 50 MB would
  // look like growth if they were fitted.
  for (let t = 0; t <= 30; t++) {
    samples.push(sample(t, "low", t < 2 ? 50 : 200, { settling: t < 2 }));
  }
  // High: a leak of 4 MB per minute from 300 MB (56 MB > 10 % of the mean).
  for (let t = 31; t <= 45; t++) {
    samples.push(sample(t, "high", 300 + 4 * (t - 31)));
  }
  const fits = fitSoak(samples);
  const consumer = (phase: string) =>
    fits.find((f) => f.metric === "RSS consumer" && f.phase === phase)!;
  assert.equal(consumer("low").verdict, "flat");
  assert.equal(consumer("low").n, 29);
  assert.equal(consumer("high").verdict, "grows");
  assert.ok(Math.abs(consumer("high").slopePerHour - 240) < 1e-6);
  const records = fits.find((f) =>
    f.metric === "topic records" && f.phase === "low"
  )!;
  assert.equal(records.verdict, "–");
  assert.ok(Math.abs(records.slopePerHour - 180_000) < 1e-6);
  assert.ok(fits.some((f) => f.metric === "pg raw.events"));

  const v = soakVerdict(fits, []);
  assert.equal(v.memoryFlat, false);
  assert.deepEqual(v.grew, ["RSS consumer (high)"]);
  assert.equal(v.filesPerHourOk, undefined);
  assert.match(v.lines[0], /GROWS \(RSS consumer \(high\)\)/);

  const opts: SoakOptions = {
    lowMinutes: 30,
    lowRate: 50,
    highMinutes: 15,
    highRate: 2000,
    sampleSeconds: 60,
    settleMinutes: 2,
    closedGraceMinutes: 30,
    waitForClosedHour: false,
    portOffset: 4700,
    home: "/tmp/soak",
  };
  const text = formatSoakReport({
    at: samples[0].at,
    options: opts,
    partitions: 6,
    samples,
    fits,
    hours: [],
    verdict: v,
    restarts: { consumer: 1 },
    interrupted: false,
  });
  assert.match(text, /RSS consumer +high/);
  assert.match(text, /low\*/, "settling samples are marked");
  assert.match(text, /Component restarts during the run: consumer 1/);
});

Deno.test("judgeHourFiles: only closed hours are judged, against partitions × the constant", () => {
  const now = new Date("2026-12-01T12:40:00Z");
  const limit = 6 * FILES_PER_PARTITION_HOUR;
  const hours = judgeHourFiles(
    {
      "2026-12-01T10": limit, // closed long ago, at the limit: ok
      "2026-12-01T11": 5000, // ended 12:00, +30 min grace = 12:30: closed, over
      "2026-12-01T12": 9000, // open
    },
    now,
    6,
    30,
  );
  assert.deepEqual(hours.map((h) => [h.hour, h.closed, h.ok]), [
    ["2026-12-01T10", true, true],
    ["2026-12-01T11", true, false],
    ["2026-12-01T12", false, true],
  ]);
  assert.equal(hours[0].limit, limit);
  const v = soakVerdict([], hours);
  assert.equal(v.filesPerHourOk, false);
  assert.match(v.lines[3], /OVER the limit of 12 in 2026-12-01T11 \(5000\)/);
  // With a longer grace hour 11 is still open.
  const later = judgeHourFiles({ "2026-12-01T11": 5000 }, now, 6, 45);
  assert.equal(later[0].closed, false);
  assert.equal(soakVerdict([], later).filesPerHourOk, undefined);
});

Deno.test("soak flags: defaults, validation, and --soak required", () => {
  const shared = loadConfig({ LOGPIPE_HOME: "/x/.local" });
  const d = soakOptionsFromFlags({ soak: true }, shared);
  assert.deepEqual(
    [
      d.lowMinutes,
      d.lowRate,
      d.highMinutes,
      d.highRate,
      d.sampleSeconds,
      d.home,
      d.closedGraceMinutes,
      d.waitForClosedHour,
    ],
    [60, 50, 15, 2000, 60, "/x/.local/soak", 30 + 15, false],
  );
  // The closed-hour grace follows the batch's compaction grace.
  const batch = { ...shared.batch, compactionGraceMinutes: 5 };
  const withGrace = { ...shared, batch };
  assert.equal(
    soakOptionsFromFlags({ soak: true }, withGrace).closedGraceMinutes,
    20,
  );
  const bad = (v: Record<string, string | boolean>, re: RegExp) =>
    assert.throws(
      () => soakOptionsFromFlags({ soak: true, ...v }, shared),
      (e: Error) => e instanceof UsageError && re.test(e.message),
    );
  bad({ "soak-low-minutes": "0" }, /--soak-low-minutes must be between/);
  bad({ "soak-low-rate": "fast" }, /--soak-low-rate must be an integer/);
  bad({ "sample-seconds": "1" }, /--sample-seconds must be between/);
  bad(
    { "soak-low-minutes": "1", "sample-seconds": "90" },
    /must not exceed the low stretch/,
  );
  bad({ "soak-port-offset": "60000" }, /--soak-port-offset must be between/);
  bad({ "soak-home": "/x/.local/" }, /must not be the shared LOGPIPE_HOME/);
  assert.equal(soakRequested({}), false);
  assert.equal(soakRequested({ soak: true }), true);
  assert.throws(
    () => soakRequested({ "sample-seconds": "20" }),
    /--sample-seconds needs --soak/,
  );
  assert.throws(
    () => soakRequested({ soak: true, quick: true }),
    /--soak runs alone: drop --quick/,
  );
});

Deno.test("soakSchedule: samples on each stretch's grid, the rate step at the stretch end, an optional tail", () => {
  const t0 = Date.parse("2026-12-01T10:10:00Z");
  const base = {
    lowMinutes: 4,
    lowRate: 50,
    highMinutes: 2,
    highRate: 2000,
    sampleSeconds: 50,
    closedGraceMinutes: 45,
    waitForClosedHour: false,
  };
  const plan = soakSchedule(base, t0);
  assert.deepEqual(
    plan.stretches.map((s) => [s.phase, s.rate, (s.end - s.start) / 60_000]),
    [["low", 50, 4], ["high", 2000, 2]],
  );
  const at = (p: string) =>
    plan.samples.filter((s) => s.phase === p).map((s) => (s.due - t0) / 1000);
  // 240 s is not a multiple of 50: the last low sample is at 200 s, and the
  // high stretch is sampled from its own start (240 s) on.
  assert.deepEqual(at("low"), [0, 50, 100, 150, 200]);
  assert.deepEqual(at("high"), [290, 340]);
  assert.equal(
    soakSchedule({ ...base, highMinutes: 0 }, t0).stretches.length,
    1,
  );

  // The tail runs at the low rate until hour 10 is closed: 11:00 + 45 min.
  const tail = soakSchedule({ ...base, waitForClosedHour: true }, t0);
  const last = tail.stretches.at(-1)!;
  assert.equal(last.phase, "tail");
  assert.equal(last.rate, 50);
  assert.ok(last.end >= Date.parse("2026-12-01T11:45:00Z"));
  assert.ok(last.end < Date.parse("2026-12-01T11:45:00Z") + 50_000);
  assert.equal(tail.samples.at(-1)!.due, last.end);
  // No tail when the stretches already outlast the closing.
  const long = soakSchedule(
    { ...base, lowMinutes: 120, waitForClosedHour: true },
    t0,
  );
  assert.equal(long.stretches.some((s) => s.phase === "tail"), false);
});

Deno.test("environHas matches a whole KEY=value entry of /proc/<pid>/environ", () => {
  const env =
    "PATH=/usr/bin\0LOGPIPE_HOME=/w/.local/soak\0LOGPIPE_PORT_OFFSET=4700\0";
  assert.equal(environHas(env, "LOGPIPE_HOME=/w/.local/soak"), true);
  assert.equal(environHas(env, "LOGPIPE_HOME=/w/.local"), false);
  assert.equal(environHas(env, "LOGPIPE_HOME=/w/.local/soak2"), false);
  assert.equal(
    environHas(Deno.readTextFileSync(`/proc/${Deno.pid}/environ`), "NOPE=1"),
    false,
  );
});
