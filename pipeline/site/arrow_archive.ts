/**
 * What the analytics and BI data loaders emit: one tar archive per page
 * (`docs/data/<page>.tar.ts`), holding `meta.json` (status, as-of time,
 * source, row counts, bytes read) and one Arrow IPC file per table. The
 * pages read a member with `FileAttachment("data/<page>/<table>.arrow")`
 * (Observable Framework extracts it at build time) and decode it with
 * apache-arrow from node_modules.
 *
 * Columns are typed from their values, as small as they fit: strings
 * dictionary-encoded (day, country, device, category, … repeat a lot),
 * integers in 8, 16 or 32 bits, other numbers as 64-bit floats.
 */
import {
  Bool,
  type DataType,
  Dictionary,
  Float64,
  Int16,
  Int32,
  Int8,
  Table,
  tableToIPC,
  Utf8,
  type Vector,
  vectorFromArray,
} from "apache-arrow";

/** The Arrow type that holds every value of a column exactly and compactly. */
export function arrowTypeFor(values: unknown[]): DataType {
  let strings = 0, numbers = 0, bools = 0, ints = 0;
  let min = 0, max = 0;
  const distinct = new Set<unknown>();
  for (const v of values) {
    if (v == null) continue;
    if (typeof v === "string") {
      strings++;
      distinct.add(v);
    } else if (typeof v === "number") {
      numbers++;
      if (Number.isInteger(v)) {
        ints++;
        if (v < min) min = v;
        if (v > max) max = v;
      }
    } else if (typeof v === "boolean") bools++;
    else strings++; // anything else travels as its text
  }
  if (numbers && !strings && !bools) {
    if (ints < numbers) return new Float64();
    if (min >= -128 && max <= 127) return new Int8();
    if (min >= -32768 && max <= 32767) return new Int16();
    if (min >= -(2 ** 31) && max < 2 ** 31) return new Int32();
    return new Float64();
  }
  if (bools && !strings && !numbers) return new Bool();
  const n = distinct.size + 1;
  return new Dictionary(
    new Utf8(),
    n <= 127 ? new Int8() : n <= 32767 ? new Int16() : new Int32(),
  );
}

/**
 * An Arrow table of `rows` (plain objects; every row has the same keys).
 * `columns` names the columns when there may be no rows (an empty table
 * keeps its schema, as Utf8 columns).
 */
export function arrowTable(
  rows: Record<string, unknown>[],
  columns: string[] = rows.length ? Object.keys(rows[0]) : [],
): Table {
  const vectors: Record<string, Vector> = {};
  for (const name of columns) {
    const values = rows.map((r) => {
      const v = r[name];
      return v == null || typeof v === "number" || typeof v === "string" ||
          typeof v === "boolean"
        ? v ?? null
        : String(v);
    });
    vectors[name] = vectorFromArray(
      values,
      rows.length ? arrowTypeFor(values) : new Utf8(),
    );
  }
  return new Table(vectors);
}

/** Arrow IPC file bytes of `rows`. */
export function arrowFile(
  rows: Record<string, unknown>[],
  columns?: string[],
): Uint8Array {
  return tableToIPC(arrowTable(rows, columns), "file");
}

const enc = new TextEncoder();

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, "0") + "\0";
}

/** A POSIX ustar archive of regular files (names up to 100 bytes). */
export function tarArchive(
  files: Array<{ name: string; bytes: Uint8Array }>,
  mtime = Math.floor(Date.now() / 1000),
): Uint8Array {
  const blocks: Uint8Array[] = [];
  for (const { name, bytes } of files) {
    const nameBytes = enc.encode(name);
    if (nameBytes.length > 100) throw new Error(`tar: name too long: ${name}`);
    const h = new Uint8Array(512);
    const put = (s: string, at: number) => h.set(enc.encode(s), at);
    h.set(nameBytes, 0);
    put(octal(0o644, 8), 100); // mode
    put(octal(0, 8), 108); // uid
    put(octal(0, 8), 116); // gid
    put(octal(bytes.length, 12), 124);
    put(octal(mtime, 12), 136);
    put("        ", 148); // checksum placeholder: 8 spaces
    put("0", 156); // regular file
    put("ustar\0" + "00", 257);
    const sum = h.reduce((a, b) => a + b, 0);
    put(sum.toString(8).padStart(6, "0") + "\0 ", 148);
    blocks.push(h, bytes);
    const pad = (512 - (bytes.length % 512)) % 512;
    if (pad) blocks.push(new Uint8Array(pad));
  }
  blocks.push(new Uint8Array(1024)); // two zero blocks end the archive
  const out = new Uint8Array(blocks.reduce((n, b) => n + b.length, 0));
  let at = 0;
  for (const b of blocks) {
    out.set(b, at);
    at += b.length;
  }
  return out;
}
