// The figures of the Revenue and Sales pages from their two order tables
// (pipeline/site/datasets.ts SALES): `orders` (day × country × device ×
// payment method × status) and `categoryOrders` (the same × category, where
// an order counts once per category it holds). Definitions as in
// analytics.mart_daily_sales: revenue, units sold and AOV count completed
// orders; orders placed count every status; the failed-order rate is
// failed / (completed + failed).
import { ratio, rollup, sortDesc, total, where } from "./drill.js";

const MEASURES = ["orders", "units", "amount"];

/** Folds rows of one group split by status into the report's measures. */
function fold(rows, by) {
  const groups = new Map();
  for (const r of rows) {
    const key = by.map((k) => r[k]).join("\u0001");
    let g = groups.get(key);
    if (!g) {
      g = {
        ...Object.fromEntries(by.map((k) => [k, r[k]])),
        revenue: 0,
        orders_completed: 0,
        orders_placed: 0,
        orders_failed: 0,
        units_sold: 0,
      };
      groups.set(key, g);
    }
    g.orders_placed += r.orders;
    if (r.status === "completed") {
      g.orders_completed += r.orders;
      g.revenue += r.amount;
      g.units_sold += r.units;
    } else if (r.status === "failed") g.orders_failed += r.orders;
  }
  return [...groups.values()].map((g) => ({
    ...g,
    aov: ratio(g.revenue, g.orders_completed),
    failed_order_rate: ratio(
      g.orders_failed,
      g.orders_completed + g.orders_failed,
    ),
  }));
}

/**
 * Totals, per day, per payment method, per country and per category for the
 * filters `f` ({from, to, country, device, category}).
 */
export function salesFigures(orders, categoryOrders, f) {
  // With a category chosen, only the orders holding it count (and their
  // lines of that category): the category table answers everything.
  const base = f.category ? categoryOrders : orders;
  const idx = where(base, f);
  const by = (keys) =>
    fold(rollup(base, idx, [...keys, "status"], MEASURES), keys);
  const totals = by([])[0] ??
    fold([{ ...total(base, [], MEASURES), status: "" }], [])[0];
  const cat = where(categoryOrders, f);
  return {
    totals,
    daily: by(["day"]).sort((a, b) => a.day.localeCompare(b.day)),
    byPayment: sortDesc(by(["payment_method"]), "revenue", "payment_method"),
    byCountry: sortDesc(by(["country"]), "revenue", "country"),
    byCategory: sortDesc(
      fold(rollup(categoryOrders, cat, ["category", "status"], MEASURES), [
        "category",
      ]),
      "revenue",
      "category",
    ),
  };
}
