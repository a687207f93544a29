/**
 * Reads only some columns of a Parquet file in HDFS: the site's data loaders
 * must not download a whole export (fact_event is the largest) to draw one
 * histogram.
 *
 * WebHDFS serves byte ranges (OPEN with offset and length), and a Parquet
 * file says in its footer where each column chunk lies. So: fetch the footer,
 * write it at its offset into a sparse local file of the same length, let
 * DuckDB's `parquet_metadata()` (which reads the footer only) list the
 * column chunks, fetch the chunks of the wanted columns into the same
 * offsets, and read the local file with DuckDB selecting those columns only.
 * DuckDB never touches the holes, so the result equals reading the whole
 * file; the bytes moved are the footer plus the wanted column chunks.
 */
import type { DuckDBConnection } from "@duckdb/node-api";
import type { WebHdfs } from "../clients/webhdfs.ts";

/** Bytes transferred for one file, and the file's size. */
export interface RangeReadStats {
  path: string;
  bytesRead: number;
  fileBytes: number;
  requests: number;
}

/** Ranges closer than this are fetched in one request. */
const MERGE_GAP = 64 * 1024;
/** How much of the file's end is read first, hoping it holds the whole footer. */
const TAIL_GUESS = 32 * 1024;
const MAGIC = new TextEncoder().encode("PAR1");

/** Reads `length` bytes at `offset` of an HDFS file (WebHDFS OPEN with a range). */
export async function readRange(
  hdfs: WebHdfs,
  path: string,
  offset: number,
  length: number,
): Promise<Uint8Array> {
  const res = await fetch(
    hdfs.url(path, "OPEN", {
      offset: String(offset),
      length: String(length),
    }),
    { signal: AbortSignal.timeout(hdfs.timeoutMs) },
  );
  if (!res.ok) {
    const text = await res.text().catch(() => "");
    throw new Error(
      `WebHDFS OPEN ${path} [${offset}, +${length}]: HTTP ${res.status} ${
        text.slice(0, 200)
      }`,
    );
  }
  const bytes = new Uint8Array(await res.arrayBuffer());
  if (bytes.length !== length) {
    throw new Error(
      `WebHDFS OPEN ${path} [${offset}, +${length}]: got ${bytes.length} bytes`,
    );
  }
  return bytes;
}

/** Merges [start, end) ranges that overlap or lie within MERGE_GAP. */
export function mergeRanges(
  ranges: Array<[number, number]>,
  gap = MERGE_GAP,
): Array<[number, number]> {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  const out: Array<[number, number]> = [];
  for (const [s, e] of sorted) {
    const last = out.at(-1);
    if (last && s <= last[1] + gap) last[1] = Math.max(last[1], e);
    else out.push([s, e]);
  }
  return out;
}

/**
 * Copies the columns `columns` of the HDFS Parquet file `path` (of
 * `fileBytes` bytes) into the local file `local`, which then reads in DuckDB
 * like the original for those columns. Unknown column names are an error
 * (a loader asking for a column the export lacks should fail loudly).
 */
export async function fetchColumns(
  hdfs: WebHdfs,
  conn: DuckDBConnection,
  path: string,
  fileBytes: number,
  columns: string[],
  local: string,
): Promise<RangeReadStats> {
  const stats: RangeReadStats = {
    path,
    bytesRead: 0,
    fileBytes,
    requests: 0,
  };
  const get = async (offset: number, length: number) => {
    stats.requests++;
    stats.bytesRead += length;
    return await readRange(hdfs, path, offset, length);
  };
  const file = await Deno.open(local, {
    create: true,
    write: true,
    truncate: true,
  });
  try {
    await file.truncate(fileBytes);
    const put = async (offset: number, bytes: Uint8Array) => {
      await file.seek(offset, Deno.SeekMode.Start);
      let done = 0;
      while (done < bytes.length) {
        done += await file.write(bytes.subarray(done));
      }
    };
    // The footer: [FileMetaData][4-byte little-endian length]["PAR1"].
    const tailLen = Math.min(fileBytes, TAIL_GUESS);
    let tail = await get(fileBytes - tailLen, tailLen);
    const footerLen = new DataView(tail.buffer, tail.byteOffset)
      .getUint32(tail.length - 8, true);
    if (footerLen + 8 > tail.length) {
      tail = await get(fileBytes - footerLen - 8, footerLen + 8);
    }
    await put(fileBytes - tail.length, tail);
    await put(0, MAGIC);
    const meta = await conn.runAndReadAll(
      `select path_in_schema, data_page_offset, dictionary_page_offset, total_compressed_size
         from parquet_metadata('${local.replaceAll("'", "''")}')`,
    );
    const chunks = meta.getRowObjects();
    const known = new Set(chunks.map((c) => String(c.path_in_schema)));
    const missing = columns.filter((c) => !known.has(c));
    if (missing.length && chunks.length) {
      throw new Error(`${path}: no column ${missing.join(", ")}`);
    }
    const wanted = new Set(columns);
    const ranges: Array<[number, number]> = [];
    for (const c of chunks) {
      if (!wanted.has(String(c.path_in_schema))) continue;
      const data = Number(c.data_page_offset);
      const dict = c.dictionary_page_offset == null
        ? data
        : Number(c.dictionary_page_offset);
      const start = Math.min(data, dict);
      ranges.push([start, start + Number(c.total_compressed_size)]);
    }
    // Bytes already read with the footer are not fetched again (a small
    // file is then read in one request).
    const tailStart = fileBytes - tail.length;
    for (const [s, e] of mergeRanges(ranges)) {
      const end = Math.min(e, tailStart);
      if (s < end) await put(s, await get(s, end - s));
    }
  } finally {
    file.close();
  }
  return stats;
}
