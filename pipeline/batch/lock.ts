/**
 * The batch's run lock: a Postgres session-level advisory lock held on a
 * dedicated connection for the whole run, so two runs (cron tick, a manual
 * `deno task batch`, a backfill) never overlap, even from different hosts.
 *
 * If that connection dies (Postgres restarted mid-run) the lock is gone with
 * it; `ensureHeld()` runs before every task try, reconnects and takes the
 * lock again, and fails the run if another run got it in between.
 */
import pg from "pg";
import { NonRetryableError } from "./retry.ts";

/** The lock key: stable text, hashed by Postgres to its 64-bit key. */
export const RUN_LOCK_NAME = "logpipe.batch.run";

/** Another run holds the lock. */
export class LockBusyError extends Error {
  override name = "LockBusyError";
}

/** A held session advisory lock. */
export class RunLock {
  readonly #url: string;
  #client: pg.Client | undefined;
  #broken = false;
  #released = false;

  private constructor(url: string) {
    this.#url = url;
  }

  /**
   * Takes the lock without waiting. Returns undefined when another session
   * holds it; throws when Postgres cannot be reached.
   */
  static async tryAcquire(url: string): Promise<RunLock | undefined> {
    const lock = new RunLock(url);
    return (await lock.#connectAndLock()) ? lock : undefined;
  }

  async #connectAndLock(): Promise<boolean> {
    const client = new pg.Client({
      connectionString: this.#url,
      connectionTimeoutMillis: 5_000,
      application_name: "logpipe-batch-lock",
      // Detect a dead server while idle, so ensureHeld() knows.
      keepAlive: true,
    });
    client.on("error", () => {
      this.#broken = true;
    });
    client.on("end", () => {
      this.#broken = true;
    });
    try {
      await client.connect();
      const res = await client.query(
        "select pg_try_advisory_lock(hashtextextended($1, 0)) as ok",
        [RUN_LOCK_NAME],
      );
      if (!res.rows[0].ok) {
        await client.end().catch(() => {});
        return false;
      }
    } catch (err) {
      await client.end().catch(() => {});
      throw err;
    }
    this.#client = client;
    this.#broken = false;
    return true;
  }

  /**
   * Makes sure the lock is still ours: pings the connection, and after a
   * lost connection reconnects and re-takes it. Throws (retryable) while
   * Postgres is down; throws NonRetryableError when another run took it.
   */
  async ensureHeld(): Promise<void> {
    if (this.#released) {
      throw new NonRetryableError("run lock already released");
    }
    if (!this.#broken && this.#client) {
      try {
        await this.#client.query("select 1");
        return;
      } catch {
        this.#broken = true;
      }
    }
    await this.#client?.end().catch(() => {});
    this.#client = undefined;
    if (!(await this.#connectAndLock())) {
      throw new NonRetryableError(
        "lost the run lock while Postgres was unreachable, and another batch run holds it now",
      );
    }
  }

  /** Releases the lock (closing the session releases it too). */
  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    const client = this.#client;
    this.#client = undefined;
    if (!client) return;
    try {
      if (!this.#broken) {
        await client.query(
          "select pg_advisory_unlock(hashtextextended($1, 0))",
          [
            RUN_LOCK_NAME,
          ],
        );
      }
    } catch { /* the session end below releases it anyway */ }
    await client.end().catch(() => {});
  }
}
