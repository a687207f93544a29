/** The producer loop and CLI without Kafka: NDJSON output (a real file). */
import assert from "node:assert/strict";
import { loadConfig } from "../config.ts";
import { createGenerator, recordBytes } from "../events/generator.ts";
import { produce } from "./producer.ts";
import { sha256Hex } from "../hash.ts";

const config = loadConfig();
const START = Date.UTC(2026, 5, 1);

async function sha(path: string): Promise<string> {
  return await sha256Hex(await Deno.readFile(path));
}

Deno.test({
  name:
    "--out NDJSON equals the generator's stream, in a worker or not, whatever the batch size",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const a = await Deno.makeTempFile(), b = await Deno.makeTempFile();
    try {
      const common = {
        config,
        seed: "loop",
        startTime: START,
        count: 12_345,
        eventRate: 500,
        badRate: 0.02,
      };
      const sa = await produce({
        ...common,
        out: a,
        batchSize: 1000,
        parallel: true,
      });
      const sb = await produce({
        ...common,
        out: b,
        batchSize: 4096,
        parallel: false,
      });
      assert.equal(sa.sent, 12_345);
      assert.equal(sb.sent, 12_345);
      assert.equal(await sha(a), await sha(b));
      assert.deepEqual(sa.bad, sb.bad);
      assert.deepEqual(sa.events, sb.events);
      // Byte for byte what the generator itself yields.
      const g = createGenerator({
        seed: "loop",
        startTime: START,
        rate: 500,
        badRate: 0.02,
      });
      const parts = g.take(12_345).map((
        r,
      ) => [recordBytes(r), new Uint8Array([10])]).flat();
      const expected = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let at = 0;
      for (const p of parts) {
        expected.set(p, at);
        at += p.length;
      }
      assert.deepEqual(await Deno.readFile(a), expected);
      assert.equal(
        sa.badTotal,
        Object.values(g.stats.bad).reduce((x, y) => x + y, 0),
      );
    } finally {
      await Deno.remove(a);
      await Deno.remove(b);
    }
  },
});

Deno.test({
  name: "--rate holds the rate; stop flushes everything generated",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const out = await Deno.makeTempFile();
    try {
      // --duration 2 s at 500/s.
      const timed = await produce({
        config,
        seed: "rate",
        startTime: START,
        rate: 500,
        durationMs: 2_000,
        out,
      });
      assert.ok(!timed.interrupted);
      // ~1000 (generous bounds: this machine is shared).
      assert.ok(
        timed.sent >= 700 && timed.sent <= 1100,
        `${timed.sent} in ${timed.elapsedMs} ms`,
      );
      // Stopped (as by Ctrl-C) once producing: everything generated is flushed.
      const stop = new AbortController();
      const s = await produce({
        config,
        seed: "rate",
        startTime: START,
        rate: 500,
        out,
        stop: stop.signal,
        onProgress: () => stop.abort(),
      });
      assert.ok(s.interrupted);
      assert.ok(s.sent > 0);
      assert.equal(s.sent, s.generated, "flushed");
      assert.equal(s.undelivered, 0);
      const lines =
        new TextDecoder().decode(await Deno.readFile(out)).split("\n")
          .length - 1;
      assert.equal(lines, s.sent);
    } finally {
      await Deno.remove(out);
    }
  },
});

Deno.test("produce CLI: --help, flag validation (exit 2, one line)", async () => {
  const root = new URL("../..", import.meta.url).pathname;
  const run = async (...args: string[]) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${root}tasks/produce.ts`, ...args],
      stdout: "piped",
      stderr: "piped",
    }).output();
    return {
      code: out.code,
      stdout: new TextDecoder().decode(out.stdout),
      stderr: new TextDecoder().decode(out.stderr),
    };
  };
  const help = await run("--help");
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--bad-rate/);
  for (
    const args of [
      ["--count", "abc"],
      ["--count", "0"],
      ["--rate", "-5"],
      ["--bad-rate", "1.5"],
      ["--duration", "soon"],
      ["--start-time", "yesterday"],
      ["--batch-size", "0"],
      ["--out", ""],
      ["--frobnicate"],
    ]
  ) {
    const r = await run(...args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.match(r.stderr, /^error: /);
  }
  // A run to stdout is reproducible and exits 0.
  const a = await run(
    "--count",
    "300",
    "--seed",
    "cli",
    "--start-time",
    "2026-01-01T00:00:00Z",
    "--out",
    "-",
    "--quiet",
  );
  const b = await run(
    "--count",
    "300",
    "--seed",
    "cli",
    "--start-time",
    "2026-01-01T00:00:00Z",
    "--out",
    "-",
    "--quiet",
  );
  assert.equal(a.code, 0, a.stderr);
  assert.equal(a.stdout, b.stdout);
  assert.equal(a.stdout.split("\n").length - 1, 300);
});
