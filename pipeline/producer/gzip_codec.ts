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

let original: (() => unknown) | undefined;

/**
 * Routes kafkajs' GZIP compression through our codec for this process: at
 * `level`, in `worker` if given (else on this thread). `undefined` restores
 * kafkajs' own codec.
 */
export function useGzip(
  setting: { level: number; worker?: GzipWorker } | undefined,
): void {
  const codecs = CompressionCodecs as unknown as Record<number, () => unknown>;
  original ??= codecs[CompressionTypes.GZIP];
  if (!setting) {
    codecs[CompressionTypes.GZIP] = original;
    return;
  }
  const { level, worker } = setting;
  codecs[CompressionTypes.GZIP] = () => ({
    compress: (encoder: { buffer: Uint8Array }) =>
      worker
        ? worker.gzip(encoder.buffer)
        : gzipAsync(encoder.buffer, { level }),
    decompress: (buffer: Buffer) => unzipAsync(buffer),
  });
}
