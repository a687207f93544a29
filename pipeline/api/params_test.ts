import assert from "node:assert/strict";
import {
  ApiError,
  countries,
  duration,
  int,
  listOf,
  parseParams,
  text,
} from "./params.ts";

const spec = {
  window: duration(10, 7 * 86400, 900),
  limit: int(1, 500, 50),
  country: countries(),
  level: listOf(["INFO", "WARN", "ERROR"] as const),
  q: text(20),
};

function rejects(query: string, pattern: RegExp) {
  assert.throws(() => parseParams(new URLSearchParams(query), spec));
  try {
    parseParams(new URLSearchParams(query), spec);
  } catch (e) {
    assert.ok(e instanceof ApiError);
    assert.equal(e.status, 400);
    assert.match(e.message, pattern);
  }
}

Deno.test("parseParams: defaults and typed values", () => {
  assert.deepEqual(parseParams(new URLSearchParams(""), spec), {
    window: 900,
    limit: 50,
    country: undefined,
    level: undefined,
    q: undefined,
  });
  const p = parseParams(
    new URLSearchParams(
      "window=6h&limit=7&country=DE,FR,DE&level=ERROR&q=<img>",
    ),
    spec,
  );
  assert.deepEqual(p, {
    window: 21600,
    limit: 7,
    country: ["DE", "FR"],
    level: ["ERROR"],
    q: "<img>",
  });
});

Deno.test("parseParams: every bad value is a 400 naming the parameter", () => {
  rejects("nope=1", /unknown parameter "nope"/);
  rejects("window=9y", /"window" must be a duration/);
  rejects("window=8d", /"window" must be between 10s and 7d/);
  rejects("window=5s", /between/);
  rejects("limit=0", /"limit" must be between 1 and 500/);
  rejects("limit=1.5", /"limit" must be an integer/);
  rejects("limit=1&limit=2", /more than once/);
  rejects("country=de", /2-letter upper-case/);
  rejects("country=DEU", /2-letter/);
  rejects("country=", /"country" is empty/);
  rejects("level=FATAL", /allowed: INFO, WARN, ERROR/);
  rejects(`q=${"x".repeat(21)}`, /longer than 20/);
  rejects("q=a%00b", /control characters/);
  rejects("country=DE';drop table x;--", /2-letter/);
});
