/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
/**
 * Worker: gzips buffers for the Kafka producer off the main thread (Deno's
 * node:zlib runs on the calling thread, and compression was ~15% of the
 * producer's main-thread CPU).
 */
import { gzipSync } from "node:zlib";

interface Job {
  id: number;
  data: Uint8Array;
  level: number;
}

self.onmessage = (e: MessageEvent<Job>) => {
  const { id, data, level } = e.data;
  try {
    const out = gzipSync(data, { level });
    const copy = new Uint8Array(out.byteLength);
    copy.set(out);
    self.postMessage({ id, data: copy }, [copy.buffer]);
  } catch (err) {
    self.postMessage({ id, error: String(err) });
  }
};
