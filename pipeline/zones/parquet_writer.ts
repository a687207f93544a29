/**
 * NDJSON of flat event rows → Parquet (zstd), with an in-memory DuckDB.
 *
 * The consumer spills each micro-batch's rows as NDJSON (one FlatRow per
 * line); DuckDB's JSON reader parses them in its own threads, casts every
 * column to the contract type of FLAT_COLUMNS and writes the Parquet file.
 * This keeps the per-event work on the JavaScript thread to one
 * JSON.stringify, which is what makes ≥ 50k events/s possible on 2 cores.
 *
 * Memory does not grow with the file: the COPY streams, and what it holds
 * is the JSON reader's buffers (~40 MB, fixed) plus one row group, bounded
 * in rows AND bytes (ROW_GROUP_SIZE_BYTES, which needs
 * preserve_insertion_order=false; row order inside a file does not matter,
 * the file name carries its offset range). DuckDB still works on vectors
 * of up to 2,048 rows, so rows of tens of KB need a little more than
 * typical ones: 128 MB is enough for both. Measured (DuckDB 1.5.6, one
 * thread, peak RSS of the whole process): a 200,000-row file of typical
 * events (208 MB of NDJSON) 164 MB; 8,000 rows of 20 KB 199 MB, which
 * without the byte bound runs out of the 128 MB limit; at DuckDB's default
 * 122,880-row groups a 200,000-row file needs 355 MB.
 *
 * Row groups are 4,096 rows or 2 MB: in the consumer's benchmark (1M
 * events) that took the consumer's peak RSS from 324 to 277 MB against
 * 10,000 rows / 8 MB, for 8 % more Parquet bytes (55.5 instead of 51.3 MB)
 * and no loss of speed; readers (the batch load, DuckDB over the zone) read
 * row groups of any size.
 *
 * It lives in zones/ because it fixes the raw zone's file format, which more
 * than one stage depends on: the consumer writes with it and the batch's
 * tiny-file merge reads back with `readJsonColumns`.
 */
import { DuckDBInstance } from "@duckdb/node-api";
import { FLAT_COLUMNS } from "../events/flatten.ts";

function sqlString(s: string): string {
  return `'${s.replaceAll("'", "''")}'`;
}

/** The `columns={…}` struct of read_json for the flat row contract. */
export function readJsonColumns(): string {
  return "{" +
    FLAT_COLUMNS.map((c) => `${sqlString(c.name)}: ${sqlString(c.duckdbType)}`)
      .join(", ") +
    "}";
}

export interface ParquetWriterOptions {
  /** DuckDB worker threads (default 1: the other core runs the JS thread). */
  threads?: number;
  /** DuckDB memory limit (default 128MB; it spills to tempDirectory beyond). */
  memoryLimit?: string;
  /** Where DuckDB may spill (default: none, in-memory only). */
  tempDirectory?: string;
  /** Rows per Parquet row group (default 4,096). */
  rowGroupSize?: number;
  /** Bytes per row group, whatever the row sizes (default 2MB). */
  rowGroupBytes?: string;
}

/** Writes raw-zone Parquet files from NDJSON scratch files. */
export class ParquetWriter {
  #columns = readJsonColumns();
  #select = FLAT_COLUMNS.map((c) => `"${c.name}"`).join(", ");
  /** Conversions run one at a time (each already uses every DuckDB thread). */
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly instance: DuckDBInstance,
    readonly rowGroupSize: number,
    readonly rowGroupBytes: string,
  ) {}

  /** Opens an in-memory DuckDB for writing. */
  static async create(opts: ParquetWriterOptions = {}): Promise<ParquetWriter> {
    const instance = await DuckDBInstance.create(":memory:", {
      threads: String(opts.threads ?? 1),
      memory_limit: opts.memoryLimit ?? "128MB",
      // Row groups bounded in bytes (below) need unordered writing.
      preserve_insertion_order: "false",
      // Give freed memory back after each file instead of keeping 128 MB.
      allocator_flush_threshold: "8MB",
      // The JSON reader and the Parquet writer free their buffers in bulk
      // at the end of a file; below DuckDB's default threshold (512 MB)
      // that memory stayed with the allocator, so each file added to the
      // process's RSS: 4 conversions of 200,000 rows took it to 209 MB
      // instead of 148 MB, at the same speed.
      allocator_bulk_deallocation_flush_threshold: "32MB",
      ...(opts.tempDirectory ? { temp_directory: opts.tempDirectory } : {}),
    });
    if (!/^\d+(KB|MB)$/.test(opts.rowGroupBytes ?? "2MB")) {
      throw new RangeError(`invalid row group bytes: ${opts.rowGroupBytes}`);
    }
    return new ParquetWriter(
      instance,
      opts.rowGroupSize ?? 4_096,
      opts.rowGroupBytes ?? "2MB",
    );
  }

  /**
   * Converts `ndjsonPath` (FlatRow lines) to a zstd Parquet file at
   * `parquetPath` (rows in any order). Returns the row count DuckDB wrote,
   * which the caller checks against what it buffered.
   */
  convert(ndjsonPath: string, parquetPath: string): Promise<number> {
    const run = this.#queue.then(() => this.#convert(ndjsonPath, parquetPath));
    this.#queue = run.catch(() => {});
    return run;
  }

  async #convert(ndjsonPath: string, parquetPath: string): Promise<number> {
    // One streaming COPY: with one DuckDB thread it is as fast as parsing
    // into a table first and holds far less memory. A fresh connection per
    // file keeps nothing between files.
    const con = await this.instance.connect();
    try {
      const result = await con.run(
        `COPY (SELECT ${this.#select} FROM read_json(${
          sqlString(ndjsonPath)
        }, ` +
          `format = 'newline_delimited', columns = ${this.#columns}, ` +
          `maximum_object_size = 1048576)) TO ${sqlString(parquetPath)} ` +
          `(FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1, ` +
          `ROW_GROUP_SIZE ${this.rowGroupSize}, ROW_GROUP_SIZE_BYTES '${this.rowGroupBytes}')`,
      );
      return Number(result.rowsChanged);
    } finally {
      con.closeSync();
    }
  }

  /** Closes the database. */
  close(): void {
    this.instance.closeSync();
  }
}
