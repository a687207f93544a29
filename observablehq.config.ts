/**
 * Observable Framework configuration of the logpipe site (root `docs/`).
 *
 * Built by `deno task site:build` with Framework running under Deno. No page
 * may load anything from a CDN: libraries are imported explicitly from
 * node_modules in each page, `globalStylesheets` is empty (the default pulls
 * web fonts from Google), and TypeScript data loaders run under the same
 * Deno binary with the project's deno.json (npm packages from node_modules).
 */
const projectRoot = new URL(".", import.meta.url).pathname.replace(/\/$/, "");
// deno-lint-ignore no-explicit-any
const deno = (globalThis as any).Deno;
const denoBin: string = deno?.execPath?.() ?? "deno";

export default {
  root: "docs",
  // Tests build into a temporary folder so they never touch dist/.
  output: deno?.env?.get?.("LOGPIPE_SITE_OUT") ?? "dist",
  title: "logpipe",
  theme: ["air", "near-midnight"],
  globalStylesheets: [],
  // No favicon request (a 404 would count as a failed request).
  head: '<link rel="icon" href="data:,">',
  style: "style.css",
  search: false,
  toc: false,
  pager: false,
  footer:
    'logpipe: Kafka → HDFS → PostgreSQL → dbt. Live pages poll the local API; BI pages show the latest batch export (see "as of" on each page).',
  sidebar: true,
  pages: [
    {
      name: "Live",
      pages: [
        { name: "Real-time events", path: "/realtime" },
        { name: "Geography", path: "/geography" },
        { name: "Pipeline health", path: "/health" },
        { name: "Dead letters", path: "/dead-letters" },
        { name: "Alerts", path: "/alerts" },
      ],
    },
    {
      name: "Analytics",
      pages: [
        { name: "User behaviour", path: "/behaviour" },
        { name: "Revenue", path: "/revenue" },
        { name: "Search", path: "/search" },
        { name: "Errors", path: "/errors" },
      ],
    },
    {
      name: "BI reports",
      pages: [
        { name: "Sales", path: "/sales" },
        { name: "Product", path: "/product" },
        { name: "Users", path: "/users" },
      ],
    },
    { name: "How it works", path: "/how-it-works" },
    { name: "Benchmarks", path: "/bench" },
  ],
  interpreters: {
    ".ts": [
      denoBin,
      "run",
      "--allow-all",
      "--quiet",
      `--config=${projectRoot}/deno.json`,
    ],
  },
};
