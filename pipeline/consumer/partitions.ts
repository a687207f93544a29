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
import type { ConsumerContext, PartitionControl } from "./context.ts";
import { RetryAborted } from "./retry.ts";

/** What this consumer knows about one partition it owns (or owned). */
export interface PartitionState {
  /** Recovered and not lost since: records may be taken. */
  ready: boolean;
  /** Next offset to take into a batch. */
  nextOffset: number;
  /** Next offset after the last batch committed to HDFS. */
  durableOffset: number;
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

  constructor(
    readonly ctx: ConsumerContext,
    readonly kafka: PartitionControl,
    readonly admin: Pick<Admin, "fetchOffsets" | "fetchTopicOffsets">,
    readonly committer: HdfsCommitter,
    readonly groupId: string,
    /** Waits until no flush is in flight (before recovery reads HDFS). */
    readonly settleFlushes: () => Promise<void>,
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
    const positions: Record<number, number> = {};
    for (const p of parts) {
      // HDFS is the truth; with nothing there (first start, or the zones were
      // wiped on purpose) the group's offset, else the earliest record.
      let start = rec.resume.get(p) ?? (group.get(p) ?? -1);
      const lo = low.get(p) ?? 0;
      if (start < lo) {
        if (start >= 0) {
          log.warn(
            "resume offset below the log start: records were deleted by retention",
            { partition: p, resume: start, logStart: lo },
          );
        }
        start = lo;
      }
      this.kafka.seek(p, start);
      this.states.set(p, {
        ready: true,
        nextOffset: start,
        durableOffset: start,
        buffer: undefined,
        lastProgressMs: Date.now(),
      });
      positions[p] = start;
    }
    this.kafka.resume(parts);
    log.info("recovered positions from HDFS", {
      positions,
      stagingRemoved: rec.stagingRemoved,
      batchesRolledForward: rec.batchesRolledForward,
      ms: Math.round(performance.now() - t0),
    });
  }
}
