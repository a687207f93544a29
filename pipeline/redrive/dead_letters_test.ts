/**
 * How dead letters are shown: every byte that is not plainly visible text
 * becomes an escape, the escaping can be read back to the exact bytes, and
 * a value kept only in part says how much is missing.
 */
import assert from "node:assert/strict";
import { escapeBytes, viewOf } from "./dead_letters.ts";
import { encodeBase64 } from "../zones/mod.ts";
import { Rng } from "../events/rng.ts";

const enc = new TextEncoder();
const esc = (b: Uint8Array | string, max?: number) =>
  escapeBytes(typeof b === "string" ? enc.encode(b) : b, max).text;

/** The inverse of escapeBytes (what a person reading it can do). */
function unescape(s: string): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < s.length;) {
    if (s[i] !== "\\") {
      const cp = s.codePointAt(i)!;
      out.push(...enc.encode(String.fromCodePoint(cp)));
      i += cp > 0xffff ? 2 : 1;
      continue;
    }
    const c = s[i + 1];
    if (c === "x") {
      out.push(parseInt(s.slice(i + 2, i + 4), 16));
      i += 4;
    } else if (c === "u") {
      const end = s.indexOf("}", i);
      out.push(
        ...enc.encode(String.fromCodePoint(parseInt(s.slice(i + 3, end), 16))),
      );
      i = end + 1;
    } else {
      out.push({ t: 9, n: 10, r: 13, "\\": 0x5c }[c as "t"]!);
      i += 2;
    }
  }
  return new Uint8Array(out);
}

Deno.test("escapeBytes: visible text as is, everything else as an escape", () => {
  assert.equal(esc('{"q":"<b>café 🚀</b>"}'), '{"q":"<b>café 🚀</b>"}');
  assert.equal(esc("a\\b\tc\nd\re"), "a\\\\b\\tc\\nd\\re");
  assert.equal(
    esc("\u0000\u0007\u001b\u007f\u0085"),
    "\\u{0000}\\u{0007}\\u{001B}\\u{007F}\\u{0085}",
  );
  // Bidi overrides ("Trojan Source"), zero-width, separators, BOM, U+FFFD.
  assert.equal(
    esc("\u202e\u2066\u200b\u2028\ufeff\ufffd"),
    "\\u{202E}\\u{2066}\\u{200B}\\u{2028}\\u{FEFF}\\u{FFFD}",
  );
  // Not UTF-8: a lone byte, an overlong form, an encoded surrogate, past U+10FFFF.
  assert.equal(esc(new Uint8Array([0x61, 0xff, 0x62])), "a\\xFFb");
  assert.equal(esc(new Uint8Array([0xc0, 0x80])), "\\xC0\\x80");
  assert.equal(esc(new Uint8Array([0xed, 0xa0, 0x80])), "\\xED\\xA0\\x80");
  assert.equal(
    esc(new Uint8Array([0xf4, 0x90, 0x80, 0x80])),
    "\\xF4\\x90\\x80\\x80",
  );
  assert.equal(esc(new Uint8Array([0xe2, 0x82])), "\\xE2\\x82"); // cut short
  // The limit: a sequence cut by it is shown as bytes; the rest is counted.
  const euro = enc.encode("ab€cd");
  assert.deepEqual(escapeBytes(euro, 3), { text: "ab\\xE2", omittedBytes: 4 });
  assert.deepEqual(escapeBytes(euro, 5), { text: "ab€", omittedBytes: 2 });
});

Deno.test("escapeBytes: the escaped text reads back to the exact bytes (fuzz)", () => {
  const rng = new Rng("escape-fuzz");
  const pool = [
    ...enc.encode('a\\"<>{}\t\n\r é€🚀\u202e\u0000\u2028\ufeff'),
    0x80,
    0xbf,
    0xc0,
    0xc3,
    0xe2,
    0xed,
    0xf0,
    0xf4,
    0xf5,
    0xff,
  ];
  for (let n = 0; n < 3000; n++) {
    const b = new Uint8Array(rng.int(0, 40));
    for (let i = 0; i < b.length; i++) {
      b[i] = rng.chance(0.5) ? rng.pick(pool) : rng.int(0, 255);
    }
    const text = esc(b, 1000);
    assert.deepEqual(unescape(text), b, text);
    // Nothing invisible or markup-breaking is left raw.
    // deno-lint-ignore no-control-regex -- looking for controls
    assert.ok(!/[\u0000-\u001f\u007f-\u009f\u2028\u202e\ufeff]/.test(text));
  }
});

Deno.test("viewOf: coordinates, escaped key, headers and value; a kept prefix says what is missing", () => {
  const full = enc.encode(`{"x":"${"y".repeat(5000)}"}`);
  const v = viewOf({
    topic: "LogEvents",
    partition: 3,
    offset: 42,
    kafka_timestamp: "2026-01-01T00:00:00.000Z",
    key_base64: encodeBase64(enc.encode("sess_\u0000")),
    // Only the first 100 bytes of 5,010 were kept (a record too large).
    value_base64: encodeBase64(full.subarray(0, 100)),
    value_bytes: full.length,
    headers: { schema_version: encodeBase64(enc.encode("1")), empty: null },
    reason: "too_large",
    detail: "5010 bytes > 65536\u0007",
    dead_lettered_at: "2026-01-01T00:00:01.000Z",
    consumer_id: "c",
    file: "f.ndjson",
    path: "/x/f.ndjson",
  });
  assert.equal(v.key, "sess_\\u{0000}");
  assert.deepEqual(v.headers, { schema_version: "1", empty: null });
  assert.equal(v.value, new TextDecoder().decode(full.subarray(0, 100)));
  assert.equal(v.value_omitted_bytes, full.length - 100);
  assert.equal(v.detail, "5010 bytes > 65536\\u{0007}");
  assert.deepEqual([v.topic, v.partition, v.offset], ["LogEvents", 3, 42]);
});
