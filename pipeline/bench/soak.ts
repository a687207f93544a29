/**
 * The real-time soak (`deno task bench --soak`): `deno task up` on a private
 * instance of its own, a low-rate stretch and then a high-rate one, sampled
 * every interval, ending with least-squares slopes per metric and a verdict.
 *
 * What runs:
 *  - `deno task up --no-producer`, in its own process group, with its own
 *    LOGPIPE_HOME and LOGPIPE_PORT_OFFSET: its own Kafka, NameNode, DataNode
 *    and Postgres, started on a fresh state folder, so the shared services
 *    others work on are never touched. `up` takes its rate only at start
 *    and its supervisor restarts a stopped producer at that same rate, so the
 *    soak runs the producer itself, launched exactly as `up` launches it
 *    (PRODUCER_RUNTIME, tasks/produce.ts --rate N), and restarts only the
 *    producer at the high rate: consumer, batch, API and alerts keep running
 *    through the step, which is what a soak must watch.
 *  - every interval: RSS and open file descriptors of each component's whole
 *    process tree (from /proc), the NameNode's FilesTotal / BlocksTotal (JMX
 *    FSNamesystem), files in the raw zone and per event-hour folder (WebHDFS
 *    GETCONTENTSUMMARY), Postgres table sizes (pg_total_relation_size of
 *    raw.events, monitoring.*, ops.*), records in the topic and the consumer
 *    group's lag (Kafka admin: end offsets minus committed offsets).
 *  - optionally (--soak-wait-closed-hour) a low-rate tail until the run's
 *    first event hour is closed, so the files per closed hour get judged.
 *  - at the end: SIGINT to up's process group (it stops its components in
 *    order and the services it started), then a check that none of the
 *    instance's services or leftover processes is still running.
 *
 * The verdict: memory, descriptors and lag are "flat" in a phase when the
 * least-squares growth over the phase (slope × fitted span) stays within
 * the noise, max(10 % of the phase mean, 2 × the residual standard
 * deviation, a floor per metric); samples of a phase's first settle minutes
 * (JIT warm-up, heaps and caches filling after a rate step) are shown but
 * not fitted. Storage grows with data by design, so its slopes are reported
 * without a verdict; instead every closed event hour (its end at least
 * `closedGraceMinutes` ago) must hold at most partitions ×
 * FILES_PER_PARTITION_HOUR raw files.
 */
import { intFlag, UsageError } from "../cli.ts";
import {
  type Config,
  DEFAULT_PORTS,
  loadConfig,
  parseDotEnv,
  setting,
} from "../config.ts";
import { createKafka } from "../clients/kafka.ts";
import { createPool, type Pool } from "../clients/postgres.ts";
import { createWebHdfs, type WebHdfs } from "../clients/webhdfs.ts";
import { parseRawPartition } from "../zones/mod.ts";
import { SERVICES, servicesDown } from "../services/manager.ts";
import {
  isAlive,
  portIsFree,
  readLiveProcessRecord,
  sleep,
  stopProcess,
  tailFile,
} from "../services/process.ts";
import { PRODUCER_RUNTIME } from "../runtime.ts";
import { parseProcStat, type ProcStat, rssBytes } from "./proc.ts";
import { delay } from "../async.ts";

/** The components sampled, in table order. */
export const COMPONENTS = [
  "producer",
  "consumer",
  "batch",
  "api",
  "alerts",
  "kafka",
  "namenode",
  "datanode",
  "postgres",
] as const;
export type Component = typeof COMPONENTS[number];

/**
 * Raw files allowed per Kafka partition in a closed event hour: the
 * compacted file plus one file of late events not compacted yet.
 */
export const FILES_PER_PARTITION_HOUR = 2;

/** Settings of one soak run (all validated by {@link soakOptionsFromFlags}). */
export interface SoakOptions {
  lowMinutes: number;
  lowRate: number;
  highMinutes: number;
  highRate: number;
  sampleSeconds: number;
  /** Minutes at the start of each phase shown but not fitted. */
  settleMinutes: number;
  /** An event hour is closed once its end is this many minutes past. */
  closedGraceMinutes: number;
  /** Keep the low rate after the stretches until the first event hour is closed. */
  waitForClosedHour: boolean;
  /** LOGPIPE_PORT_OFFSET of the soak's own instance. */
  portOffset: number;
  /** LOGPIPE_HOME of the soak's own instance (wiped at start). */
  home: string;
}

/** The flags `deno task bench` accepts for the soak (parseCli specs). */
export const SOAK_FLAGS = {
  soak: { type: "boolean" },
  "soak-low-minutes": { type: "string" },
  "soak-low-rate": { type: "string" },
  "soak-high-minutes": { type: "string" },
  "soak-high-rate": { type: "string" },
  "sample-seconds": { type: "string" },
  "soak-settle-minutes": { type: "string" },
  "soak-closed-grace-minutes": { type: "string" },
  "soak-wait-closed-hour": { type: "boolean" },
  "soak-port-offset": { type: "string" },
  "soak-home": { type: "string" },
} as const;

/** Usage lines for the soak flags (part of `deno task bench --help`). */
export const SOAK_USAGE = `
  --soak                       the real-time soak instead of the suite: deno task up
                               on a private instance (own ports and state folder),
                               a low-rate then a high-rate stretch, sampled; prints
                               the samples, slopes per hour and a verdict
  --soak-low-minutes N         low-rate stretch (default 60)
  --soak-low-rate N            events/s in it (default 50)
  --soak-high-minutes N        high-rate stretch after it (default 15; 0 = none)
  --soak-high-rate N           events/s in it (default 2000)
  --sample-seconds N           sampling interval (default 60)
  --soak-settle-minutes N      start of each stretch shown but not fitted (default 5)
  --soak-closed-grace-minutes N  an event hour is judged as closed this long after
                               its end (default: the batch's compaction grace,
                               LOGPIPE_COMPACTION_GRACE_MINUTES, + 15 min for the next
                               scheduled run to compact it)
  --soak-wait-closed-hour      after the stretches, keep the low rate until the run's
                               first event hour is closed, so files per closed hour
                               are judged (a 60 + 15 min run otherwise ends first)
  --soak-port-offset N         LOGPIPE_PORT_OFFSET of the private instance (default 4700)
  --soak-home DIR              its LOGPIPE_HOME (default <LOGPIPE_HOME>/soak; wiped at start)`;

/**
 * Minutes after the compaction grace by which a closed hour must be
 * compacted: one 10-minute batch schedule interval plus 5 for the run.
 */
export const COMPACTION_RUN_ALLOWANCE_MINUTES = 15;

/**
 * The batch's compaction grace from the configuration
 * (LOGPIPE_COMPACTION_GRACE_MINUTES, `config.batch.compactionGraceMinutes`);
 * 30, that setting's default, where the configuration has none yet.
 */
export function compactionGraceMinutes(
  config: Pick<Config, "batch">,
): number {
  // Read by name: the setting arrives with the compaction work (#12).
  const grace = (config.batch as Record<string, unknown>)
    .compactionGraceMinutes;
  return typeof grace === "number" ? grace : 30;
}

/** Validates the soak flags; UsageError (exit 2) names the bad one. */
export function soakOptionsFromFlags(
  values: { [K in keyof typeof SOAK_FLAGS]?: string | boolean },
  config: Pick<Config, "localDir" | "batch">,
): SoakOptions {
  const localDir = config.localDir;
  const str = (k: keyof typeof SOAK_FLAGS) => {
    const v = values[k];
    return typeof v === "string" ? v : undefined;
  };
  const opts: SoakOptions = {
    lowMinutes: intFlag(
      "soak-low-minutes",
      str("soak-low-minutes"),
      60,
      1,
      10_080,
    ),
    lowRate: intFlag("soak-low-rate", str("soak-low-rate"), 50, 1, 100_000),
    highMinutes: intFlag(
      "soak-high-minutes",
      str("soak-high-minutes"),
      15,
      0,
      10_080,
    ),
    highRate: intFlag(
      "soak-high-rate",
      str("soak-high-rate"),
      2_000,
      1,
      100_000,
    ),
    sampleSeconds: intFlag(
      "sample-seconds",
      str("sample-seconds"),
      60,
      5,
      3_600,
    ),
    settleMinutes: intFlag(
      "soak-settle-minutes",
      str("soak-settle-minutes"),
      5,
      0,
      1_440,
    ),
    closedGraceMinutes: intFlag(
      "soak-closed-grace-minutes",
      str("soak-closed-grace-minutes"),
      compactionGraceMinutes(config) + COMPACTION_RUN_ALLOWANCE_MINUTES,
      0,
      1_440,
    ),
    waitForClosedHour: values["soak-wait-closed-hour"] === true,
    // The highest default port (9870) plus the offset must stay a port.
    portOffset: intFlag(
      "soak-port-offset",
      str("soak-port-offset"),
      4_700,
      1,
      65_535 - Math.max(...Object.values(DEFAULT_PORTS)),
    ),
    home: str("soak-home") ?? `${localDir}/soak`,
  };
  if (opts.home.trim() === "") {
    throw new UsageError("--soak-home needs a folder");
  }
  if (!opts.home.startsWith("/")) {
    opts.home = `${Deno.cwd()}/${opts.home}`;
  }
  opts.home = opts.home.replace(/\/+$/, "");
  if (opts.home === localDir.replace(/\/+$/, "")) {
    throw new UsageError(
      "--soak-home must not be the shared LOGPIPE_HOME (the soak wipes it)",
    );
  }
  if (opts.sampleSeconds > opts.lowMinutes * 60) {
    throw new UsageError(
      `--sample-seconds (${opts.sampleSeconds}) must not exceed the low stretch (${
        opts.lowMinutes * 60
      } s)`,
    );
  }
  return opts;
}

// ---------------------------------------------------------------- /proc

/** A pid and every process below it (children, grandchildren, …). */
export function processTree(
  procs: Pick<ProcStat, "pid" | "ppid" | "state">[],
  root: number,
): number[] {
  const children = new Map<number, number[]>();
  for (const p of procs) {
    if (p.state === "Z" || p.state === "X") continue;
    const list = children.get(p.ppid) ?? [];
    list.push(p.pid);
    children.set(p.ppid, list);
  }
  const out: number[] = [];
  const seen = new Set<number>();
  const stack = [root];
  while (stack.length) {
    const pid = stack.pop()!;
    if (seen.has(pid)) continue;
    seen.add(pid);
    out.push(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return out;
}

/**
 * Which `up` component a process is, from its /proc/<pid>/cmdline
 * (NUL-separated arguments): the task script it runs.
 */
export function componentOfCmdline(cmdline: string): Component | undefined {
  const args = cmdline.split("\0");
  const scripts: Record<string, Component> = {
    "tasks/produce.ts": "producer",
    "tasks/consume.ts": "consumer",
    "tasks/batch.ts": "batch",
    "tasks/api.ts": "api",
    "tasks/alerts.ts": "alerts",
  };
  for (const a of args) {
    for (const [script, name] of Object.entries(scripts)) {
      if (a === script || a.endsWith(`/${script}`)) return name;
    }
  }
  return undefined;
}

/** Every live process's stat line. */
function readAllStats(): ProcStat[] {
  const out: ProcStat[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const s = parseProcStat(Deno.readTextFileSync(`/proc/${e.name}/stat`));
      if (s) out.push(s);
    } catch { /* exited meanwhile */ }
  }
  return out;
}

function openFds(pid: number): number | undefined {
  try {
    let n = 0;
    for (const _ of Deno.readDirSync(`/proc/${pid}/fd`)) n++;
    return n;
  } catch {
    return undefined;
  }
}

/** RSS, descriptors and process count of a whole process tree. */
function treeUsage(
  procs: ProcStat[],
  root: number,
): { rss: number; fds: number; processes: number } | undefined {
  let rss = 0, fds = 0, processes = 0;
  for (const pid of processTree(procs, root)) {
    const r = rssBytes(pid);
    if (r === undefined) continue;
    rss += r;
    fds += openFds(pid) ?? 0;
    processes++;
  }
  return processes ? { rss, fds, processes } : undefined;
}

// ---------------------------------------------------------------- HDFS

/** FilesTotal (files + directories) and BlocksTotal from the NameNode's JMX. */
export function parseFsNamesystemJmx(
  doc: unknown,
): { filesTotal: number; blocksTotal: number } | undefined {
  const beans = (doc as { beans?: Array<Record<string, unknown>> })?.beans;
  const bean = beans?.find((b) =>
    b.name === "Hadoop:service=NameNode,name=FSNamesystem"
  );
  const files = bean?.FilesTotal, blocks = bean?.BlocksTotal;
  if (typeof files !== "number" || typeof blocks !== "number") return undefined;
  return { filesTotal: files, blocksTotal: blocks };
}

async function namenodeCounts(config: Config) {
  const res = await fetch(
    `${config.hdfs.webhdfsUrl}/jmx?qry=Hadoop:service=NameNode,name=FSNamesystem`,
    { signal: AbortSignal.timeout(10_000) },
  );
  if (!res.ok) throw new Error(`NameNode JMX: HTTP ${res.status}`);
  const counts = parseFsNamesystemJmx(await res.json());
  if (!counts) throw new Error("NameNode JMX: no FSNamesystem bean");
  return counts;
}

async function fileCount(hdfs: WebHdfs, path: string): Promise<number> {
  const res = await fetch(hdfs.url(path, "GETCONTENTSUMMARY"), {
    signal: AbortSignal.timeout(30_000),
  });
  if (res.status === 404) {
    await res.body?.cancel();
    return 0;
  }
  if (!res.ok) {
    throw new Error(`GETCONTENTSUMMARY ${path}: HTTP ${res.status}`);
  }
  const body = await res.json() as { ContentSummary: { fileCount: number } };
  return body.ContentSummary.fileCount;
}

/** Files in the raw zone, in total and per event-hour folder. */
async function rawZoneFiles(config: Config, hdfs: WebHdfs) {
  const total = await fileCount(hdfs, config.hdfs.rawDir);
  const hours: Record<string, number> = {};
  for (const d of await hdfs.listOrEmpty(config.hdfs.rawDir)) {
    if (d.type !== "DIRECTORY") continue;
    const dateDir = `${config.hdfs.rawDir}/${d.pathSuffix}`;
    for (const h of await hdfs.listOrEmpty(dateDir)) {
      const rel = `${d.pathSuffix}/${h.pathSuffix}`;
      const part = parseRawPartition(rel);
      if (h.type !== "DIRECTORY" || !part) continue;
      hours[hourKey(part.eventDate, part.eventHour)] = await fileCount(
        hdfs,
        `${dateDir}/${h.pathSuffix}`,
      );
    }
  }
  return { total, hours };
}

/** "2026-12-01T10" for an event hour. */
export function hourKey(date: string, hour: number): string {
  return `${date}T${String(hour).padStart(2, "0")}`;
}

// ---------------------------------------------------------------- samples

/** The stretches of a run: low rate, high rate, and the optional low-rate tail. */
export type Phase = "low" | "high" | "tail";

/** A stretch of the run at one rate, [start, end) in epoch ms. */
export interface Stretch {
  phase: Phase;
  rate: number;
  start: number;
  end: number;
}

/** Start of the event hour after the one holding `t` (epoch ms). */
export function nextHourStart(t: number): number {
  return Math.floor(t / 3_600_000) * 3_600_000 + 3_600_000;
}

/**
 * The run's stretches and sample times for a run starting at t0: samples
 * on a fixed grid from each stretch's start (a rate step happens exactly at
 * a stretch's end, not at a sample). With waitForClosedHour, a low-rate
 * tail follows until the run's first event hour counts as closed (its end
 * + closedGraceMinutes), so the files-per-closed-hour check has an hour to
 * judge.
 */
export function soakSchedule(
  opts: Pick<
    SoakOptions,
    | "lowMinutes"
    | "lowRate"
    | "highMinutes"
    | "highRate"
    | "sampleSeconds"
    | "closedGraceMinutes"
    | "waitForClosedHour"
  >,
  t0: number,
): { stretches: Stretch[]; samples: { due: number; phase: Phase }[] } {
  const every = opts.sampleSeconds * 1000;
  const lowEnd = t0 + opts.lowMinutes * 60_000;
  const highEnd = lowEnd + opts.highMinutes * 60_000;
  const stretches: Stretch[] = [
    { phase: "low", rate: opts.lowRate, start: t0, end: lowEnd },
  ];
  if (opts.highMinutes > 0) {
    stretches.push({
      phase: "high",
      rate: opts.highRate,
      start: lowEnd,
      end: highEnd,
    });
  }
  const closedAt = nextHourStart(t0) + opts.closedGraceMinutes * 60_000;
  if (opts.waitForClosedHour && closedAt > highEnd) {
    stretches.push({
      phase: "tail",
      rate: opts.lowRate,
      start: highEnd,
      end: highEnd + Math.ceil((closedAt - highEnd) / every) * every,
    });
  }
  const samples: { due: number; phase: Phase }[] = [];
  for (const [i, st] of stretches.entries()) {
    // The first stretch is sampled at its start too (the baseline).
    for (
      let t = i === 0 ? st.start : st.start + every;
      t <= st.end;
      t += every
    ) {
      samples.push({ due: t, phase: st.phase });
    }
  }
  return { stretches, samples };
}

/** One sample of the running instance. */
export interface SoakSample {
  at: string;
  /** Minutes since the producer first started. */
  tMin: number;
  phase: Phase;
  rate: number;
  /** Left out of the fits (within a phase's settle minutes). */
  settling: boolean;
  /** Bytes resident per component (its whole process tree); null = not running. */
  rss: Record<Component, number | null>;
  fds: Record<Component, number | null>;
  processes: Record<Component, number | null>;
  hdfsFilesTotal: number | null;
  hdfsBlocksTotal: number | null;
  rawFiles: number | null;
  /** Files per raw-zone event-hour folder ("YYYY-MM-DDTHH"). */
  rawHourFiles: Record<string, number>;
  /** pg_total_relation_size per table ("schema.table"). */
  pgBytes: Record<string, number>;
  topicRecords: number | null;
  lagRecords: number | null;
  /** What could not be sampled, and component restarts seen. */
  notes: string[];
}

function perComponent<T>(v: T): Record<Component, T> {
  return Object.fromEntries(COMPONENTS.map((c) => [c, v])) as Record<
    Component,
    T
  >;
}

/** The root pid of each component of the instance, where it runs. */
function componentPids(
  config: Config,
  producerPid: number | undefined,
): Partial<Record<Component, number>> {
  const out: Partial<Record<Component, number>> = {};
  // up's run file: missing until up runs its components.
  const run = readLiveProcessRecord(`${config.localDir}/run/up.json`);
  for (const pid of run.children) {
    try {
      const name = componentOfCmdline(
        Deno.readTextFileSync(`/proc/${pid}/cmdline`),
      );
      if (name && isAlive(pid)) out[name] = pid;
    } catch { /* exited meanwhile */ }
  }
  if (producerPid !== undefined && isAlive(producerPid)) {
    out.producer = producerPid;
  }
  for (const name of ["kafka", "namenode", "datanode", "postgres"] as const) {
    const pid = SERVICES[name].pid(config);
    if (pid !== undefined) out[name] = pid;
  }
  return out;
}

interface Probes {
  config: Config;
  hdfs: WebHdfs;
  pool: Pool;
  admin: ReturnType<ReturnType<typeof createKafka>["admin"]>;
}

async function sampleOnce(
  p: Probes,
  producerPid: number | undefined,
  meta: Pick<SoakSample, "tMin" | "phase" | "rate" | "settling">,
): Promise<SoakSample> {
  const notes: string[] = [];
  const s: SoakSample = {
    at: new Date().toISOString(),
    ...meta,
    rss: perComponent<number | null>(null),
    fds: perComponent<number | null>(null),
    processes: perComponent<number | null>(null),
    hdfsFilesTotal: null,
    hdfsBlocksTotal: null,
    rawFiles: null,
    rawHourFiles: {},
    pgBytes: {},
    topicRecords: null,
    lagRecords: null,
    notes,
  };
  const procs = readAllStats();
  const pids = componentPids(p.config, producerPid);
  for (const c of COMPONENTS) {
    const pid = pids[c];
    const use = pid === undefined ? undefined : treeUsage(procs, pid);
    if (!use) continue;
    s.rss[c] = use.rss;
    s.fds[c] = use.fds;
    s.processes[c] = use.processes;
  }
  const why = (what: string) => (err: unknown) => {
    notes.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
  };
  await Promise.all([
    namenodeCounts(p.config).then((n) => {
      s.hdfsFilesTotal = n.filesTotal;
      s.hdfsBlocksTotal = n.blocksTotal;
    }).catch(why("NameNode JMX")),
    rawZoneFiles(p.config, p.hdfs).then((r) => {
      s.rawFiles = r.total;
      s.rawHourFiles = r.hours;
    }).catch(why("raw zone")),
    p.pool.query(
      `select n.nspname || '.' || c.relname as name,
              pg_total_relation_size(c.oid)::bigint as bytes
         from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where c.relkind in ('r', 'p')
          and (n.nspname in ('monitoring', 'ops')
               or (n.nspname = 'raw' and c.relname = 'events'))
        order by 1`,
    ).then((r) => {
      for (const row of r.rows) s.pgBytes[row.name] = Number(row.bytes);
    }).catch(why("Postgres sizes")),
    topicRecords(p).then((n) => s.topicRecords = n).catch(
      why("Kafka end offsets"),
    ),
    consumerLag(p).then((n) => s.lagRecords = n).catch(why("Kafka lag")),
  ]);
  return s;
}

/** Records in the topic (sum of end offsets). */
async function topicRecords(p: Probes): Promise<number> {
  const ends = await p.admin.fetchTopicOffsets(p.config.kafka.topic);
  return ends.reduce((a, e) => a + Number(e.high), 0);
}

/**
 * The consumer group's lag, summed over partitions: end offset minus the
 * committed offset (the log start where nothing is committed yet).
 */
async function consumerLag(p: Probes): Promise<number> {
  const topic = p.config.kafka.topic;
  const ends = await p.admin.fetchTopicOffsets(topic);
  const committed = await p.admin.fetchOffsets({
    groupId: p.config.kafka.consumerGroup,
    topics: [topic],
  });
  const done = new Map<number, number>();
  for (const t of committed) {
    for (const part of t.partitions) {
      done.set(part.partition, Number(part.offset));
    }
  }
  let lag = 0;
  for (const e of ends) {
    const high = Number(e.high), low = Number(e.low);
    const at = done.get(e.partition) ?? -1;
    lag += Math.max(0, high - (at >= 0 ? at : low));
  }
  return lag;
}

// ---------------------------------------------------------------- fits

/** Least-squares line through (xs, ys), with the residuals' standard deviation. */
export function leastSquares(
  xs: number[],
  ys: number[],
): { slope: number; intercept: number; residualStdev: number } {
  const n = xs.length;
  if (n !== ys.length || n < 2) {
    throw new RangeError("leastSquares needs at least two (x, y) pairs");
  }
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let sxx = 0, sxy = 0;
  for (let i = 0; i < n; i++) {
    sxx += (xs[i] - mx) ** 2;
    sxy += (xs[i] - mx) * (ys[i] - my);
  }
  const slope = sxx === 0 ? 0 : sxy / sxx;
  const intercept = my - slope * mx;
  let sse = 0;
  for (let i = 0; i < n; i++) sse += (ys[i] - (intercept + slope * xs[i])) ** 2;
  // n − 2 degrees of freedom: two parameters were fitted.
  const residualStdev = n > 2 ? Math.sqrt(sse / (n - 2)) : 0;
  return { slope, intercept, residualStdev };
}

/** How a metric is judged. */
export type MetricKind = "memory" | "fds" | "lag" | "growth";

/** One metric's fit over one phase. */
export interface SoakFit {
  metric: string;
  kind: MetricKind;
  unit: string;
  phase: Phase;
  /** Samples fitted (settled, with a value). */
  n: number;
  mean: number;
  slopePerHour: number;
  /** slope × fitted span: how much it grew over the phase. */
  growth: number;
  /** max(10 % of mean, 2 × residual stdev, floor). */
  noise: number;
  /** "flat" / "grows" for judged kinds; "–" for storage; "too few samples". */
  verdict: "flat" | "grows" | "–" | "too few samples";
}

/** Fewest fitted samples a verdict is given on. */
export const MIN_FIT_SAMPLES = 3;

/**
 * Judges one series (x in hours): flat when growth = slope × span stays
 * within max(10 % of the mean, 2 × residual stdev, floor). A shrinking
 * series is flat. Storage ("growth") gets no verdict.
 */
export function judgeSeries(
  xs: number[],
  ys: number[],
  kind: MetricKind,
  floor = 0,
): Pick<
  SoakFit,
  "n" | "mean" | "slopePerHour" | "growth" | "noise" | "verdict"
> {
  const n = xs.length;
  if (n < 2) {
    return {
      n,
      mean: n ? ys[0] : NaN,
      slopePerHour: NaN,
      growth: NaN,
      noise: NaN,
      verdict: "too few samples",
    };
  }
  const fit = leastSquares(xs, ys);
  const mean = ys.reduce((a, b) => a + b, 0) / n;
  const span = Math.max(...xs) - Math.min(...xs);
  const growth = fit.slope * span;
  const noise = Math.max(0.1 * Math.abs(mean), 2 * fit.residualStdev, floor);
  const verdict = kind === "growth"
    ? "–"
    : n < MIN_FIT_SAMPLES
    ? "too few samples"
    : growth <= noise
    ? "flat"
    : "grows";
  return { n, mean, slopePerHour: fit.slope, growth, noise, verdict };
}

interface MetricDef {
  metric: string;
  kind: MetricKind;
  unit: string;
  /** Display scale: value / scale in `unit`. */
  scale: number;
  get: (s: SoakSample) => number | null | undefined;
  /** Noise floor in raw units for a phase at `rate` events/s. */
  floor?: (rate: number) => number;
}

const MB = 1024 * 1024;

/** Every metric fitted, in report order. */
export function soakMetrics(samples: SoakSample[]): MetricDef[] {
  const tables = [...new Set(samples.flatMap((s) => Object.keys(s.pgBytes)))]
    .sort();
  const schemaSum = (s: SoakSample, schema: string) => {
    const keys = Object.keys(s.pgBytes).filter((k) =>
      k.startsWith(`${schema}.`)
    );
    return keys.length ? keys.reduce((a, k) => a + s.pgBytes[k], 0) : null;
  };
  return [
    ...COMPONENTS.map((c): MetricDef => ({
      metric: `RSS ${c}`,
      kind: "memory",
      unit: "MB",
      scale: MB,
      get: (s) => s.rss[c],
    })),
    ...COMPONENTS.map((c): MetricDef => ({
      metric: `fds ${c}`,
      kind: "fds",
      unit: "fds",
      scale: 1,
      get: (s) => s.fds[c],
      // A few descriptors come and go with connections and child processes.
      floor: () => 4,
    })),
    {
      metric: "consumer lag",
      kind: "lag",
      unit: "records",
      scale: 1,
      get: (s) => s.lagRecords,
      // Two seconds of traffic: the live-metrics freshness target.
      floor: (rate) => 2 * rate,
    },
    {
      metric: "topic records",
      kind: "growth",
      unit: "records",
      scale: 1,
      get: (s) => s.topicRecords,
    },
    {
      metric: "HDFS FilesTotal",
      kind: "growth",
      unit: "inodes",
      scale: 1,
      get: (s) => s.hdfsFilesTotal,
    },
    {
      metric: "HDFS BlocksTotal",
      kind: "growth",
      unit: "blocks",
      scale: 1,
      get: (s) => s.hdfsBlocksTotal,
    },
    {
      metric: "raw zone files",
      kind: "growth",
      unit: "files",
      scale: 1,
      get: (s) => s.rawFiles,
    },
    {
      metric: "pg monitoring.*",
      kind: "growth",
      unit: "MB",
      scale: MB,
      get: (s) => schemaSum(s, "monitoring"),
    },
    {
      metric: "pg ops.*",
      kind: "growth",
      unit: "MB",
      scale: MB,
      get: (s) => schemaSum(s, "ops"),
    },
    ...tables.map((t): MetricDef => ({
      metric: `pg ${t}`,
      kind: "growth",
      unit: "MB",
      scale: MB,
      get: (s) => s.pgBytes[t],
    })),
  ];
}

/** Fits every metric per phase over the settled samples. */
export function fitSoak(samples: SoakSample[]): SoakFit[] {
  const fits: SoakFit[] = [];
  for (const m of soakMetrics(samples)) {
    for (const phase of ["low", "high", "tail"] as const) {
      const inPhase = samples.filter((s) => s.phase === phase);
      if (!inPhase.length) continue;
      const xs: number[] = [], ys: number[] = [];
      for (const s of inPhase) {
        const v = m.get(s);
        if (s.settling || v === null || v === undefined) continue;
        xs.push(s.tMin / 60);
        ys.push(v / m.scale);
      }
      if (!xs.length && inPhase.every((s) => m.get(s) == null)) continue;
      const floor = (m.floor?.(inPhase[0].rate) ?? 0) / m.scale;
      fits.push({
        metric: m.metric,
        kind: m.kind,
        unit: m.unit,
        phase,
        ...judgeSeries(xs, ys, m.kind, floor),
      });
    }
  }
  return fits;
}

/** Raw files of one event hour, judged against the compaction target. */
export interface HourFiles {
  hour: string;
  files: number;
  closed: boolean;
  limit: number;
  ok: boolean;
}

/**
 * The raw zone's files per event hour at `now`: an hour is closed once its
 * end lies `graceMinutes` in the past; a closed hour passes with at most
 * partitions × FILES_PER_PARTITION_HOUR files. Open hours are listed, not
 * judged.
 */
export function judgeHourFiles(
  hours: Record<string, number>,
  now: Date,
  partitions: number,
  graceMinutes: number,
): HourFiles[] {
  const limit = partitions * FILES_PER_PARTITION_HOUR;
  return Object.keys(hours).sort().map((hour) => {
    const end = Date.parse(`${hour}:00:00Z`) + 3_600_000;
    const closed = end + graceMinutes * 60_000 <= now.getTime();
    const files = hours[hour];
    return { hour, files, closed, limit, ok: !closed || files <= limit };
  });
}

/** The run's overall verdict. */
export interface SoakVerdict {
  /** Every memory series flat in every phase with enough samples. */
  memoryFlat: boolean;
  fdsFlat: boolean;
  lagFlat: boolean;
  /** undefined when no hour closed during the run. */
  filesPerHourOk: boolean | undefined;
  /** Metrics that grew, as "RSS consumer (low)". */
  grew: string[];
  lines: string[];
}

/** Sums the fits and hour checks into one verdict. */
export function soakVerdict(fits: SoakFit[], hours: HourFiles[]): SoakVerdict {
  const grew = fits.filter((f) => f.verdict === "grows").map((f) =>
    `${f.metric} (${f.phase})`
  );
  const flat = (kind: MetricKind) =>
    fits.filter((f) => f.kind === kind).every((f) => f.verdict !== "grows");
  const judged = (kind: MetricKind) =>
    fits.some((f) =>
      f.kind === kind && (f.verdict === "flat" || f.verdict === "grows")
    );
  const closed = hours.filter((h) => h.closed);
  const filesPerHourOk = closed.length ? closed.every((h) => h.ok) : undefined;
  const grewOf = (kind: MetricKind) =>
    fits.filter((f) => f.kind === kind && f.verdict === "grows").map((f) =>
      `${f.metric} (${f.phase})`
    );
  const word = (kind: MetricKind, what: string) =>
    !judged(kind)
      ? `${what}: not judged (too few settled samples)`
      : flat(kind)
      ? `${what}: flat within noise`
      : `${what}: GROWS (${grewOf(kind).join(", ")})`;
  const lines = [
    word("memory", "memory (RSS per component)"),
    word("fds", "open file descriptors"),
    word("lag", "consumer lag"),
    filesPerHourOk === undefined
      ? "files per closed hour: not judged (no event hour closed during the run)"
      : filesPerHourOk
      ? `files per closed hour: ≤ ${
        closed[0].limit
      } in all ${closed.length} closed hour(s)`
      : `files per closed hour: OVER the limit of ${closed[0].limit} in ${
        closed.filter((h) => !h.ok).map((h) => `${h.hour} (${h.files})`).join(
          ", ",
        )
      }`,
  ];
  return {
    memoryFlat: flat("memory"),
    fdsFlat: flat("fds"),
    lagFlat: flat("lag"),
    filesPerHourOk,
    grew,
    lines,
  };
}

// ---------------------------------------------------------------- report

/** Aligned text table (first column left, the others right). */
export function textTable(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) =>
    Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length))
  );
  const line = (cells: string[]) =>
    cells.map((c, i) => i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))
      .join("  ").trimEnd();
  return [line(head), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)]
    .join("\n");
}

function num(v: number | null | undefined, digits = 0): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return "–";
  // A value that rounds to zero prints as 0, not "-0".
  const shown = Number(v.toFixed(digits)) || 0;
  return shown.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

const SHORT: Record<Component, string> = {
  producer: "prod",
  consumer: "cons",
  batch: "batch",
  api: "api",
  alerts: "alerts",
  kafka: "kafka",
  namenode: "nn",
  datanode: "dn",
  postgres: "pg",
};

/** Everything a soak run produced. */
export interface SoakResult {
  at: string;
  options: SoakOptions;
  partitions: number;
  samples: SoakSample[];
  fits: SoakFit[];
  hours: HourFiles[];
  verdict: SoakVerdict;
  /** Component restarts seen during the run (pid changes). */
  restarts: Partial<Record<Component, number>>;
  /** True when the run was cut short (Ctrl-C or a failure). */
  interrupted: boolean;
}

/**
 * Fits printed in the slopes table: every fit but those of single monitoring
 * and ops tables growing less than 1 MB an hour (the schema totals are
 * printed; every table's fit is in the JSON).
 */
function printedFit(f: SoakFit): boolean {
  const singleTable = /^pg (monitoring|ops)\./.test(f.metric);
  return !singleTable || Math.abs(f.slopePerHour) >= 1;
}

/** The printed report: the sample tables, the slopes and the verdict. */
export function formatSoakReport(r: SoakResult): string {
  const o = r.options;
  const when = (s: SoakSample) => [
    num(s.tMin, 1),
    `${s.phase}${s.settling ? "*" : ""}`,
  ];
  const out: string[] = [];
  out.push(
    `logpipe soak, ${r.at}: ${o.lowMinutes} min at ${o.lowRate} ev/s` +
      (o.highMinutes
        ? `, then ${o.highMinutes} min at ${o.highRate} ev/s`
        : "") +
      (r.samples.some((s) => s.phase === "tail")
        ? `, then ${o.lowRate} ev/s until the first event hour closed`
        : "") +
      `; a sample every ${o.sampleSeconds} s; ${r.partitions} partitions` +
      (r.interrupted ? " (INTERRUPTED: partial)" : ""),
  );
  out.push(
    `(* = within the first ${o.settleMinutes} min of a stretch: shown, not fitted)`,
  );
  out.push("\nRSS of each component's process tree (MB)\n");
  out.push(textTable(
    ["min", "phase", ...COMPONENTS.map((c) => SHORT[c])],
    r.samples.map((s) => [
      ...when(s),
      ...COMPONENTS.map((c) => num(s.rss[c] === null ? null : s.rss[c]! / MB)),
    ]),
  ));
  out.push("\nOpen file descriptors of each component's process tree\n");
  out.push(textTable(
    ["min", "phase", ...COMPONENTS.map((c) => SHORT[c])],
    r.samples.map((s) => [...when(s), ...COMPONENTS.map((c) => num(s.fds[c]))]),
  ));
  out.push("\nStorage and lag\n");
  const mb = (v: number | null) => v === null ? null : v / MB;
  const schema = (s: SoakSample, n: string) => {
    const ks = Object.keys(s.pgBytes).filter((k) => k.startsWith(`${n}.`));
    return ks.length ? ks.reduce((a, k) => a + s.pgBytes[k], 0) : null;
  };
  out.push(textTable(
    [
      "min",
      "phase",
      "records",
      "lag",
      "HDFS inodes",
      "blocks",
      "raw files",
      "hours",
      "raw.events MB",
      "monitoring MB",
      "ops MB",
    ],
    r.samples.map((s) => [
      ...when(s),
      num(s.topicRecords),
      num(s.lagRecords),
      num(s.hdfsFilesTotal),
      num(s.hdfsBlocksTotal),
      num(s.rawFiles),
      num(Object.keys(s.rawHourFiles).length),
      num(mb(s.pgBytes["raw.events"] ?? null), 1),
      num(mb(schema(s, "monitoring")), 1),
      num(mb(schema(s, "ops")), 2),
    ]),
  ));
  const notes = r.samples.flatMap((s) =>
    s.notes.map((n) => `  ${num(s.tMin, 1)} min: ${n}`)
  );
  if (notes.length) out.push(`\nNotes\n${notes.join("\n")}`);

  out.push(
    "\nSlopes (least squares over the settled samples of each stretch, per hour;\n" +
      "single monitoring/ops tables only when they grow ≥ 1 MB/h)\n",
  );
  const digits = (f: SoakFit) => f.unit === "MB" ? 1 : 0;
  out.push(textTable(
    [
      "metric",
      "stretch",
      "n",
      "mean",
      "slope / h",
      "growth",
      "noise",
      "verdict",
    ],
    r.fits.filter(printedFit).map((f) => [
      f.metric,
      f.phase,
      String(f.n),
      `${num(f.mean, digits(f))} ${f.unit}`,
      num(f.slopePerHour, digits(f)),
      num(f.growth, digits(f)),
      f.kind === "growth" ? "–" : num(f.noise, digits(f)),
      f.verdict,
    ]),
  ));
  out.push("\nRaw-zone files per event hour (last sample that listed them)\n");
  out.push(
    r.hours.length
      ? textTable(
        ["event hour (UTC)", "files", "closed", "limit", "result"],
        r.hours.map((h) => [
          h.hour,
          num(h.files),
          h.closed ? "yes" : "no",
          num(h.limit),
          h.closed ? (h.ok ? "ok" : "OVER") : "open",
        ]),
      )
      : "(no event hour in the raw zone)",
  );
  const restarts = Object.entries(r.restarts).filter(([, n]) => n);
  out.push(
    `\nComponent restarts during the run: ${
      restarts.length
        ? restarts.map(([c, n]) => `${c} ${n}`).join(", ")
        : "none"
    }`,
  );
  out.push(
    `\nVerdict (flat = growth over the stretch ≤ max(10 % of its mean, 2 × residual stdev, floor); floors: 4 fds, 2 s of traffic for lag)`,
  );
  for (const l of r.verdict.lines) out.push(`  ${l}`);
  return out.join("\n");
}

// ---------------------------------------------------------------- run

/**
 * LOGPIPE_* settings that would point the instance at someone else's
 * services or channels: blanked (an empty value means "default", and the
 * environment wins over .env), so the instance is local and private. Every
 * other setting passes through, so a soak can try another one.
 */
const BLANKED = [
  "LOGPIPE_KAFKA_BROKERS",
  "LOGPIPE_WEBHDFS_URL",
  "LOGPIPE_DATABASE_URL",
  "LOGPIPE_BI_PASSWORD",
  "LOGPIPE_API_HOST",
  "LOGPIPE_API_PORT",
  "LOGPIPE_SLACK_WEBHOOK_URL",
  "LOGPIPE_SMTP_URL",
  "LOGPIPE_EMAIL_TO",
];

/** The environment of the soak's own instance. */
export function soakEnv(opts: Pick<SoakOptions, "home" | "portOffset">) {
  return {
    ...Object.fromEntries(BLANKED.map((k) => [k, ""])),
    LOGPIPE_HOME: opts.home,
    LOGPIPE_PORT_OFFSET: String(opts.portOffset),
    // dist/ belongs to the checkout, not to this instance: no batch run of
    // the soak rebuilds it (as in the test environments), unless asked.
    LOGPIPE_SITE_PUBLISH: setting("LOGPIPE_SITE_PUBLISH") ?? "false",
  };
}

function instanceConfig(
  projectRoot: string,
  env: Record<string, string>,
): Config {
  let dotenv: Record<string, string> = {};
  try {
    dotenv = parseDotEnv(Deno.readTextFileSync(`${projectRoot}/.env`));
  } catch { /* no .env */ }
  return loadConfig({ ...dotenv, ...Deno.env.toObject(), ...env });
}

/** Marks a folder as the soak's, so a later run may wipe it. */
const MARKER = ".logpipe-soak";

/**
 * Gives the soak a fresh state folder. Only a folder this harness made (it
 * holds the marker) is wiped, and never while anything of it still runs.
 * The pinned jars and dbt venv are linked from the shared state folder
 * (same pins, read-only use), so `up`'s set-up does not fetch them again.
 */
function prepareHome(config: Config, shared: Config): void {
  const home = config.localDir;
  let exists = false;
  try {
    exists = Deno.statSync(home).isDirectory;
  } catch { /* new */ }
  if (exists) {
    const entries = [...Deno.readDirSync(home)];
    if (entries.length && !entries.some((e) => e.name === MARKER)) {
      throw new UsageError(
        `--soak-home ${home} exists and was not made by the soak; choose another folder`,
      );
    }
    const running = (["kafka", "namenode", "datanode", "postgres"] as const)
      .map((n) => [n, SERVICES[n].pid(config)] as const).filter(([, p]) => p);
    const upPid = readLiveProcessRecord(`${home}/run/up.json`).up;
    const strays = processesOfInstance(home);
    if (running.length || upPid || strays.length) {
      throw new Error(
        `a previous soak instance still runs in ${home} (${
          [
            ...running.map(([n, p]) => `${n} ${p}`),
            upPid ? `up ${upPid}` : "",
            strays.length ? `pids ${strays.join(" ")}` : "",
          ]
            .filter(Boolean).join(", ")
        }); stop it with: LOGPIPE_HOME=${home} LOGPIPE_PORT_OFFSET=${
          config.ports.kafka - DEFAULT_PORTS.kafka
        } deno task services down`,
      );
    }
    Deno.removeSync(home, { recursive: true });
  }
  Deno.mkdirSync(`${home}/logs`, { recursive: true });
  Deno.writeTextFileSync(
    `${home}/${MARKER}`,
    "made by deno task bench --soak\n",
  );
  for (const dir of ["jars", "venv"]) {
    try {
      Deno.statSync(`${shared.localDir}/${dir}`);
      Deno.symlinkSync(`${shared.localDir}/${dir}`, `${home}/${dir}`);
    } catch { /* up's set-up installs it */ }
  }
}

function assertPortsFree(config: Config): void {
  for (const [name, port] of Object.entries(config.ports)) {
    if (name === "sitePreview") continue;
    if (!portIsFree(port)) {
      throw new UsageError(
        `port ${port} (${name} of the soak instance) is in use; choose another --soak-port-offset`,
      );
    }
  }
}

/** `KEY=value` entries of a /proc/<pid>/environ text (NUL-separated). */
export function environHas(environ: string, entry: string): boolean {
  return environ.split("\0").includes(entry);
}

/** Live processes (not this one) whose environment names the instance's home. */
function processesOfInstance(home: string): number[] {
  const entry = `LOGPIPE_HOME=${home}`;
  const out: number[] = [];
  for (const s of readAllStats()) {
    if (s.pid === Deno.pid || s.state === "Z" || s.state === "X") continue;
    try {
      if (environHas(Deno.readTextFileSync(`/proc/${s.pid}/environ`), entry)) {
        out.push(s.pid);
      }
    } catch { /* exited, or not ours to read */ }
  }
  return out;
}

/** Pids of the processes in a process group. */
function groupMembers(pgid: number): number[] {
  return readAllStats().filter((s) =>
    s.pgid === pgid && s.state !== "Z" && s.state !== "X"
  ).map((s) => s.pid);
}

function spawnLogged(
  cmd: string[],
  opts: { cwd: string; env: Record<string, string>; log: string },
): Deno.ChildProcess {
  const log = Deno.openSync(opts.log, { create: true, append: true });
  // setsid: its own session and process group, so a Ctrl-C in the terminal
  // reaches only the harness, which then stops everything in order.
  const child = new Deno.Command("setsid", {
    args: cmd,
    cwd: opts.cwd,
    env: opts.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const pump = async (s: ReadableStream<Uint8Array>) => {
    for await (const chunk of s) log.writeSync(chunk);
  };
  Promise.all([pump(child.stdout), pump(child.stderr)]).catch(() => {})
    .finally(() => log.close());
  return child;
}

/** Resolves at `time` (epoch ms) or when `signal` aborts. */
function sleepUntil(time: number, signal: AbortSignal): Promise<void> {
  // An abort ends the wait early (resolving): the caller checks the signal.
  return delay(Math.max(0, time - Date.now()), { signal }).catch(() => {});
}

/**
 * Runs the soak: prepares the private instance, `deno task up`, the two
 * stretches with sampling, then stops everything it started. `stop` aborts
 * early (Ctrl-C); the samples so far are still fitted and returned.
 */
export async function runSoak(
  opts: SoakOptions,
  ctx: { shared: Config; say: (m: string) => void; stop: AbortSignal },
): Promise<SoakResult> {
  const { shared, say } = ctx;
  const env = soakEnv(opts);
  const childEnv = { ...Deno.env.toObject(), ...env };
  const root = shared.projectRoot;
  let config = instanceConfig(root, env);
  prepareHome(config, shared);
  assertPortsFree(config);

  const upLog = `${config.localDir}/logs/up.log`;
  say(
    `starting deno task up on a private instance (LOGPIPE_HOME=${config.localDir}, LOGPIPE_PORT_OFFSET=${opts.portOffset}; output in ${upLog})…`,
  );
  const up = spawnLogged(
    [Deno.execPath(), "task", "up", "--no-producer"],
    { cwd: root, env: childEnv, log: upLog },
  );
  // Set when up exits (a holder: the callback writes it, loops read it).
  const upState: { exited?: Deno.CommandStatus } = {};
  const upDone = up.status.then((s) => upState.exited = s);
  const upExit = (): Deno.CommandStatus | undefined => upState.exited;

  let producer: Deno.ChildProcess | undefined;
  let producerRate = 0;
  const producerLog = `${config.localDir}/logs/producer.log`;
  const startProducer = (rate: number, seed: string) => {
    producerRate = rate;
    producer = spawnLogged(
      [
        Deno.execPath(),
        "run",
        "-A",
        ...PRODUCER_RUNTIME.denoArgs,
        "tasks/produce.ts",
        "--rate",
        String(rate),
        "--seed",
        seed,
      ],
      {
        cwd: root,
        env: { ...childEnv, ...PRODUCER_RUNTIME.env },
        log: producerLog,
      },
    );
  };
  const stopProducer = async () => {
    const p = producer;
    producer = undefined;
    if (!p) return;
    await stopProcess(p.pid, 30_000);
    await p.status;
  };

  const samples: SoakSample[] = [];
  const restarts: Partial<Record<Component, number>> = {};
  let interrupted = false;
  let partitions = config.kafka.partitions;
  let probes: Probes | undefined;
  try {
    // Ready = the services are healthy and up runs its components.
    const readyBy = Date.now() + 15 * 60_000;
    for (;;) {
      const exited = upExit();
      if (exited) {
        throw new Error(
          `deno task up exited (code ${exited.code}) before it was ready:\n${
            tailFile(upLog, 20)
          }`,
        );
      }
      if (ctx.stop.aborted) throw new Error("interrupted while starting");
      config = instanceConfig(root, env); // the password is generated on start
      const pids = componentPids(config, undefined);
      if (pids.consumer && pids.batch && pids.api && pids.postgres) break;
      if (Date.now() > readyBy) {
        throw new Error(
          `deno task up not ready after 15 min:\n${tailFile(upLog, 20)}`,
        );
      }
      await sleep(1_000);
    }
    say("up is running; starting the producer");

    const kafka = createKafka(config, { quiet: true });
    const admin = kafka.admin();
    await admin.connect();
    probes = {
      config,
      hdfs: createWebHdfs(config),
      pool: createPool(config, { max: 1, applicationName: "logpipe-soak" }),
      admin,
    };
    partitions = (await admin.fetchTopicOffsets(config.kafka.topic)).length;

    const runId = Date.now().toString(36);
    const t0 = Date.now();
    const plan = soakSchedule(opts, t0);
    if (plan.stretches.some((st) => st.phase === "tail")) {
      say(
        `after the stretches the low rate goes on until ${
          new Date(plan.stretches.at(-1)!.end).toISOString().slice(11, 16)
        } UTC, when the run's first event hour counts as closed`,
      );
    }
    let phase: Phase = "low";
    let phaseStart = t0;
    startProducer(opts.lowRate, `soak-low-${runId}`);
    const lastPid: Partial<Record<Component, number>> = {};
    for (const [k, slot] of plan.samples.entries()) {
      if (slot.phase !== phase) {
        const next = plan.stretches.find((st) => st.phase === slot.phase)!;
        await sleepUntil(next.start, ctx.stop);
        if (ctx.stop.aborted) break;
        say(`${next.phase} stretch: ${next.rate} events/s`);
        await stopProducer();
        startProducer(next.rate, `soak-${next.phase}-${runId}`);
        delete lastPid.producer; // a new producer on purpose, not a restart
        phase = next.phase;
        phaseStart = Date.now();
      }
      await sleepUntil(slot.due, ctx.stop);
      if (ctx.stop.aborted) break;
      const exited = upExit();
      if (exited) {
        throw new Error(
          `deno task up exited (code ${exited.code}) during the soak:\n${
            tailFile(upLog, 20)
          }`,
        );
      }
      const s = await sampleOnce(probes, producer?.pid, {
        tMin: (Date.now() - t0) / 60_000,
        phase,
        rate: producerRate,
        settling: Date.now() - phaseStart < opts.settleMinutes * 60_000,
      });
      const pids = componentPids(config, producer?.pid);
      for (const c of COMPONENTS) {
        const pid = pids[c];
        if (pid === undefined) s.notes.push(`${c} not running`);
        else if (lastPid[c] !== undefined && lastPid[c] !== pid) {
          restarts[c] = (restarts[c] ?? 0) + 1;
          s.notes.push(`${c} restarted (pid ${lastPid[c]} → ${pid})`);
        }
        if (pid !== undefined) lastPid[c] = pid;
      }
      samples.push(s);
      say(
        `${s.tMin.toFixed(1)} min, ${phase} ${producerRate} ev/s: consumer ${
          num(s.rss.consumer === null ? null : s.rss.consumer / MB)
        } MB, lag ${num(s.lagRecords)}, raw files ${num(s.rawFiles)}${
          s.notes.length ? ` (${s.notes.join("; ")})` : ""
        }`,
      );
      // The producer is the soak's own: restart it if it died.
      if (producer && !isAlive(producer.pid)) {
        startProducer(producerRate, `soak-${phase}-${runId}-${k}`);
      }
    }
    interrupted = ctx.stop.aborted;
  } catch (err) {
    interrupted = true;
    if (!samples.length) {
      await teardown();
      throw err;
    }
    say(`soak cut short: ${err instanceof Error ? err.message : err}`);
  }
  await teardown();

  const fits = fitSoak(samples);
  // The last sample whose raw-zone listing answered (one that failed, e.g.
  // WebHDFS busy at the high rate, has no hours and would judge none).
  const last = samples.findLast((s) => s.rawFiles !== null);
  const hours = last
    ? judgeHourFiles(
      last.rawHourFiles,
      new Date(last.at),
      partitions,
      opts.closedGraceMinutes,
    )
    : [];
  return {
    at: new Date(samples[0]?.at ?? Date.now()).toISOString(),
    options: opts,
    partitions,
    samples,
    fits,
    hours,
    verdict: soakVerdict(fits, hours),
    restarts,
    interrupted,
  };

  async function teardown(): Promise<void> {
    say(
      "stopping: the producer, then deno task up (SIGINT to its process group)…",
    );
    await stopProducer().catch(() => {});
    if (probes) {
      await probes.admin.disconnect().catch(() => {});
      await probes.pool.end().catch(() => {});
    }
    if (!upExit()) {
      try {
        Deno.kill(-up.pid, "SIGINT");
      } catch { /* gone */ }
      // up stops its components in order (consumer and batch get 60 s
      // each) and then the services it started.
      const deadline = Date.now() + 5 * 60_000;
      while (
        (!upExit() || groupMembers(up.pid).length) &&
        Date.now() < deadline
      ) await sleep(500);
      if (groupMembers(up.pid).length) {
        say("up did not stop within 5 min: SIGKILL to its process group");
        try {
          Deno.kill(-up.pid, "SIGKILL");
        } catch { /* gone */ }
      }
      await upDone;
    }
    // Components run in sessions of their own; any left behind (up killed)
    // are named in its run file.
    // (A clean stop removed the file: nothing to do then.)
    const run = readLiveProcessRecord(`${config.localDir}/run/up.json`);
    await Promise.all(run.children.map((p) => stopProcess(p)));
    const left = (["kafka", "namenode", "datanode", "postgres"] as const)
      .filter((n) => SERVICES[n].pid(config) !== undefined);
    if (left.length) {
      say(
        `stopping the instance's services up left running: ${left.join(", ")}`,
      );
      await servicesDown({ config });
    }
    // What a component started and left behind when it was killed (a dbt
    // run of a batch that got SIGKILL, say) carries the instance's
    // LOGPIPE_HOME in its environment (the services, stopped above, too).
    const strays = processesOfInstance(config.localDir);
    if (strays.length) {
      say(
        `stopping ${strays.length} leftover process(es): ${strays.join(", ")}`,
      );
      await Promise.all(strays.map((p) => stopProcess(p, 10_000)));
    }
    say(
      `stopped; state and logs stay in ${config.localDir} until the next soak`,
    );
  }
}

/**
 * True when `deno task bench` was asked for the soak; a soak flag without
 * --soak, or --soak with the suite's own flags, is a UsageError.
 */
export function soakRequested(
  values: Record<string, string | boolean | undefined>,
): boolean {
  const given = Object.keys(SOAK_FLAGS).filter((k) =>
    k !== "soak" && values[k] !== undefined
  );
  if (!values.soak) {
    if (given.length) throw new UsageError(`--${given[0]} needs --soak`);
    return false;
  }
  for (const k of ["only", "quick"]) {
    if (values[k] !== undefined) {
      throw new UsageError(`--soak runs alone: drop --${k}`);
    }
  }
  return true;
}

/**
 * `deno task bench --soak`: runs the soak, prints the report, writes the
 * JSON (to `json` and to <LOGPIPE_HOME>/bench/soak-latest.json). Ctrl-C
 * ends the run early and still reports what was sampled (exit 130).
 */
export async function soakMain(
  values: Record<string, string | boolean | undefined>,
  json: string | undefined,
  shared: Config = loadConfig(),
): Promise<number> {
  const opts = soakOptionsFromFlags(values, shared);
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    const result = await runSoak(opts, {
      shared,
      stop: stop.signal,
      say: (m) => console.error(`[bench soak] ${m}`),
    });
    console.log(`\n${formatSoakReport(result)}`);
    const doc = JSON.stringify({ kind: "soak", ...result }, null, 2);
    Deno.mkdirSync(`${shared.localDir}/bench`, { recursive: true });
    Deno.writeTextFileSync(`${shared.localDir}/bench/soak-latest.json`, doc);
    if (json) Deno.writeTextFileSync(json, doc);
    // Like the suite, the soak reports; a verdict is not an exit code.
    return stop.signal.aborted ? 130 : 0;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
}
