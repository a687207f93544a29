import assert from "node:assert/strict";
import { formatMs } from "./format.ts";

Deno.test("formatMs: ms below a second, seconds below a minute, then minutes", () => {
  assert.equal(formatMs(250), "250 ms");
  assert.equal(formatMs(999.6), "1000 ms");
  assert.equal(formatMs(1500), "1.5 s");
  assert.equal(formatMs(12_400), "12 s");
  assert.equal(formatMs(90_000), "1 min 30 s");
  assert.equal(formatMs(120_000), "2 min");
});
