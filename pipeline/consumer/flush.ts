/**
 * The flush/commit path: a partition's open micro-batch → files (Parquet
 * per event hour via DuckDB, NDJSON dead letters per day) → the HDFS commit
 * protocol (../zones/commit.ts) → only then the Kafka offset.
 *
 * Partitions flush concurrently, one flush per partition at a time, and
 * always in the background: reading goes on while DuckDB and HDFS work. Due
 * batches (age, caught-up) are started by the run loop's tick; a FULL batch
 * is started from eachBatch (`rotate`), which first waits for the
 * partition's previous flush: the back-pressure. So a partition holds at
 * most two batches, one filling and one being written.
 */
import { formatDataFileName } from "../zones/names.ts";
import type { BatchFile, HdfsCommitter } from "../zones/commit.ts";
import type { ParquetWriter } from "../zones/parquet_writer.ts";
import type { MetricsAggregator } from "./metrics.ts";
import {
  CONSUMER_BACKOFF,
  type ConsumerContext,
  type PartitionControl,
  RetryAborted,
} from "./context.ts";
import type { PartitionOwnership, PartitionState } from "./partitions.ts";
import type { Failpoints } from "./failpoints.ts";
import { retry } from "../async.ts";

/** Writes and commits partitions' open batches. */
export class BatchFlusher {
  /** In-flight flush per partition. */
  #flushing = new Map<number, Promise<void>>();
  /** Batches committed since start. */
  batches = 0;

  constructor(
    readonly ctx: ConsumerContext,
    readonly ownership: PartitionOwnership,
    readonly committer: HdfsCommitter,
    readonly parquet: ParquetWriter,
    readonly kafka: PartitionControl,
    readonly metrics: MetricsAggregator,
    readonly failpoints: Failpoints,
    /** Called after each committed batch (status back to "running"). */
    readonly onCommitted: () => void = () => {},
  ) {}

  /** Starts (without waiting) the flush of every due partition not already flushing. */
  flushDue(gen: number, due: (p: number, st: PartitionState) => boolean): void {
    for (const [p, st] of this.ownership.states) {
      if (st.buffer && !this.#flushing.has(p) && due(p, st)) {
        this.#start(p, gen, "due").catch((err) => this.#onError(err));
      }
    }
  }

  #onError(err: unknown): void {
    if (err instanceof RetryAborted) return;
    this.ctx.log.error("flush failed", { error: err });
    this.ctx.fail(err);
  }

  /** Starts the flush of partition p's open batch; one flush per partition at a time. */
  #start(p: number, gen: number, why: string): Promise<void> {
    const running = this.#flushing.get(p);
    if (running) return running;
    const run = this.#flush(p, gen, why).finally(() =>
      this.#flushing.delete(p)
    );
    this.#flushing.set(p, run);
    return run;
  }

  /**
   * Rotates partition p's full batch: waits for p's in-flight flush (the
   * back-pressure), then starts the flush of what p holds now without
   * waiting for it, so the next batch fills while this one is converted and
   * committed (on 2 cores DuckDB's conversion runs beside the JavaScript
   * thread instead of after it). A failure fails the consumer, as a due
   * flush's does.
   */
  async rotate(p: number, gen: number): Promise<void> {
    for (let f = this.#flushing.get(p); f; f = this.#flushing.get(p)) {
      await f.catch(() => {});
    }
    this.#start(p, gen, "size").catch((err) => this.#onError(err));
  }

  /** Waits for p's in-flight flush, then flushes what it holds now. */
  async flushNow(p: number, gen: number, why: string): Promise<void> {
    for (let f = this.#flushing.get(p); f; f = this.#flushing.get(p)) await f;
    await this.#start(p, gen, why);
  }

  /** Flushes every partition's open batch (concurrently) and waits. */
  async flushAll(why: string): Promise<void> {
    const gen = this.ownership.generation;
    await Promise.all(
      [...this.ownership.states.keys()].map((p) => this.flushNow(p, gen, why)),
    );
  }

  /** Waits until no flush is in flight. */
  async settle(): Promise<void> {
    while (this.#flushing.size) {
      await Promise.allSettled([...this.#flushing.values()]);
    }
  }

  /** Writes and commits the open batch of partition `p` (via #start only). */
  async #flush(p: number, gen: number, why: string): Promise<void> {
    const { topic, log } = this.ctx;
    const st = this.ownership.states.get(p);
    const b = st?.buffer;
    if (!st || !b || b.records === 0) return;
    st.buffer = undefined;
    const stillOwner = () =>
      this.ownership.owns(p, gen, st) && !this.ctx.forceSignal.aborted;
    if (!stillOwner()) {
      await b.discard();
      return;
    }
    const t0 = performance.now();
    try {
      const groups = await b.finish();
      const files: BatchFile[] = [];
      let bytes = 0;
      for (const g of groups) {
        const name = formatDataFileName({
          topic,
          partition: p,
          firstOffset: g.firstOffset,
          lastOffset: g.lastOffset,
          extension: g.kind === "raw" ? "parquet" : "ndjson",
        });
        let localPath = g.path;
        if (g.kind === "raw") {
          localPath = `${g.path}.parquet`;
          const out = localPath;
          const rows = await retry(() => this.parquet.convert(g.path, out), {
            ...CONSUMER_BACKOFF,
            maxAttempts: 5,
            minTimeout: 500,
            signal: this.ctx.forceSignal,
            onRetry: (err, attempt) =>
              log.warn("Parquet conversion failed", { attempt, error: err }),
          });
          if (rows !== g.count) {
            throw new Error(
              `DuckDB wrote ${rows} rows to ${name}, expected ${g.count}`,
            );
          }
          // The NDJSON is no longer needed: free the disk now.
          await Deno.remove(g.path).catch(() => {});
        }
        // Streamed from disk by the commit: never held whole in memory.
        bytes += (await Deno.stat(localPath)).size;
        files.push({ zone: g.kind, dir: g.dir, name, localPath });
      }
      const prepareMs = Math.round(performance.now() - t0);
      const outcome = await this.committer.commit(
        {
          topic,
          partition: p,
          firstOffset: b.firstOffset,
          lastOffset: b.lastOffset,
          files,
        },
        {
          stillOwner,
          onPhase: (phase) => this.failpoints.reached(phase),
        },
        (what, fn) => this.ctx.retry(what, fn),
      );
      if (outcome === "fenced") {
        log.warn("batch not committed: partition no longer ours", {
          partition: p,
          firstOffset: b.firstOffset,
          lastOffset: b.lastOffset,
        });
        // Fenced in HDFS although the group says we still own it (another
        // member's recovery got in between): recover it again.
        if (stillOwner()) this.ownership.recoverAgain(p, gen);
        return;
      }
      st.durableOffset = b.lastOffset + 1;
      st.lastProgressMs = Date.now();
      if (outcome === "committed-then-fenced") {
        log.warn(
          "batch committed, then the partition was taken over in HDFS: recovering it again",
          { partition: p, lastOffset: b.lastOffset },
        );
        if (stillOwner()) this.ownership.recoverAgain(p, gen);
      }
      this.batches++;
      this.onCommitted();
      this.metrics.recordCommitted(
        b.events,
        b.deadLetters,
        files.length,
        bytes,
      );
      log.debug("batch committed", {
        partition: p,
        firstOffset: b.firstOffset,
        lastOffset: b.lastOffset,
        records: b.records,
        files: files.length,
        bytes,
        why,
        prepareMs,
        ms: Math.round(performance.now() - t0),
      });
      // Kafka's committed offset only mirrors HDFS (for lag tools); a failure
      // here is harmless, the next start recovers from HDFS.
      try {
        await this.kafka.commitOffset(p, b.lastOffset + 1);
      } catch (err) {
        log.warn("Kafka offset commit failed (HDFS has the batch)", {
          partition: p,
          error: err,
        });
      }
      await this.failpoints.reached("kafka-committed");
    } finally {
      await b.discard();
      await Promise.all(
        [...b.groups.values()].map((g) =>
          Deno.remove(`${g.path}.parquet`).catch(() => {})
        ),
      );
    }
  }
}
