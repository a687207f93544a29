// The live event feed (a plain table: clicking a row selects the event) and
// the inspector showing every field of one event. All values are text nodes.
import { html } from "htl";
import { countryName } from "./countries.js";
import { fmtMoney } from "./format.js";

/** Columns of the feed as shown (and as downloaded). */
export const FEED_COLUMNS = [
  ["event_ts", "time (UTC)"],
  ["event_type", "type"],
  ["level", "level"],
  ["geo_country", "country"],
  ["geo_city", "city"],
  ["device_type", "device"],
  ["user_id", "user"],
  ["product_id", "product"],
  ["amount", "amount"],
  ["search_query", "search query"],
  ["error_code", "error"],
  ["response_time_ms", "ms"],
  ["event_id", "event id"],
];

const show = (key, v) => {
  if (v == null) return "";
  if (key === "event_ts") return String(v).replace("T", " ").replace("Z", "");
  if (key === "amount") return fmtMoney(v);
  return String(v);
};

/** The feed table; `onSelect(eventId)` runs when a row is clicked. */
export function feedTable(events, { selected, onSelect } = {}) {
  const rows = events.map((e) => {
    const tr = html`<tr data-event-id=${e.event_id} class=${`level-${e.level}${
      e.event_id === selected ? " selected" : ""
    }`}>${
      FEED_COLUMNS.map(
        ([k]) =>
          html`<td class=${k === "level" ? "level" : k} title=${
            k === "geo_country" ? countryName(e[k]) : show(k, e[k])
          }>${show(k, e[k])}</td>`,
      )
    }</tr>`;
    tr.onclick = () => {
      for (const other of tr.parentNode.querySelectorAll("tr.selected")) {
        other.classList.remove("selected");
      }
      tr.classList.add("selected");
      onSelect?.(e.event_id);
    };
    return tr;
  });
  return html`
    <div class="feed-scroll">
      <table class="feed">
        <thead>
          <tr>${FEED_COLUMNS.map(([, label]) => html`<th>${label}</th>`)}</tr>
        </thead>
        <tbody>${rows}</tbody>
      </table>
    </div>
  `;
}

/** Flattens nested JSON into [["details.query", "laptop"], ...]. */
export function flattenFields(value, prefix = "") {
  if (value === null || typeof value !== "object") return [[prefix, value]];
  const entries = Array.isArray(value)
    ? value.map((v, i) => [String(i), v])
    : Object.entries(value);
  if (!entries.length) return [[prefix, Array.isArray(value) ? "[]" : "{}"]];
  return entries.flatMap(([k, v]) =>
    flattenFields(v, prefix ? `${prefix}.${k}` : k)
  );
}

/** Every field of one event: the original JSON, flattened, plus Kafka coordinates. */
export function inspector(event) {
  if (!event) {
    return html`
      <div
        class="inspector muted">Click an event in the feed to inspect all its fields.</div>
    `;
  }
  const fields = flattenFields(event.event_json ?? {});
  fields.push(["kafka.partition", event.kafka_partition], [
    "kafka.offset",
    event.kafka_offset,
  ], ["committed_at", event.committed_at]);
  // deno-fmt-ignore: htl needs each row template to start with <tr> (fmt would put a newline first, and the row would fall out of the table)
  return html`
    <div class="inspector">
      <h3>Event <code>${event.event_id}</code></h3>
      <table>
        <thead>
          <tr>
            <th>field</th>
            <th>value</th>
          </tr>
        </thead>
        <tbody>${fields.map(([k, v]) =>
          html`<tr>
              <td><code>${k}</code></td>
              <td>${v == null ? "null" : String(v)}</td>
            </tr>`
        )}</tbody>
      </table>
      <details>
        <summary>Raw JSON</summary>
        <pre>${JSON.stringify(event.event_json, null, 2)}</pre>
      </details>
    </div>
  `;
}
