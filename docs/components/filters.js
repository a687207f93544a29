// The one filter bar every event page uses, so filters look and behave alike.
import * as Inputs from "@observablehq/inputs";
import { html } from "htl";

/** Time windows offered (API duration strings). */
export const WINDOWS = [
  ["Last 5 minutes", "5m"],
  ["Last 15 minutes", "15m"],
  ["Last hour", "1h"],
  ["Last 6 hours", "6h"],
  ["Last 24 hours", "24h"],
  ["Last 7 days", "7d"],
];

/**
 * A form with window, event type, country, device and level. Its value is
 * the API's query parameters, e.g. {window: "15m", event_type: [], country: "DE"}.
 * `schema` is docs/data/schema.json; `omit` drops fields a page does not use.
 */
export function eventFilters(schema, { omit = [], window = "15m" } = {}) {
  const all = "All";
  const fields = {
    window: Inputs.select(new Map(WINDOWS), { label: "Window", value: window }),
    event_type: Inputs.select([all, ...schema.eventTypes], {
      label: "Event type",
    }),
    country: Inputs.select([all, ...schema.countries.map((c) => c.code)], {
      label: "Country",
      format: (
        c,
      ) => (c === all
        ? all
        : `${c} · ${schema.countries.find((x) => x.code === c)?.name ?? c}`),
    }),
    device: Inputs.select([all, ...schema.devices], { label: "Device" }),
    level: Inputs.select([all, ...schema.levels], { label: "Level" }),
  };
  for (const k of omit) delete fields[k];
  const form = Inputs.form(fields, {
    template: (inputs) =>
      html`<div class="filter-bar">${Object.values(inputs)}</div>`,
  });
  // Expose "All" as "no filter" so the value is ready to pass to the API.
  const read = () => {
    const v = {};
    for (const [k, input] of Object.entries(fields)) {
      v[k] = input.value === all ? undefined : input.value;
    }
    return v;
  };
  const wrapper = html`<div class="filters">${form}</div>`;
  wrapper.value = read();
  form.addEventListener("input", (event) => {
    event.stopPropagation();
    wrapper.value = read();
    wrapper.dispatchEvent(new Event("input", { bubbles: true }));
  });
  return wrapper;
}

/** "country DE · device mobile" for headings ("all events" when unfiltered). */
export function describeFilters(f) {
  const parts = Object.entries(f)
    .filter(([k, v]) => k !== "window" && v != null)
    .map(([k, v]) => `${k.replace("_", " ")} ${v}`);
  return parts.length ? parts.join(" · ") : "all events";
}
