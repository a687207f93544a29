// Bad input to `services` is one line on stderr and exit code 2.
import assert from "node:assert/strict";

async function services(args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./services.ts", import.meta.url).pathname,
      ...args,
    ],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stderr: new TextDecoder().decode(out.stderr).trim(),
  };
}

Deno.test("an unknown sub-command is a one-line error, exit 2", async () => {
  const r = await services(["restart"]);
  assert.equal(r.code, 2);
  assert.equal(r.stderr.split("\n").length, 1, r.stderr);
  assert.match(r.stderr, /unknown sub-command "restart"/);
});

Deno.test("an unknown flag and a missing sub-command exit 2", async () => {
  assert.equal((await services(["up", "--fast"])).code, 2);
  assert.equal((await services([])).code, 2);
});

for (
  const [name, value, pattern] of [
    ["LOGPIPE_DATABASE_URL", "mysql://x@h/db", /must use postgres/],
    ["LOGPIPE_DATABASE_URL", "not a url", /not a valid URL/],
    ["LOGPIPE_WEBHDFS_URL", "ftp://namenode:9870", /must use http/],
    ["LOGPIPE_KAFKA_BROKERS", "broker-without-port", /not host:port/],
  ] as const
) {
  Deno.test(`a malformed ${name} ("${value}") is a one-line error, exit 2`, async () => {
    const r = await services(["status"], { [name]: value });
    assert.equal(r.code, 2);
    assert.equal(r.stderr.split("\n").length, 1, r.stderr);
    assert.match(r.stderr, pattern);
  });
}
