/**
 * The COPY TO fix (copy_to.ts): the copy's end and pg's next message in
 * two chunks already waiting on the socket. Unfixed, pg-copy-streams parses
 * the second chunk after freeing its buffer and throws; fixed, the data is
 * complete and the second chunk goes to pg's own listener.
 */
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { to } from "pg-copy-streams";
import { fixCopyToStream } from "./copy_to.ts";

function message(code: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(code, 0, "latin1");
  head.writeUInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

/** Runs a COPY TO over a fake connection; returns the data and what pg got. */
function run(stream: ReturnType<typeof to>) {
  const socket = new PassThrough();
  const toPg: Buffer[] = [];
  socket.on("data", (b: Buffer) => toPg.push(b));
  // Two chunks waiting: the whole copy, then ReadyForQuery alone.
  const copy = Buffer.concat([
    message("H", Buffer.from([0, 0, 1, 0, 0])),
    message("d", Buffer.from("a,1\n")),
    message("d", Buffer.from("b,2\n")),
    message("c", Buffer.alloc(0)),
    message("C", Buffer.from("COPY 2\0")),
  ]);
  const ready = message("Z", Buffer.from("I"));
  const out: Buffer[] = [];
  stream.on("data", (b: Buffer) => out.push(b));
  stream.submit({ stream: socket, query() {} } as never);
  socket.write(copy);
  socket.write(ready);
  stream.read(0);
  return { data: () => Buffer.concat(out).toString(), toPg };
}

Deno.test("pg-copy-streams COPY TO: the chunk after the copy's end crashes it unfixed; fixed, all rows and pg gets ReadyForQuery", async () => {
  // Unfixed (nothing in this process has applied the fix yet): the throw
  // may come from the socket's event, uncaught, as in the batch.
  const errors: unknown[] = [];
  const onError = (e: ErrorEvent) => {
    e.preventDefault();
    errors.push(e.error);
  };
  globalThis.addEventListener("error", onError);
  try {
    run(to("copy x to stdout"));
  } catch (err) {
    errors.push(err);
  }
  await new Promise((r) => setTimeout(r, 20));
  globalThis.removeEventListener("error", onError);
  assert.match(String(errors[0]), /Cannot read properties of null/);

  const stream = to("copy x to stdout");
  fixCopyToStream(Object.getPrototypeOf(stream));
  const r = run(stream);
  await new Promise((res) => setTimeout(res, 20));
  assert.equal(r.data(), "a,1\nb,2\n");
  assert.ok(
    Buffer.concat(r.toPg).includes(Buffer.from("Z")),
    "the ReadyForQuery chunk reached pg's listener",
  );
});
