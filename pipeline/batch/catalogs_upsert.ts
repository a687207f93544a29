/**
 * The catalogs step (the original loaded users and products by hand, once):
 * every run upserts data/users.json and data/products.json into raw.users
 * and raw.products, with each product's price and stock as of the run's
 * reference time, so the dbt snapshot sees price and stock changes.
 *
 * The reference time is the latest event time loaded (not the wall clock),
 * so rerunning over the same data gives the same catalog. `updated_at` only
 * moves when a row's values really change, and then to the reference time.
 */
import type { Pool } from "../clients/postgres.ts";
import { withTransaction } from "../clients/postgres.ts";
import {
  type Catalogs,
  generateCatalogs,
  loadCatalogs,
  productsAsOf,
} from "../events/catalogs.ts";
import type { Logger } from "../log.ts";

const USER_COLUMNS = [
  "user_id",
  "username",
  "email",
  "full_name",
  "first_name",
  "last_name",
  "sex",
  "age",
  "country",
  "city",
  "signup_date",
] as const;

const PRODUCT_COLUMNS = [
  "product_id",
  "name",
  "category",
  "subcategory",
  "brand",
  "price",
  "stock",
  "rating",
  "date_added",
  "weight",
  "description",
] as const;

/** The reference time: the newest event loaded, or undefined when raw.events is empty. */
export async function referenceTime(pool: Pool): Promise<Date | undefined> {
  const res = await pool.query("select max(event_ts) as t from raw.events");
  return res.rows[0].t ? new Date(res.rows[0].t) : undefined;
}

/** The committed catalogs, or (if data/ lacks them) the same ones generated from the seed. */
export async function readCatalogs(log: Logger): Promise<Catalogs> {
  try {
    return await loadCatalogs();
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    log.warn(
      "data/users.json or data/products.json missing; generating them from the seed",
    );
    return generateCatalogs();
  }
}

async function upsert(
  pool: Pool,
  table: "users" | "products",
  key: string,
  columns: readonly string[],
  rows: readonly object[],
  effectiveAt: Date,
): Promise<{ inserted: number; updated: number }> {
  return await withTransaction(pool, async (client) => {
    // jsonb_populate_recordset types each value by the target table's columns.
    const res = await client.query(
      `with src as (
         select ${columns.join(", ")}
         from jsonb_populate_recordset(null::raw.${table}, $1::jsonb)
       ), up as (
         insert into raw.${table} as t (${columns.join(", ")}, updated_at)
         select ${columns.join(", ")}, $2::timestamptz from src
         on conflict (${key}) do update set
           ${
        columns.filter((c) => c !== key).map((c) => `${c} = excluded.${c}`)
          .join(", ")
      },
           updated_at = $2::timestamptz
         where (${
        columns.filter((c) => c !== key).map((c) => `t.${c}`).join(", ")
      })
           is distinct from
           (${
        columns.filter((c) => c !== key).map((c) => `excluded.${c}`).join(", ")
      })
         returning (xmax = 0) as inserted
       )
       select count(*) filter (where inserted)::int as inserted,
              count(*) filter (where not inserted)::int as updated from up`,
      [JSON.stringify(rows), effectiveAt.toISOString()],
    );
    return res.rows[0];
  });
}

/** What the catalogs step changed. */
export interface CatalogUpsertResult {
  asOf: string | null;
  users: { inserted: number; updated: number };
  products: { inserted: number; updated: number };
}

/** Upserts both catalogs; prices and stock as of `asOf` (default: the reference time). */
export async function upsertCatalogs(
  pool: Pool,
  log: Logger,
  asOf?: Date,
): Promise<CatalogUpsertResult> {
  const catalogs = await readCatalogs(log);
  const at = asOf ?? await referenceTime(pool);
  // updated_at says when the values took effect: the reference time (not the
  // wall clock, which would make the snapshot's history, and so dim_product,
  // differ between two pipelines fed the same events). Before any event the
  // catalogs as listed are in force from the epoch.
  const effectiveAt = at ?? new Date(0);
  // Before any event: the catalogs as listed (list price, base stock).
  const products = at ? productsAsOf(catalogs.products, at) : catalogs.products;
  const users = await upsert(
    pool,
    "users",
    "user_id",
    USER_COLUMNS,
    catalogs.users,
    effectiveAt,
  );
  const prods = await upsert(
    pool,
    "products",
    "product_id",
    PRODUCT_COLUMNS,
    products,
    effectiveAt,
  );
  return { asOf: at?.toISOString() ?? null, users, products: prods };
}
