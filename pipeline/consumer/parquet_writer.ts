/**
 * NDJSON of flat event rows → Parquet (zstd), with an in-memory DuckDB.
 *
 * The consumer spills each micro-batch's rows as NDJSON (one FlatRow per
 * line); DuckDB's JSON reader parses them in its own threads, casts every
 * column to the contract type of FLAT_COLUMNS and writes the Parquet file.
 * This keeps the per-event work on the JavaScript thread to one
 * JSON.stringify, which is what makes ≥ 50k events/s possible on 2 cores.
 */
import { DuckDBConnection, DuckDBInstance } from "@duckdb/node-api";
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
  /** DuckDB worker threads (default 2). */
  threads?: number;
  /** DuckDB memory limit (default 256MB; it spills beyond). */
  memoryLimit?: string;
  /** Rows per Parquet row group (default 122,880, DuckDB's). */
  rowGroupSize?: number;
}

/** Writes raw-zone Parquet files from NDJSON scratch files. */
export class ParquetWriter {
  #columns = readJsonColumns();
  #select = FLAT_COLUMNS.map((c) => `"${c.name}"`).join(", ");

  private constructor(
    readonly instance: DuckDBInstance,
    readonly connection: DuckDBConnection,
    readonly rowGroupSize: number,
  ) {}

  /** Opens an in-memory DuckDB for writing. */
  static async create(opts: ParquetWriterOptions = {}): Promise<ParquetWriter> {
    const instance = await DuckDBInstance.create(":memory:", {
      threads: String(opts.threads ?? 2),
      memory_limit: opts.memoryLimit ?? "256MB",
    });
    const connection = await instance.connect();
    return new ParquetWriter(
      instance,
      connection,
      opts.rowGroupSize ?? 122_880,
    );
  }

  /**
   * Converts `ndjsonPath` (FlatRow lines) to a zstd Parquet file at
   * `parquetPath`, rows in file order. Returns the row count DuckDB wrote,
   * which the caller checks against what it buffered.
   */
  async convert(ndjsonPath: string, parquetPath: string): Promise<number> {
    // Parse into a table first, then COPY it: measured ~40 % faster than a
    // single COPY (SELECT … FROM read_json) here, whose insertion-order
    // preservation serialises the two stages. zstd level 1 is as small as the
    // default level 3 for these rows and about twice as fast.
    await this.connection.run(
      `CREATE OR REPLACE TEMP TABLE micro_batch AS SELECT ${this.#select} FROM read_json(` +
        `${
          sqlString(ndjsonPath)
        }, format = 'newline_delimited', columns = ${this.#columns}, ` +
        `maximum_object_size = 16777216)`,
    );
    try {
      const result = await this.connection.run(
        `COPY micro_batch TO ${
          sqlString(parquetPath)
        } (FORMAT parquet, COMPRESSION zstd, ` +
          `COMPRESSION_LEVEL 1, ROW_GROUP_SIZE ${this.rowGroupSize})`,
      );
      return Number(result.rowsChanged);
    } finally {
      await this.connection.run("DROP TABLE IF EXISTS micro_batch");
    }
  }

  /** Closes the connection and the database. */
  close(): void {
    this.connection.closeSync();
    this.instance.closeSync();
  }
}
