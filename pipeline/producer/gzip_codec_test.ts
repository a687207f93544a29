import assert from "node:assert/strict";
import { gunzipSync } from "node:zlib";
import { CompressionCodecs, CompressionTypes } from "kafkajs";
import { acquireGzip, gzipCodecHolders } from "./gzip_codec.ts";

const codecs = CompressionCodecs as unknown as Record<
  number,
  () => { compress(e: { buffer: Uint8Array }): Promise<Uint8Array> }
>;

Deno.test({
  name:
    "GZIP codec: one sink closing leaves it in place for another; the last restores kafkajs' own",
  sanitizeResources: false,
  async fn() {
    const kafkajsOwn = codecs[CompressionTypes.GZIP];
    const releaseA = acquireGzip({ level: 1, worker: true });
    const releaseB = acquireGzip({ level: 1, worker: false });
    assert.equal(gzipCodecHolders(), 2);
    const ours = codecs[CompressionTypes.GZIP];
    assert.notEqual(ours, kafkajsOwn);
    assert.throws(
      () => acquireGzip({ level: 9, worker: false }),
      /level 9 requested while level 1 is in use/,
    );
    releaseA();
    releaseA(); // twice is harmless
    assert.equal(gzipCodecHolders(), 1);
    assert.equal(codecs[CompressionTypes.GZIP], ours, "B still compresses");
    const text = "logpipe ".repeat(1000);
    const packed = await ours().compress({
      buffer: new TextEncoder().encode(text),
    });
    assert.equal(gunzipSync(packed).toString(), text, "standard gzip");
    releaseB();
    assert.equal(gzipCodecHolders(), 0);
    assert.equal(codecs[CompressionTypes.GZIP], kafkajsOwn);
  },
});
