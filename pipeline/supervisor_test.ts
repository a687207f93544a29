// The supervisor restarts a component that dies and stops them in order.
import assert from "node:assert/strict";
import { Supervisor, type SupervisorEvent } from "./supervisor.ts";

Deno.test("a crashing component is restarted with backoff; stop is in order", async () => {
  const dir = await Deno.makeTempDir({ prefix: "logpipe-sup-" });
  try {
    // One component crashes at once (exit 3); one runs until SIGTERM and
    // records when it got it.
    await Deno.writeTextFile(`${dir}/crash.ts`, "Deno.exit(3);\n");
    await Deno.writeTextFile(
      `${dir}/steady.ts`,
      `const name = Deno.args[0];
       Deno.addSignalListener("SIGTERM", () => {
         Deno.writeTextFileSync("${dir}/order", name + "\\n", { append: true });
         Deno.exit(0);
       });
       setInterval(() => {}, 1000);`,
    );
    const events: SupervisorEvent[] = [];
    const sup = new Supervisor(
      { projectRoot: dir, localDir: dir },
      (e) => events.push(e),
    );
    sup.start({ name: "crasher", args: [`${dir}/crash.ts`] });
    sup.start({ name: "first", args: [`${dir}/steady.ts`, "first"] });
    sup.start({ name: "second", args: [`${dir}/steady.ts`, "second"] });

    // Backoff 1 s then 2 s: within ~4 s the crasher has been restarted twice.
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (
        (sup.status().find((c) => c.name === "crasher")?.restarts ?? 0) >= 2
      ) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const crasher = sup.status().find((c) => c.name === "crasher")!;
    assert.ok(crasher.restarts >= 2, `restarts: ${crasher.restarts}`);
    assert.equal(crasher.lastExit?.code, 3);
    const exits = events.filter((e) =>
      e.kind === "exited" && e.name === "crasher"
    );
    assert.ok(exits.length >= 2);
    // Exponential: the second delay is twice the first.
    const delays = exits.map((e) => (e as { restartInMs: number }).restartInMs);
    assert.equal(delays[1], delays[0] * 2);

    // Give the steady ones a moment to install their signal handler.
    await new Promise((r) => setTimeout(r, 1500));
    await sup.stopInOrder(["second", "first"]);
    assert.equal(await Deno.readTextFile(`${dir}/order`), "second\nfirst\n");
    assert.ok(
      sup.status().every((c) => c.state === "stopped" && c.pid === undefined),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// deno.json's produce and consume tasks launch the components exactly as
// pipeline/runtime.ts says (which `up`, the tests and the benchmarks use).
Deno.test("deno.json tasks and pipeline/runtime.ts launch components alike", async () => {
  const { CONSUMER_RUNTIME, PRODUCER_RUNTIME } = await import("./runtime.ts");
  const tasks = JSON.parse(
    await Deno.readTextFile(new URL("../deno.json", import.meta.url)),
  ).tasks as Record<string, string>;
  const expected = (r: typeof CONSUMER_RUNTIME, script: string) =>
    [
      ...Object.entries(r.env).map(([k, v]) => `${k}=${v}`),
      "deno run -A",
      ...r.denoArgs,
      script,
    ].join(" ");
  assert.equal(tasks.produce, expected(PRODUCER_RUNTIME, "tasks/produce.ts"));
  assert.equal(tasks.consume, expected(CONSUMER_RUNTIME, "tasks/consume.ts"));
});
