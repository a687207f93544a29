// KPI cards and small status elements (text only: values are never HTML).
import { html } from "htl";

/**
 * A KPI card: title, big value, optional note. The template has no
 * whitespace around the card: htl would wrap it in a <span>, and the card
 * would no longer be a grid item of its row (uneven rows, extra margins).
 */
export function kpi(title, value, note, id) {
  // deno-fmt-ignore: keep the template free of surrounding whitespace (see above)
  return html`<div class="card kpi" data-kpi=${id ?? title}><h2>${title}</h2><span class="big">${value}</span>${note ? html`<div class="muted">${note}</div>` : ""}</div>`;
}

/** "as of <time>" line for a dataset (and a warning when the API failed). */
export function asOfLine(data, { source } = {}) {
  if (data?.error) {
    return html`<p class="as-of error">API unavailable: ${data.error} · retrying</p>`;
  }
  return html`<p class="as-of">As of ${
    data?.asOf
      ? new Date(data.asOf).toISOString().slice(0, 19).replace("T", " ") +
        " UTC"
      : "–"
  }${source ? ` · ${source}` : ""}</p>`;
}

/** A green/red status pill. */
export function statusPill(up, text) {
  return html`<span class=${`pill ${up ? "up" : "down"}`}>${
    text ?? (up ? "up" : "down")
  }</span>`;
}

/**
 * The header line of a page fed by a data loader (docs/data/*.json.ts):
 * "as of" the export or batch, and a "no data yet" notice when the marts
 * are missing or empty.
 */
export function loaderStatus(env) {
  const asOf = env.asOf
    ? new Date(env.asOf).toISOString().slice(0, 19).replace("T", " ") + " UTC"
    : "–";
  const built =
    new Date(env.builtAt).toISOString().slice(0, 19).replace("T", " ") + " UTC";
  const line =
    html`<p class="as-of">As of ${asOf} · ${env.source} · page built ${built}</p>`;
  if (env.status === "ok") return line;
  const why = {
    missing:
      "No data yet: the marts have not been built or exported (run deno task batch, then rebuild the site).",
    empty: "No data yet: the marts exist but hold no rows.",
    error: "No data yet: the data could not be read.",
  }[env.status];
  return html`
    ${line}<div class="no-data"
      data-status=${env.status}>${why}${env.message
        ? html`<div class="muted">${env.message}</div>`
        : ""}</div>
  `;
}

/** The BI pages' links: the Power BI .pbids download and the dbt docs. */
export function biLinks(pbids) {
  return html`
    <p
      class="muted bi-links">Power BI: <a href=${pbids
        .href} download="logpipe.pbids">download the connection file (.pbids)</a> (PostgreSQL, DirectQuery, read-only role) · <a href="/dbt-docs/">dbt docs</a> for every model and column.</p>
  `;
}
