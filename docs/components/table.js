// Tables with a CSV download of exactly the rows and columns they show.
import { html } from "htl";

/**
 * A text cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, or a
 * tab or carriage return first) gets a leading `'`, so an event's search
 * text cannot become `=HYPERLINK(...)` in the user's Excel (OWASP "CSV
 * injection"). Plain numbers, negative ones included, stay numbers.
 */
export function neutraliseFormula(s) {
  if (!/^[=+\-@\t\r]/.test(s)) return s;
  if (/^[+-]?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(s)) return s;
  return `'${s}`;
}

/** RFC 4180 CSV of `rows` restricted to `columns` (header = column names). */
export function toCsv(rows, columns) {
  const cell = (v) => {
    if (v == null) return "";
    const s = v instanceof Date
      ? v.toISOString()
      : typeof v === "object"
      ? JSON.stringify(v)
      : neutraliseFormula(String(v));
    return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
  };
  return [
    columns.map(cell).join(","),
    ...rows.map((r) => columns.map((c) => cell(r[c])).join(",")),
  ].join("\r\n") + "\r\n";
}

/**
 * A "Download CSV" button for rows × columns, saved as `filename`. `rows`
 * may be a function returning them (a table whose order changes).
 */
export function csvButton(rows, columns, filename) {
  const current = typeof rows === "function" ? rows : () => rows;
  const button = html`
    <button type="button"
      class="csv-download">Download CSV (${current().length} rows)</button>
  `;
  button.onclick = () => {
    const blob = new Blob([toCsv(current(), columns)], {
      type: "text/csv;charset=utf-8",
    });
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = filename.endsWith(".csv") ? filename : `${filename}.csv`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  };
  return button;
}

/** At most this many rows are drawn (the CSV always has them all). */
export const MAX_DRAWN_ROWS = 1000;

const defaultFormat = (v) =>
  v == null
    ? ""
    : typeof v === "number"
    ? v.toLocaleString("en-US", { maximumFractionDigits: 3 })
    : v instanceof Date
    ? v.toISOString()
    : String(v);

/**
 * A sortable table (click a header; again to reverse) plus a CSV button.
 * Built with DOM calls and text nodes only: values are never HTML, and no
 * inline event-handler attribute is ever created (the site's CSP refuses
 * them; Inputs.table's htl templates create some). Options: columns,
 * header ({column: label}), format ({column: fn}), sort / reverse (initial
 * order), caption, filename.
 */
export function dataTable(
  rows,
  {
    columns,
    header = {},
    format = {},
    sort,
    reverse = false,
    filename = "table",
    caption,
  } = {},
) {
  columns ??= rows.length ? Object.keys(rows[0]) : [];
  let order = [...rows];
  let sortedBy = sort;
  let descending = reverse;
  const table = document.createElement("table");
  const thead = table.createTHead();
  const headRow = thead.insertRow();
  const tbody = table.createTBody();
  const numeric = new Set(
    columns.filter((c) => rows.some((r) => typeof r[c] === "number")),
  );
  const draw = () => {
    tbody.replaceChildren();
    for (const r of order.slice(0, MAX_DRAWN_ROWS)) {
      const tr = tbody.insertRow();
      for (const c of columns) {
        const td = tr.insertCell();
        td.textContent = (format[c] ?? defaultFormat)(r[c], r);
        if (numeric.has(c)) td.className = "num";
      }
    }
    for (const th of headRow.cells) {
      th.dataset.sort = th.dataset.column === sortedBy
        ? (descending ? "desc" : "asc")
        : "";
    }
  };
  const sortBy = (c) => {
    descending = sortedBy === c ? !descending : numeric.has(c);
    sortedBy = c;
    const dir = descending ? -1 : 1;
    order = [...rows].sort((a, b) => {
      const x = a[c], y = b[c];
      if (x == null || y == null) return (x == null) - (y == null);
      return dir *
        (typeof x === "number" && typeof y === "number"
          ? x - y
          : String(x).localeCompare(String(y)));
    });
    draw();
  };
  for (const c of columns) {
    const th = document.createElement("th");
    th.textContent = header[c] ?? c;
    th.title = `sort by ${header[c] ?? c}`;
    th.dataset.column = c;
    if (numeric.has(c)) th.className = "num";
    th.addEventListener("click", () => sortBy(c));
    headRow.append(th);
  }
  if (sort) {
    descending = !reverse;
    sortedBy = undefined;
    sortBy(sort);
  } else draw();
  const more = rows.length > MAX_DRAWN_ROWS
    ? html`
      <div
        class="muted">${MAX_DRAWN_ROWS.toLocaleString("en-US")} of ${rows.length
          .toLocaleString("en-US")} rows shown; the CSV has them all.</div>
    `
    : "";
  const empty = rows.length ? "" : noData("No rows for these filters.");
  return html`<figure class="data-table" data-filename=${filename}>
    <div class="table-toolbar">${
    caption ? html`<span class="muted">${caption}</span>` : html`<span></span>`
  }${csvButton(() => order, columns, filename)}</div>
    <div class="table-scroll">${table}</div>${more}${empty}
  </figure>`;
}

/** A placeholder for an empty table or chart ("no data yet, as of …"). */
export function noData(message = "No data yet.", asOf) {
  return html`<div class="no-data">${message}${
    asOf
      ? html`
        <span class="muted">(as of ${asOf})</span>
      `
      : ""
  }</div>`;
}
