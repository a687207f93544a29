/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
/** Worker: runs the seeded generator for WorkerSource (see source.ts). */
import { createGenerator, type GeneratorOptions } from "../events/generator.ts";
import { takeBatch } from "./source.ts";

let gen: ReturnType<typeof createGenerator> | undefined;

self.onmessage = (
  e: MessageEvent<
    { type: "init"; opts: GeneratorOptions } | { type: "take"; n: number }
  >,
) => {
  try {
    if (e.data.type === "init") {
      gen = createGenerator(e.data.opts);
      self.postMessage({ ready: true });
      return;
    }
    const batch = takeBatch(gen!, e.data.n);
    // Transfer the bytes of invalid-UTF-8 records instead of copying them.
    const transfer = batch.values.filter((v): v is Uint8Array =>
      typeof v !== "string"
    ).map((v) => v.buffer as ArrayBuffer);
    self.postMessage(batch, transfer);
  } catch (err) {
    self.postMessage({
      error: err instanceof Error ? err.message : String(err),
    });
  }
};
