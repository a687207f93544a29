// Tables with a CSV download of exactly the rows and columns they show.
import * as Inputs from "@observablehq/inputs";
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

/** A "Download CSV" button for rows × columns, saved as `filename`. */
export function csvButton(rows, columns, filename) {
  const button = html`
    <button type="button"
      class="csv-download">Download CSV (${rows.length} rows)</button>
  `;
  button.onclick = () => {
    const blob = new Blob([toCsv(rows, columns)], {
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

/**
 * Inputs.table (values rendered as text, never HTML) plus a CSV button.
 * Options: columns, header, format, width, sort, reverse, rows (visible rows).
 */
export function dataTable(
  rows,
  { columns, filename = "table", caption, ...options } = {},
) {
  columns ??= rows.length ? Object.keys(rows[0]) : [];
  const table = Inputs.table(rows, {
    columns,
    rows: 12,
    layout: "auto",
    select: false,
    ...options,
  });
  return html`<figure class="data-table" data-filename=${filename}>
    <div class="table-toolbar">${
    caption ? html`<span class="muted">${caption}</span>` : ""
  }${csvButton(rows, columns, filename)}</div>
    ${table}
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
