// Drill-down on the analytics and BI pages, all in the browser: the data
// loaders emit Arrow tables at the grain the filters need (day × country ×
// device × the page's breakdown, additive measures only; see
// pipeline/site/datasets.ts), the page decodes them with apache-arrow (from
// node_modules, never a CDN), keeps the rows the filters select and sums
// them per breakdown. Nothing is fetched after the page has loaded.
import { DataType, tableFromIPC } from "apache-arrow";
import * as Inputs from "@observablehq/inputs";
import { html } from "htl";
import { countryName } from "./countries.js";

/**
 * Decodes an Arrow IPC file (the bytes, or a promise of them) into a column
 * table `{length, columns: {name: values}}` (dictionary columns as their
 * strings, nulls kept as null). Pages pass
 * `FileAttachment("….arrow").arrayBuffer()`: calling `.arrayBuffer()` on
 * the attachment itself keeps Framework from adding its implicit
 * `npm:apache-arrow` import, which would come from a CDN.
 */
export async function loadTable(bytes) {
  const table = tableFromIPC(new Uint8Array(await bytes));
  const columns = {};
  for (const field of table.schema.fields) {
    const vector = table.getChild(field.name);
    // Numbers as typed arrays (fast); anything else, or numbers with nulls
    // (a typed array would read them as 0), as plain arrays.
    const numeric = DataType.isInt(field.type) || DataType.isFloat(field.type);
    columns[field.name] = numeric && !vector.nullCount
      ? vector.toArray()
      : Array.from(vector);
  }
  return { length: table.numRows, columns };
}

/** Adds a column computed from each row (e.g. a product's category by its id). */
export function withColumn(t, name, fn) {
  const values = new Array(t.length);
  for (let i = 0; i < t.length; i++) values[i] = fn(t.columns, i);
  return { length: t.length, columns: { ...t.columns, [name]: values } };
}

/** Sorted distinct non-null values of a column over several tables. */
export function distinctValues(tables, column) {
  const seen = new Set();
  for (const t of tables) {
    for (const v of t.columns[column] ?? []) if (v != null) seen.add(v);
  }
  return [...seen].sort();
}

/**
 * Indices of the rows of `t` that the filters keep. `f` is the filter bar's
 * value: {from, to} bound the `day` column (inclusive, 'YYYY-MM-DD'); any
 * other key filters the column of that name. A filter on a column the table
 * lacks is an error, unless the key is in `ignore` (the page then accounts
 * for it itself).
 */
export function where(t, f, { ignore = [] } = {}) {
  const tests = [];
  const { from, to, ...equal } = f;
  if (from || to) {
    const day = t.columns.day;
    if (!day) throw new Error("filter on day: the table has no day column");
    tests.push((i) => (!from || day[i] >= from) && (!to || day[i] <= to));
  }
  for (const [key, value] of Object.entries(equal)) {
    if (value == null || ignore.includes(key)) continue;
    const col = t.columns[key];
    if (!col) throw new Error(`filter on ${key}: the table has no such column`);
    tests.push((i) => col[i] === value);
  }
  const out = [];
  for (let i = 0; i < t.length; i++) {
    if (tests.every((test) => test(i))) out.push(i);
  }
  return out;
}

/**
 * Sums `measures` of the rows `idx` per distinct combination of the `by`
 * columns: [{...by values, ...sums, rows}], in first-seen order.
 */
export function rollup(t, idx, by, measures) {
  const groups = new Map();
  const cols = by.map((k) => t.columns[k]);
  const ms = measures.map((m) => t.columns[m]);
  for (const i of idx) {
    const key = cols.length === 1
      ? cols[0][i]
      : cols.map((c) => c[i]).join("\u0001");
    let g = groups.get(key);
    if (!g) {
      g = { rows: 0 };
      by.forEach((k, j) => (g[k] = cols[j][i]));
      measures.forEach((m) => (g[m] = 0));
      groups.set(key, g);
    }
    g.rows++;
    for (let j = 0; j < ms.length; j++) g[measures[j]] += ms[j][i] ?? 0;
  }
  return [...groups.values()];
}

/** Sums of `measures` over the rows `idx` (zeros when none). */
export function total(t, idx, measures) {
  return rollup(t, idx, [], measures)[0] ??
    Object.fromEntries([["rows", 0], ...measures.map((m) => [m, 0])]);
}

/** Number of distinct values of `column` over the rows `idx` (optionally only rows passing `keep`). */
export function countDistinct(t, idx, column, keep) {
  const col = t.columns[column];
  const seen = new Set();
  for (const i of idx) if (!keep || keep(i)) seen.add(col[i]);
  return seen.size;
}

/** Distinct values of `column` per combination of `by`: [{...by values, [as]: count}]. */
export function countDistinctBy(t, idx, by, column, as = column) {
  const groups = new Map();
  const cols = by.map((k) => t.columns[k]);
  const col = t.columns[column];
  for (const i of idx) {
    const key = cols.map((c) => c[i]).join("\u0001");
    let g = groups.get(key);
    if (!g) {
      g = {
        row: Object.fromEntries(by.map((k, j) => [k, cols[j][i]])),
        seen: new Set(),
      };
      groups.set(key, g);
    }
    g.seen.add(col[i]);
  }
  return [...groups.values()].map((g) => ({ ...g.row, [as]: g.seen.size }));
}

/** a / b, or null when b is 0 (a rate over nothing is no rate). */
export const ratio = (a, b) => (b ? a / b : null);

/** Sorts rows by `key` descending (ties by `tie` ascending), in place; returns them. */
export function sortDesc(rows, key, tie) {
  return rows.sort((a, b) =>
    (b[key] ?? 0) - (a[key] ?? 0) ||
    (tie ? String(a[tie]).localeCompare(String(b[tie])) : 0)
  );
}

const ALL = "All";

/**
 * The filter bar of the analytics and BI pages: date range (From, To, within
 * the data's days), country and device, plus `extra` selects
 * ({category: [...]} or {event_type: [...]}). Its value is
 * {from, to, country, device, ...extra}: 'YYYY-MM-DD' strings and column
 * values, undefined for "All". `tables` supply the days, countries and
 * devices on offer.
 */
export function drillFilters(tables, extra = {}) {
  const days = distinctValues(tables, "day");
  const first = days[0];
  const last = days.at(-1);
  const dateInput = (label, value) =>
    Inputs.date({ label, value, min: first, max: last, disabled: !first });
  const countries = distinctValues(tables, "country");
  const fields = {
    from: dateInput("From", first),
    to: dateInput("To", last),
    country: Inputs.select([ALL, ...countries], {
      label: "Country",
      format: (c) => (c === ALL ? ALL : `${c} · ${countryName(c)}`),
    }),
    device: Inputs.select([ALL, ...distinctValues(tables, "device")], {
      label: "Device",
    }),
  };
  for (const [key, values] of Object.entries(extra)) {
    fields[key] = Inputs.select([ALL, ...values], {
      label: key === "event_type" ? "Event type" : key[0].toUpperCase() +
        key.slice(1).replaceAll("_", " "),
    });
  }
  const reset = html`<button type="button" class="drill-reset">Reset</button>`;
  const bar = html`<div class="filter-bar drill-filters">${
    Object.entries(fields).map(([key, input]) => {
      input.dataset.filter = key;
      return input;
    })
  }${reset}</div>`;
  const read = () => {
    const v = {};
    for (const [key, input] of Object.entries(fields)) {
      const x = input.value;
      v[key] = x instanceof Date
        ? x.toISOString().slice(0, 10)
        : x === ALL || x == null
        ? undefined
        : x;
    }
    // A reversed range selects nothing; swap it rather than show zeros.
    if (v.from && v.to && v.from > v.to) [v.from, v.to] = [v.to, v.from];
    return v;
  };
  const wrapper = html`<div class="filters">${bar}</div>`;
  wrapper.value = read();
  const changed = (event) => {
    event?.stopPropagation();
    wrapper.value = read();
    wrapper.dispatchEvent(new Event("input", { bubbles: true }));
  };
  bar.addEventListener("input", changed);
  reset.onclick = () => {
    for (const [key, input] of Object.entries(fields)) {
      input.value = key === "from"
        ? dateOf(first)
        : key === "to"
        ? dateOf(last)
        : ALL;
    }
    changed();
  };
  return wrapper;
}

const dateOf = (day) => (day ? new Date(`${day}T00:00:00Z`) : null);

/** "2026-04-01 – 2026-04-03 · DE · mobile" (the filters in force, for captions). */
export function describeDrill(f) {
  const parts = [];
  if (f.from || f.to) {
    parts.push(f.from === f.to ? f.from : `${f.from ?? "…"} – ${f.to ?? "…"}`);
  }
  for (const [key, value] of Object.entries(f)) {
    if (key !== "from" && key !== "to" && value != null) parts.push(value);
  }
  return parts.join(" · ");
}

/** "revenue-by-country_2026-04-01_2026-04-03_DE" (a CSV name that says what it holds). */
export function csvName(base, f) {
  const parts = [base];
  if (f.from) parts.push(f.from);
  if (f.to && f.to !== f.from) parts.push(f.to);
  for (const [key, value] of Object.entries(f)) {
    if (key !== "from" && key !== "to" && value != null) {
      parts.push(String(value).replace(/[^A-Za-z0-9_-]+/g, "-"));
    }
  }
  return parts.join("_");
}
