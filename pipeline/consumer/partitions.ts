/**
 * Partition ownership and recovery: which partitions this consumer owns in
 * which group generation, and each owned partition's position.
 *
 * kafkajs 2.2.4 has no revoke/assign callbacks (read from its source). It
 * emits `GROUP_JOIN` (with `memberAssignment`) synchronously after
 * JoinGroup+SyncGroup and before it fetches, and `REBALANCING` when a
 * heartbeat or fetch saw REBALANCE_IN_PROGRESS, right before it rejoins.
 * Hence: on REBALANCING the generation is bumped and open batches are
 * dropped, not committed (their records were never committed, so whoever
 * owns the partition next reads them again); on GROUP_JOIN the assigned
 * partitions are paused, their positions recovered from HDFS (the commit
 * protocol's recovery, ../zones/commit.ts), sought and resumed. Every commit
 * re-checks ownership (`owns`) just before its commit point.
 */
import type { Admin } from "kafkajs";
import type { HdfsCommitter } from "../zones/commit.ts";
import type { MicroBatch } from "./micro_batch.ts";
import {
  type ConsumerContext,
  type PartitionControl,
  RetryAborted,
} from "./context.ts";
import type { CountClaim } from "./metrics_writer.ts";
import { deadline } from "../async.ts";

/** Exactly-once live counting (metrics.ts, metrics_writer.ts), if enabled. */
export interface LiveCounting {
  /** Claims counting of the partitions (Postgres); see MetricsWriter.claim. */
  claim(
    partitions: Array<{ partition: number; initialLast: number }>,
  ): Promise<CountClaim[]>;
  /** After a position reset: counting restarts after `last` (MetricsWriter.resetCounted). */
  reset(partition: number, epoch: number, last: number): Promise<boolean>;
  /** The aggregator counts partition p under `epoch` from now on. */
  start(partition: number, epoch: number): void;
  /** The aggregator stops counting partition p. */
  stop(partition: number): void;
}

/** How long recovery waits for Postgres before it goes on without counting. */
const CLAIM_TIMEOUT_MS = 5_000;

/** An offset range the consumer did not (and will not) read. */
export interface SkippedRange {
  partition: number;
  /** First offset skipped. */
  fromOffset: number;
  /** First offset not skipped (exclusive end). */
  toOffset: number;
  /**
   * retention: deleted from Kafka before it was read (position below the
   * log start); gap: offsets missing between two records read;
   * position_reset: HDFS's position was beyond the end of Kafka's log
   * (topic re-created, broker data lost) and --reset-to-earliest started
   * the partition again from its earliest offset.
   */
  reason: "retention" | "gap" | "position_reset";
  detail: string;
}

/** HDFS holds a partition further than Kafka's log goes: refuse to guess. */
export class PositionAheadError extends Error {
  override name = "PositionAheadError";
  constructor(
    readonly topic: string,
    readonly partition: number,
    readonly position: number,
    readonly logStart: number,
    readonly logEnd: number,
  ) {
    super(
      `partition ${partition} of ${topic}: HDFS holds every record up to offset ${
        position - 1
      }, but Kafka's log of it ends at offset ${logEnd} (the topic was re-created, or the broker lost data). ` +
        `Refusing to consume it: offsets ${logEnd}–${
          position - 1
        } would be skipped or mean other records. ` +
        `After checking the zones, run the consumer with --reset-to-earliest to consume it again from offset ${logStart} ` +
        `(the range is recorded in monitoring.skipped_offsets).`,
    );
  }
}

/** What this consumer knows about one partition it owns (or owned). */
export interface PartitionState {
  /** Recovered and not lost since: records may be taken. */
  ready: boolean;
  /** Next offset to take into a batch. */
  nextOffset: number;
  /** Next offset after the last batch committed to HDFS. */
  durableOffset: number;
  /**
   * Next offset to count in the live metrics; Infinity while not counting
   * (metrics off, or no claim yet). Below nextOffset, records are counted
   * only (they are in HDFS already); below countFrom, taken only.
   */
  countFrom: number;
  /** A counting claim is to be made (Postgres did not answer at recovery). */
  claimPending: boolean;
  /** Next offset after the last record seen (consumed). */
  consumedOffset: number;
  /**
   * Next offset Kafka's fetch has not gone past (>= consumedOffset): the
   * records seen plus the offsets it read and never delivers, transaction
   * markers (control records) and aborted transactions' records
   * (read_committed). The last data record of a transactional topic is not
   * at its end offset; this is.
   */
  fetchedOffset: number;
  /** Kafka timestamp (ms) of the last record seen. */
  lastKafkaTs: number | undefined;
  buffer: MicroBatch | undefined;
  /** When this partition last made durable progress (or was assigned). */
  lastProgressMs: number;
}

/** Partition ownership per group generation, and recovery on assignment. */
export class PartitionOwnership {
  /** Bumped on every rebalance and assignment. */
  generation = 0;
  /** Partitions of the current assignment. */
  assigned = new Set<number>();
  /** Owned (or being recovered) partitions. */
  readonly states = new Map<number, PartitionState>();
  #lock: Promise<unknown> = Promise.resolve();
  #rewindChecks = new Map<number, number>();

  constructor(
    readonly ctx: ConsumerContext,
    readonly kafka: PartitionControl,
    readonly admin: Pick<Admin, "fetchOffsets" | "fetchTopicOffsets">,
    readonly committer: HdfsCommitter,
    readonly groupId: string,
    /** Waits until no flush is in flight (before recovery reads HDFS). */
    readonly settleFlushes: () => Promise<void>,
    readonly counting?: LiveCounting,
    /** Where skipped offset ranges are reported (logged, counted). */
    readonly onSkipped: (range: SkippedRange) => void = () => {},
    /** Start a partition again from its earliest offset when HDFS is ahead of Kafka. */
    readonly resetToEarliest = false,
  ) {}

  /** True while `st` is still partition p's state, ready, in generation `gen`. */
  owns(p: number, gen: number, st: PartitionState): boolean {
    return gen === this.generation && this.assigned.has(p) &&
      this.states.get(p) === st && st.ready;
  }

  /** The partition's state if it is owned and recovered. */
  ready(p: number): PartitionState | undefined {
    const st = this.states.get(p);
    return st?.ready && this.assigned.has(p) ? st : undefined;
  }

  /** Durable position of every recovered partition. */
  positions(): Record<string, number> {
    return Object.fromEntries(
      [...this.states].filter(([, s]) => s.ready).map((
        [p, s],
      ) => [String(p), s.durableOffset]),
    );
  }

  #dropBuffers(): void {
    for (const st of this.states.values()) {
      st.ready = false;
      const b = st.buffer;
      st.buffer = undefined;
      b?.discard();
    }
  }

  /** kafkajs REBALANCING: our batches can no longer be committed. */
  onRebalancing(): void {
    this.generation++;
    this.ctx.log.info("group rebalancing: dropping uncommitted batches", {
      generation: this.generation,
    });
    this.#dropBuffers();
  }

  /** kafkajs GROUP_JOIN: pause the new assignment and recover it from HDFS. */
  onJoin(memberAssignment: Record<string, number[]>): void {
    const parts = [...(memberAssignment[this.ctx.topic] ?? [])].sort((a, b) =>
      a - b
    );
    const gen = ++this.generation;
    this.assigned = new Set(parts);
    this.#dropBuffers();
    for (const p of [...this.states.keys()]) {
      if (!this.assigned.has(p)) this.states.delete(p);
    }
    this.ctx.log.info("partitions assigned", {
      partitions: parts,
      generation: gen,
    });
    if (parts.length === 0) return;
    // Synchronously, before kafkajs' first fetch: nothing is read until the
    // position has been recovered from HDFS.
    this.kafka.pause(parts);
    this.#serial(() => this.#recover(gen, parts)).catch((err) => {
      if (err instanceof RetryAborted) return;
      this.ctx.log.error("recovery failed", { error: err });
      this.ctx.fail(err);
    });
  }

  /**
   * Claims live counting of `parts` (one attempt, bounded in time: metrics
   * are not on the data path, so an unreachable Postgres delays counting,
   * not consumption; retryClaims() tries again later).
   */
  async #claim(
    parts: number[],
    starts: Map<number, number>,
  ): Promise<Map<number, CountClaim>> {
    const out = new Map<number, CountClaim>();
    if (!this.counting) return out;
    try {
      const claims = await deadline(
        this.counting.claim(
          parts.map((p) => ({ partition: p, initialLast: starts.get(p)! - 1 })),
        ),
        CLAIM_TIMEOUT_MS,
        { message: "Postgres did not answer" },
      );
      for (const c of claims) out.set(c.partition, c);
    } catch (err) {
      this.ctx.log.warn(
        "live metrics: could not claim counting; the partitions are counted once Postgres answers",
        { partitions: parts, error: err },
      );
    }
    return out;
  }

  /**
   * Claims counting for owned partitions that have none yet (Postgres was
   * down at recovery, or a claim was lost). Records consumed meanwhile stay
   * uncounted (logged): they were taken into HDFS, not into the counts.
   */
  async retryClaims(): Promise<void> {
    if (!this.counting) return;
    const gen = this.generation;
    const pending = [...this.states].filter(([p, st]) =>
      st.claimPending && this.owns(p, gen, st)
    );
    if (!pending.length) return;
    const claims = await this.counting.claim(
      pending.map(([p, st]) => ({
        partition: p,
        initialLast: st.consumedOffset - 1,
      })),
    );
    for (const c of claims) {
      const st = this.states.get(c.partition);
      if (!st || !this.owns(c.partition, gen, st) || !st.claimPending) continue;
      const from = c.lastCounted + 1;
      if (from < st.consumedOffset) {
        this.ctx.log.warn(
          "live metrics: records consumed before the counting claim stay uncounted",
          {
            partition: c.partition,
            fromOffset: from,
            toOffset: st.consumedOffset,
          },
        );
      }
      this.counting.start(c.partition, c.epoch);
      st.countFrom = Math.max(from, st.consumedOffset);
      st.claimPending = false;
    }
  }

  /** The live-metrics write refused partition p's counts: its claim was lost. */
  countsRefused(p: number): void {
    this.counting?.stop(p);
    const st = this.states.get(p);
    if (!st?.ready || !this.assigned.has(p)) return;
    this.ctx.log.warn(
      "live metrics: counting claim lost (another consumer claimed the partition); claiming again",
      { partition: p },
    );
    st.countFrom = Infinity;
    st.claimPending = true;
  }

  /**
   * Partition p was fenced in HDFS while the group still gives it to us
   * (another member's recovery got in between): take it back with a new
   * owner epoch, from the position HDFS then holds.
   */
  recoverAgain(p: number, gen: number): void {
    const st = this.states.get(p);
    if (gen !== this.generation || !this.assigned.has(p) || !st?.ready) return;
    st.ready = false;
    const b = st.buffer;
    st.buffer = undefined;
    b?.discard();
    this.kafka.pause([p]);
    this.#serial(() => this.#recover(gen, [p])).catch((err) => {
      if (err instanceof RetryAborted) return;
      this.ctx.log.error("recovery failed", { error: err });
      this.ctx.fail(err);
    });
  }

  /**
   * Records below partition p's position keep arriving: kafkajs reset its
   * fetch position to the earliest offset, which happens when ours is out of
   * range, i.e. beyond a log end that went back (broker data lost). Recover
   * the partition again: recovery compares HDFS with the log and stops (or
   * resets, with --reset-to-earliest). At most once per 10 s per partition.
   */
  suspectRewind(p: number): void {
    const now = Date.now();
    if ((this.#rewindChecks.get(p) ?? 0) > now - 10_000) return;
    this.#rewindChecks.set(p, now);
    const gen = this.generation;
    this.admin.fetchTopicOffsets(this.ctx.topic).then((offs) => {
      const st = this.states.get(p);
      const hi = Number(offs.find((o) => o.partition === p)?.high ?? 0);
      if (st && this.owns(p, gen, st) && hi < st.consumedOffset) {
        this.ctx.log.warn("the log of a partition ends below our position", {
          partition: p,
          position: st.consumedOffset,
          logEnd: hi,
        });
        this.recoverAgain(p, gen);
      }
    }).catch(() => {/* checked again on the next batch */});
  }

  /** A record arrived after a hole in the offsets: report the hole. */
  gap(p: number, fromOffset: number, toOffset: number): void {
    this.onSkipped({
      partition: p,
      fromOffset,
      toOffset,
      reason: "gap",
      detail: `offsets ${fromOffset}–${
        toOffset - 1
      } were never delivered (deleted by retention while the consumer was behind)`,
    });
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(fn, fn);
    this.#lock = run.catch(() => {});
    return run;
  }

  async #recover(gen: number, parts: number[]): Promise<void> {
    // A flush of the previous generation may be between its ownership check
    // and its commit point: let it land (or abort) before HDFS is listed.
    await this.settleFlushes();
    if (gen !== this.generation) return;
    const { topic, log } = this.ctx;
    const t0 = performance.now();
    const rec = await this.ctx.retry(
      "recover from HDFS",
      () => this.committer.recover(topic, parts),
    );
    const [groupOffsets, topicOffsets] = await this.ctx.retry(
      "read Kafka offsets",
      async () => {
        const g = await this.admin.fetchOffsets({
          groupId: this.groupId,
          topics: [topic],
        });
        const t = await this.admin.fetchTopicOffsets(topic);
        return [g, t] as const;
      },
    );
    if (gen !== this.generation) return;
    const group = new Map(
      (groupOffsets[0]?.partitions ?? []).map((
        p,
      ) => [p.partition, Number(p.offset)]),
    );
    const low = new Map(topicOffsets.map((o) => [o.partition, Number(o.low)]));
    const high = new Map(
      topicOffsets.map((o) => [o.partition, Number(o.high)]),
    );
    const starts = new Map<number, number>();
    const resets = new Set<number>();
    for (const p of parts) {
      const lo = low.get(p) ?? 0;
      const hi = high.get(p) ?? 0;
      const fromHdfs = rec.resume.get(p);
      if (fromHdfs !== undefined && fromHdfs > hi) {
        // Kafka's high watermark never goes back in normal operation (a
        // consumer only ever sees records below it), so HDFS being ahead
        // means the log was re-created or lost: stop, unless told.
        if (!this.resetToEarliest) {
          throw new PositionAheadError(topic, p, fromHdfs, lo, hi);
        }
        await this.ctx.retry(
          "reset the position",
          () => this.committer.resetPosition(topic, p, lo),
        );
        this.onSkipped({
          partition: p,
          fromOffset: hi,
          toOffset: fromHdfs,
          reason: "position_reset",
          detail:
            `HDFS position ${fromHdfs} was beyond the log end ${hi}; --reset-to-earliest: consuming again from offset ${lo}`,
        });
        starts.set(p, lo);
        resets.add(p);
        continue;
      }
      // HDFS is the truth; with nothing there (first start, or the zones were
      // wiped on purpose) the group's offset, else the earliest record.
      let start = fromHdfs ?? (group.get(p) ?? -1);
      if (start < lo) {
        if (start >= 0) {
          this.onSkipped({
            partition: p,
            fromOffset: start,
            toOffset: lo,
            reason: "retention",
            detail:
              `resume offset ${start} below the log start ${lo}: deleted by retention before it was read`,
          });
        }
        start = lo;
      }
      starts.set(p, start);
    }
    const claims = await this.#claim(parts, starts);
    for (const p of resets) {
      // The offsets start over: so does counting.
      const claim = claims.get(p);
      if (!claim) continue;
      const lo = low.get(p) ?? 0;
      if (
        await this.counting!.reset(p, claim.epoch, lo - 1).catch(() => false)
      ) {
        claim.lastCounted = lo - 1;
      } else claims.delete(p);
    }
    if (gen !== this.generation) return;
    const positions: Record<number, number> = {};
    for (const p of parts) {
      const start = starts.get(p)!;
      const claim = claims.get(p);
      // Records between the last counted offset and the HDFS position were
      // committed but not counted (their counts were lost with the previous
      // owner): read them again, to count only.
      const countFrom = claim
        ? Math.max(claim.lastCounted + 1, low.get(p) ?? 0)
        : Infinity;
      const readFrom = Math.min(start, countFrom);
      if (claim) this.counting!.start(p, claim.epoch);
      this.kafka.seek(p, readFrom);
      this.states.set(p, {
        ready: true,
        nextOffset: start,
        durableOffset: start,
        countFrom,
        claimPending: !!this.counting && !claim,
        consumedOffset: readFrom,
        fetchedOffset: readFrom,
        lastKafkaTs: undefined,
        buffer: undefined,
        lastProgressMs: Date.now(),
      });
      positions[p] = start;
    }
    this.kafka.resume(parts);
    log.info("recovered positions from HDFS", {
      positions,
      epochs: Object.fromEntries(rec.epochs),
      stagingRemoved: rec.stagingRemoved,
      batchesRolledForward: rec.batchesRolledForward,
      legacyWalk: rec.legacyWalk,
      ms: Math.round(performance.now() - t0),
    });
  }
}
