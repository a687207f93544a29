// Chart functions (Plot); pages pass data and width and get an SVG figure.
// Widths are clamped: resize() may report a tiny width on the first frame,
// and margins wider than the chart would draw negative rects.
const w = (width) => Math.max(width ?? 640, 320);
import * as Plot from "@observablehq/plot";
import * as topojson from "topojson-client";
import { countryName, numericOf } from "./countries.js";
import { noData } from "./table.js";

/** Event-type colours, identical on every page. */
export const TYPE_COLORS = {
  product_view: "#4e79a7",
  search: "#76b7b2",
  add_to_cart: "#edc948",
  purchase: "#59a14f",
  order_complete: "#2f7d32",
  order_failed: "#e15759",
  error: "#b07aa1",
};
export const typeColor = {
  domain: Object.keys(TYPE_COLORS),
  range: Object.values(TYPE_COLORS),
  legend: true,
};

const STATE_COLORS = {
  success: "#59a14f",
  // The run succeeded but set data aside (quarantine): look at it.
  success_with_warnings: "#edc948",
  failed: "#e15759",
  running: "#4e79a7",
  up_for_retry: "#f28e2b",
  skipped: "#bab0ac",
  queued: "#d4d4d4",
};

/** Stacked events/s by type over time. */
export function eventsPerSecond(series, { width, height = 260 } = {}) {
  if (!series?.length) return noData("No events in this window.");
  return Plot.plot({
    width: w(width),
    height,
    marginLeft: 50,
    x: { type: "utc", label: null },
    y: { label: "events/s", grid: true },
    color: typeColor,
    marks: [
      Plot.areaY(series, {
        x: (d) => new Date(d.t),
        y: "per_sec",
        fill: "event_type",
        order: Object.keys(TYPE_COLORS),
        tip: true,
      }),
      Plot.ruleY([0]),
    ],
  });
}

/** Error rate (ERROR-level events / all events) per step. */
export function errorRate(errorSeries, { width, height = 200 } = {}) {
  if (!errorSeries?.length) return noData("No events in this window.");
  return Plot.plot({
    width: w(width),
    height,
    marginLeft: 50,
    x: { type: "utc", label: null },
    y: {
      label: "error rate",
      percent: true,
      grid: true,
      domain: [
        0,
        Math.max(5, 100 * Math.max(...errorSeries.map((d) => d.rate))),
      ],
    },
    marks: [
      Plot.areaY(errorSeries, {
        x: (d) => new Date(d.t),
        y: "rate",
        fill: "#e15759",
        fillOpacity: 0.15,
      }),
      Plot.lineY(errorSeries, {
        x: (d) => new Date(d.t),
        y: "rate",
        stroke: "#e15759",
        tip: true,
      }),
      Plot.ruleY([0]),
    ],
  });
}

/** Horizontal bars of `y` per `x` category (sorted, labelled). */
export function bars(
  data,
  {
    x,
    y,
    label = y,
    width,
    color = "#4e79a7",
    fill,
    format,
    height,
    marginLeft = 120,
  } = {},
) {
  if (!data?.length) return noData();
  return Plot.plot({
    width: w(width),
    height: height ?? Math.max(80, 26 * data.length + 40),
    marginLeft,
    marginRight: 60,
    x: { label, grid: true },
    y: { label: null },
    color: fill ? typeColor : undefined,
    marks: [
      Plot.barX(data, {
        x: y,
        y: x,
        fill: fill ?? color,
        sort: { y: "-x" },
        tip: true,
      }),
      Plot.text(data, {
        x: y,
        y: x,
        text: (d) => (format ? format(d[y]) : d[y]),
        dx: 4,
        textAnchor: "start",
      }),
      Plot.ruleX([0]),
    ],
  });
}

/** Vertical histogram of a numeric field (pre-binned: {x0, x1, count}). */
export function histogram(
  bins,
  { width, height = 220, xLabel, yLabel = "count", color = "#4e79a7" } = {},
) {
  if (!bins?.length) return noData();
  return Plot.plot({
    width: w(width),
    height,
    marginLeft: 50,
    x: { label: xLabel },
    y: { label: yLabel, grid: true },
    marks: [
      Plot.rectY(bins, {
        x1: "x0",
        x2: "x1",
        y: "count",
        fill: color,
        inset: 0.5,
        tip: true,
      }),
      Plot.ruleY([0]),
    ],
  });
}

/** Lines over time: one line per key in `keys` of each row (row.t is the time). */
export function lines(
  rows,
  { keys, width, height = 220, yLabel, x = "t", colors } = {},
) {
  if (!rows?.length) return noData();
  const long = rows.flatMap((r) =>
    keys.map((k) => ({ t: new Date(r[x]), series: k, value: r[k] })).filter((
      d,
    ) => d.value != null)
  );
  return Plot.plot({
    width: w(width),
    height,
    marginLeft: 55,
    x: { type: "utc", label: null },
    y: { label: yLabel, grid: true },
    color: { legend: true, domain: keys, range: colors },
    marks: [
      Plot.lineY(long, { x: "t", y: "value", stroke: "series", tip: true }),
      Plot.ruleY([0]),
    ],
  });
}

/**
 * World choropleth of `valueKey` per country (alpha-2 in `geo_country`),
 * with the event cities as dots when given.
 */
export function choropleth(
  world,
  byCountry,
  { width, valueKey = "events", label = "events", cities = [] } = {},
) {
  const countries = topojson.feature(world, world.objects.countries);
  const land = topojson.mesh(world, world.objects.countries, (a, b) => a !== b);
  const value = new Map(
    byCountry.map((d) => [numericOf(d.geo_country), d[valueKey]]),
  );
  const codeOf = new Map(
    byCountry.map((d) => [numericOf(d.geo_country), d.geo_country]),
  );
  return Plot.plot({
    width: w(width),
    height: Math.round(w(width) * 0.5),
    projection: { type: "equal-earth" },
    color: {
      type: "sqrt",
      scheme: "blues",
      legend: true,
      label,
      unknown: "#eee",
    },
    marks: [
      Plot.sphere({ fill: "#f7fbff", stroke: "#ccc" }),
      Plot.geo(countries, {
        fill: (f) => value.get(f.id),
        stroke: "white",
        strokeWidth: 0.3,
        title: (
          f,
        ) => (value.has(f.id)
          ? `${countryName(codeOf.get(f.id))}: ${
            value.get(f.id).toLocaleString()
          } ${label}`
          : f.properties.name),
      }),
      Plot.geo(land, { stroke: "white", strokeWidth: 0.4 }),
      Plot.dot(cities, {
        x: "lon",
        y: "lat",
        r: 2.5,
        fill: "#e15759",
        title: "name",
      }),
    ],
  });
}

/** Consumer lag per partition (offsets as bars, seconds as labels). */
export function lagBars(partitions, { width } = {}) {
  if (!partitions?.length) {
    return noData("No lag reported yet (is the consumer running?).");
  }
  return Plot.plot({
    width: w(width),
    height: 40 + 28 * partitions.length,
    marginLeft: 90,
    marginRight: 80,
    x: { label: "lag (offsets)", grid: true },
    y: { label: null },
    marks: [
      Plot.barX(partitions, {
        x: "lag_offsets",
        y: (d) => `partition ${d.kafka_partition}`,
        fill: "#f28e2b",
        tip: true,
      }),
      Plot.text(partitions, {
        x: "lag_offsets",
        y: (d) => `partition ${d.kafka_partition}`,
        text: (d) => `${d.lag_offsets} · ${d.lag_seconds.toFixed(1)} s`,
        dx: 4,
        textAnchor: "start",
      }),
      Plot.ruleX([0]),
    ],
  });
}

/**
 * The batch run grid, as Airflow draws it: one column per run (oldest left),
 * one row per task, coloured by the final state; a try count > 1 is shown.
 */
export function runGrid(runs, tasks, { width } = {}) {
  if (!runs?.length) return noData("No batch run yet (deno task batch).");
  const order = [...runs].sort((a, b) =>
    new Date(a.started_at) - new Date(b.started_at)
  );
  const label = new Map(
    order.map((
      r,
    ) => [
      r.run_id,
      new Date(r.started_at).toISOString().slice(5, 16).replace("T", " "),
    ]),
  );
  const last = new Map();
  for (const t of tasks) {
    const key = `${t.run_id}|${t.task_id}`;
    const prev = last.get(key);
    if (!prev || t.try_number > prev.try_number) last.set(key, t);
  }
  const cells = [...last.values()];
  const taskOrder = [...new Set(tasks.map((t) => t.task_id))];
  const runCells = order.map((r) => ({
    run: label.get(r.run_id),
    task: "▶ dag run",
    state: r.state,
    tries: 1,
    duration_ms: r.duration_ms,
  }));
  const data = [
    ...runCells,
    ...cells.map((t) => ({
      run: label.get(t.run_id),
      task: t.task_id,
      state: t.state,
      tries: t.try_number,
      duration_ms: t.duration_ms,
    })),
  ];
  return Plot.plot({
    width: w(width),
    height: 50 + 26 * (taskOrder.length + 1),
    marginLeft: 170,
    marginBottom: 50,
    x: {
      domain: order.map((r) => label.get(r.run_id)),
      label: null,
      tickRotate: -30,
    },
    y: { domain: ["▶ dag run", ...taskOrder], label: null },
    color: {
      domain: Object.keys(STATE_COLORS),
      range: Object.values(STATE_COLORS),
      legend: true,
    },
    marks: [
      Plot.cell(data, {
        x: "run",
        y: "task",
        fill: "state",
        inset: 2,
        rx: 3,
        title: (d) =>
          `${d.task}\n${d.state}, try ${d.tries}, ${
            d.duration_ms == null
              ? "–"
              : (d.duration_ms / 1000).toFixed(1) + " s"
          }`,
      }),
      Plot.text(data.filter((d) => d.tries > 1), {
        x: "run",
        y: "task",
        text: (d) => `×${d.tries}`,
        fill: "white",
        fontWeight: "bold",
      }),
    ],
  });
}

/** A funnel: steps in order, bar width = count, label = conversion from the first step. */
export function funnel(steps, { width } = {}) {
  if (!steps?.length || !steps[0].count) return noData();
  const first = steps[0].count;
  return Plot.plot({
    width: w(width),
    height: 40 + 40 * steps.length,
    marginLeft: 130,
    marginRight: 120,
    x: { label: "sessions", grid: true },
    y: { domain: steps.map((s) => s.step), label: null },
    marks: [
      Plot.barX(steps, { x: "count", y: "step", fill: "#4e79a7", tip: true }),
      Plot.text(steps, {
        x: "count",
        y: "step",
        text: (d) =>
          `${d.count.toLocaleString()} (${
            ((100 * d.count) / first).toFixed(1)
          } %)`,
        dx: 4,
        textAnchor: "start",
      }),
      Plot.ruleX([0]),
    ],
  });
}

/** Daily (or any) time series as bars with an optional line overlay. */
export function timeBars(
  rows,
  { x = "day", y, width, height = 240, yLabel, color = "#4e79a7", line } = {},
) {
  if (!rows?.length) return noData();
  return Plot.plot({
    width: w(width),
    height,
    marginLeft: 60,
    x: { type: "utc", label: null },
    y: { label: yLabel ?? y, grid: true },
    marks: [
      Plot.rectY(rows, {
        x: (d) => new Date(d[x]),
        y,
        interval: "day",
        fill: color,
        inset: 1,
        tip: true,
      }),
      line
        ? Plot.lineY(rows, {
          x: (d) => new Date(d[x]),
          y: line,
          stroke: "#e15759",
        })
        : null,
      Plot.ruleY([0]),
    ],
  });
}

/**
 * Bars per day stacked by `fill` (event types in their fixed colours, any
 * other field in the order of `order`).
 */
export function stackedDays(
  rows,
  { x = "day", y, fill, order, width, height = 240, yLabel, colors } = {},
) {
  if (!rows?.length) return noData();
  const color = fill === "event_type"
    ? typeColor
    : { legend: true, domain: order, range: colors };
  return Plot.plot({
    width: w(width),
    height,
    marginLeft: 60,
    x: { type: "utc", label: null },
    y: { label: yLabel ?? y, grid: true },
    color,
    marks: [
      Plot.rectY(rows, {
        x: (d) => new Date(d[x]),
        y,
        fill,
        interval: "day",
        order: fill === "event_type" ? Object.keys(TYPE_COLORS) : order,
        inset: 1,
        tip: true,
      }),
      Plot.ruleY([0]),
    ],
  });
}
