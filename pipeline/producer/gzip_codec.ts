/**
 * A kafkajs GZIP codec with a chosen level, compressing on this thread or in
 * a worker thread (Deno's node:zlib compresses on the calling thread). Output
 * is standard gzip (any Kafka consumer reads it); decompression stays
 * kafkajs' own (zlib.unzip), so a consumer in the same process is unaffected.
 */
import { Buffer } from "node:buffer";
import { gzip, unzip } from "node:zlib";
import { promisify } from "node:util";
import { CompressionCodecs, CompressionTypes } from "kafkajs";

const unzipAsync = promisify(unzip);
const gzipAsync = promisify(gzip);

/** A gzip worker with request ids; `close()` ends it so the process can exit. */
export class GzipWorker {
  #worker: Worker;
  #next = 0;
  #pending = new Map<
    number,
    { resolve: (b: Buffer) => void; reject: (e: Error) => void }
  >();
  constructor(readonly level = 6) {
    this.#worker = new Worker(new URL("./gzip_worker.ts", import.meta.url), {
      type: "module",
    });
    this.#worker.onmessage = (
      e: MessageEvent<{ id: number; data?: Uint8Array; error?: string }>,
    ) => {
      const job = this.#pending.get(e.data.id);
      if (!job) return;
      this.#pending.delete(e.data.id);
      if (e.data.error !== undefined) job.reject(new Error(e.data.error));
      else {
        const d = e.data.data!;
        job.resolve(Buffer.from(d.buffer, d.byteOffset, d.byteLength));
      }
    };
    this.#worker.onerror = (e) => {
      e.preventDefault();
      for (const job of this.#pending.values()) {
        job.reject(new Error(`gzip worker failed: ${e.message}`));
      }
      this.#pending.clear();
    };
  }

  /** Gzips a copy of `data` (the caller's buffer is left alone). */
  gzip(data: Uint8Array): Promise<Buffer> {
    const id = this.#next++;
    const copy = new Uint8Array(data.byteLength);
    copy.set(data);
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ id, data: copy, level: this.level }, [
        copy.buffer,
      ]);
    });
  }

  close(): void {
    this.#worker.terminate();
    for (const job of this.#pending.values()) {
      job.reject(new Error("gzip worker closed"));
    }
    this.#pending.clear();
  }
}

/** What a sink asks of the process-wide GZIP codec. */
export interface GzipSetting {
  level: number;
  /** Compress in a worker thread (shared by every sink that asks for one). */
  worker: boolean;
}

/**
 * kafkajs keeps ONE codec table per process (`CompressionCodecs`), so the
 * GZIP codec cannot be set per producer. It is therefore reference-counted:
 * the first sink installs it, later sinks share it (and one gzip worker,
 * started on the first request for one), and only the last release restores
 * kafkajs' own codec and ends the worker. A sink closing never takes the
 * codec away from another one that is still sending.
 */
const codecs = CompressionCodecs as unknown as Record<number, () => unknown>;
let original: (() => unknown) | undefined;
let holders = 0;
let level = 6;
let sharedWorker: GzipWorker | undefined;

/** How many sinks hold the process-wide codec (for tests). */
export function gzipCodecHolders(): number {
  return holders;
}

/**
 * Routes kafkajs' GZIP compression through our codec while the returned
 * release function has not been called. Output is standard gzip;
 * decompression stays zlib's.
 */
export function acquireGzip(setting: GzipSetting): () => void {
  if (holders === 0) {
    original = codecs[CompressionTypes.GZIP];
    level = setting.level;
    codecs[CompressionTypes.GZIP] = () => ({
      compress: (encoder: { buffer: Uint8Array }) =>
        sharedWorker
          ? sharedWorker.gzip(encoder.buffer)
          : gzipAsync(encoder.buffer, { level }),
      decompress: (buffer: Buffer) => unzipAsync(buffer),
    });
  } else if (setting.level !== level) {
    throw new RangeError(
      `GZIP level ${setting.level} requested while level ${level} is in use in this process`,
    );
  }
  if (setting.worker) sharedWorker ??= new GzipWorker(level);
  holders++;
  let released = false;
  return () => {
    if (released) return;
    released = true;
    if (--holders > 0) return;
    codecs[CompressionTypes.GZIP] = original!;
    original = undefined;
    sharedWorker?.close();
    sharedWorker = undefined;
  };
}
