/**
 * `deno task consume` flag handling: --help exits 0, a bad flag or value is
 * one line on stderr and exit code 2 (no stack trace). No services needed:
 * flags are validated before anything connects.
 */
import assert from "node:assert/strict";

const root = new URL("../..", import.meta.url).pathname;

async function consume(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${root}tasks/consume.ts`, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

Deno.test("consume --help prints the usage and exits 0", async () => {
  const r = await consume(["--help"]);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /--until-caught-up/);
  assert.match(r.stdout, /--rotate-interval/);
});

Deno.test("consume rejects bad flags with one line and exit 2", async () => {
  for (
    const args of [
      ["--bogus"],
      ["--max-batch-records", "x"],
      ["--max-batch-records", "0"],
      ["--max-batch-age-ms", "-5"],
      ["--rotate-interval", "5"],
      ["--rotate-interval", "0s"],
      ["--rotate-interval", "2d"],
      ["--session-timeout-ms", "1000"],
      ["--failpoint", "nope:1"],
      ["--failpoint", "committed:0"],
      ["--failpoint", "committed:1:pause"],
    ]
  ) {
    const r = await consume(args);
    assert.equal(r.code, 2, args.join(" "));
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 1, `${args.join(" ")}: ${r.stderr}`);
    assert.match(lines[0], /^error: /);
  }
});
