import assert from "node:assert/strict";
import { sha256Hex, toHex } from "./hash.ts";

Deno.test("sha256Hex: the FIPS 180-2 test vectors, from a string or bytes", async () => {
  assert.equal(
    await sha256Hex(""),
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  );
  assert.equal(
    await sha256Hex("abc"),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
  assert.equal(
    await sha256Hex(new TextEncoder().encode("abc")),
    await sha256Hex("abc"),
  );
  // A view into a larger buffer hashes only its own bytes.
  const big = new TextEncoder().encode("xxabcxx");
  assert.equal(await sha256Hex(big.subarray(2, 5)), await sha256Hex("abc"));
  // UTF-8, not UTF-16.
  assert.equal(
    await sha256Hex("é"),
    await sha256Hex(new Uint8Array([0xc3, 0xa9])),
  );
});

Deno.test("toHex: two lowercase digits a byte", () => {
  assert.equal(toHex(new Uint8Array([0, 1, 15, 16, 255])), "00010f10ff");
  assert.equal(toHex(new Uint8Array()), "");
});
