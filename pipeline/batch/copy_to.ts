/**
 * `COPY … TO STDOUT` as a stream: pg-copy-streams 7.0.0's `to`, with one
 * defect fixed in memory.
 *
 * Its reader pulls chunks from the connection in a loop and parses each;
 * when a chunk ends the copy (CopyDone, CommandComplete), it hands the
 * connection back to pg and frees its buffer, but reports itself still
 * drained, so the loop reads the NEXT chunk (e.g. ReadyForQuery, when it
 * arrived separately) and parses it with the freed buffer: "Cannot read
 * properties of null (reading 'push')", uncaught, the process dies — and pg
 * never sees that chunk. Timing decides whether the tail comes in one chunk
 * or two, so the crash shows up on a busy machine (seen in the export
 * task). The fix: a parse that finished the copy reports "not drained", so
 * the loop stops and the rest of the stream flows to pg's own listener.
 * copy_to_test.ts feeds the two-chunk case without and with the fix.
 */
import { to } from "pg-copy-streams";

type CopyTo = ReturnType<typeof to>;

interface Parser {
  _parse(chunk: Buffer): boolean | undefined;
  _buffer: unknown;
  __logpipeFixed?: true;
}

/** Applies the fix to pg-copy-streams' COPY TO class (once). */
export function fixCopyToStream(proto: Parser): void {
  if (proto.__logpipeFixed) return;
  const parse = proto._parse;
  proto._parse = function (this: Parser, chunk: Buffer) {
    const drained = parse.call(this, chunk);
    // _cleanup() nulls the buffer once the copy is over: stop reading.
    return this._buffer === null ? false : drained;
  };
  proto.__logpipeFixed = true;
}

/** A COPY TO stream with the fix applied. */
export function copyTo(sql: string): CopyTo {
  const stream = to(sql);
  fixCopyToStream(Object.getPrototypeOf(stream) as Parser);
  return stream;
}
