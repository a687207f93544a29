/**
 * The Power BI project (dbt/powerbi/logpipe.pbip) checked without Power BI:
 * every JSON file against Microsoft's published schema it declares (the
 * vendored copies in dbt/powerbi/schemas, validated with ajv), the project's
 * links between files, every field a visual uses against the TMDL semantic
 * model, and the model's own consistency (relationships, DAX references,
 * sort columns, hidden keys, the date table, the parameters). The model
 * against the live warehouse: pipeline/dbt/bi_warehouse_test.ts.
 */
import assert from "node:assert/strict";
import { Ajv } from "ajv";
import { DEFAULT_PORTS, loadConfig } from "../config.ts";
import { daxReferences, readTmdlModel, type TmdlModel } from "./tmdl.ts";
import { pbids, reachableServer } from "./pbids.ts";

const PBI_DIR = new URL("../../dbt/powerbi/", import.meta.url).pathname;
const SCHEMA_DIR = `${PBI_DIR}schemas`;
const MODEL_DIR = `${PBI_DIR}logpipe.SemanticModel`;
const REPORT_DIR = `${PBI_DIR}logpipe.Report`;
const SCHEMA_BASE = "https://developer.microsoft.com/json-schemas/";

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...walk(path));
    else out.push(path);
  }
  return out.sort();
}

/**
 * ajv with every vendored schema registered under the URL of its path (the
 * `$ref`s between them are relative paths; a few files' own `$id` spells
 * "schema.embedded.json" where the references say "schema-embedded.json",
 * so the path is what counts).
 */
function validator(): Ajv {
  // strict: false because Microsoft's schemas use annotation keywords
  // (e.g. markdownDescription) that ajv's strict mode rejects.
  const ajv = new Ajv({ strict: false, allErrors: true });
  for (const file of walk(SCHEMA_DIR).filter((f) => f.endsWith(".json"))) {
    const schema = JSON.parse(Deno.readTextFileSync(file));
    schema.$id = SCHEMA_BASE + file.slice(SCHEMA_DIR.length + 1);
    ajv.addSchema(schema);
  }
  return ajv;
}

/** Every JSON file of the project (outside the vendored schemas). */
function projectJsonFiles(): string[] {
  return walk(PBI_DIR.replace(/\/$/, "")).filter((f) =>
    !f.startsWith(SCHEMA_DIR) && /\.(json|pbip|pbir|pbism)$/.test(f)
  );
}

function readJson(path: string) {
  return JSON.parse(Deno.readTextFileSync(path));
}

Deno.test("PBIP: every JSON file validates against the Microsoft schema it declares (vendored, with its licence)", () => {
  const ajv = validator();
  const files = projectJsonFiles();
  // .pbip, .pbism, .pbir, version, report, pages.json, 3 pages, the visuals.
  assert.ok(files.length >= 10, `${files.length} JSON files`);
  for (const file of files) {
    const doc = readJson(file);
    const url = doc.$schema as string;
    assert.ok(url?.startsWith(SCHEMA_BASE), `${file}: no $schema`);
    const validate = ajv.getSchema(url);
    assert.ok(
      validate,
      `${file}: ${url} is not vendored in dbt/powerbi/schemas`,
    );
    const ok = validate(doc);
    assert.ok(
      ok,
      `${file}:\n${JSON.stringify(validate.errors, null, 2)}`,
    );
  }
  assert.match(
    Deno.readTextFileSync(`${SCHEMA_DIR}/LICENSE`),
    /MIT License[\s\S]*Microsoft Corporation/,
  );
});

Deno.test("PBIP: the validator rejects what the schemas forbid (so passing means something)", () => {
  const ajv = validator();
  const page = readJson(`${REPORT_DIR}/definition/pages/sales/page.json`);
  const check = ajv.getSchema(page.$schema)!;
  assert.ok(check(page));
  const { displayOption: _, ...noDisplayOption } = page;
  assert.equal(check(noDisplayOption), false);
  assert.equal(check({ ...page, colour: "red" }), false);
  const visualFile =
    `${REPORT_DIR}/definition/pages/sales/visuals/salesCard1/visual.json`;
  const visual = readJson(visualFile);
  const checkVisual = ajv.getSchema(visual.$schema)!;
  assert.ok(checkVisual(visual));
  const broken = structuredClone(visual);
  broken.visual.query.queryState.Values.projections[0].field.Measure.Property =
    42;
  assert.equal(checkVisual(broken), false);
});

function model(): TmdlModel {
  return readTmdlModel(`${MODEL_DIR}/definition`);
}

Deno.test("PBIP: the project's files point at each other", () => {
  const pbip = readJson(`${PBI_DIR}logpipe.pbip`);
  assert.deepEqual(pbip.artifacts, [{ report: { path: "logpipe.Report" } }]);
  const pbir = readJson(`${REPORT_DIR}/definition.pbir`);
  assert.equal(pbir.datasetReference.byPath.path, "../logpipe.SemanticModel");
  assert.ok(Deno.statSync(`${MODEL_DIR}/definition.pbism`).isFile);
  // PBIR needs definition.pbir 4.0+; TMDL needs definition.pbism 4.0+.
  assert.ok(Number(pbir.version) >= 4);
  assert.ok(Number(readJson(`${MODEL_DIR}/definition.pbism`).version) >= 4);
  const pagesDir = `${REPORT_DIR}/definition/pages`;
  const pages = readJson(`${pagesDir}/pages.json`);
  const folders = [...Deno.readDirSync(pagesDir)].filter((e) => e.isDirectory)
    .map((e) => e.name).sort();
  assert.deepEqual([...pages.pageOrder].sort(), folders);
  assert.deepEqual(
    pages.pageOrder.map((p: string) =>
      readJson(`${pagesDir}/${p}/page.json`).displayName
    ),
    ["Sales", "Product", "Users"],
  );
  for (const page of folders) {
    assert.equal(readJson(`${pagesDir}/${page}/page.json`).name, page);
    const p = readJson(`${pagesDir}/${page}/page.json`);
    for (const v of Deno.readDirSync(`${pagesDir}/${page}/visuals`)) {
      const visual = readJson(
        `${pagesDir}/${page}/visuals/${v.name}/visual.json`,
      );
      assert.equal(visual.name, v.name);
      const pos = visual.position;
      assert.ok(
        pos.x >= 0 && pos.y >= 0 && pos.x + pos.width <= p.width &&
          pos.y + pos.height <= p.height,
        `${page}/${v.name} lies outside its page`,
      );
    }
  }
});

/** Every {Column|Measure: {Expression: {SourceRef: {Entity}}, Property}} in a JSON value. */
function fieldRefs(
  value: unknown,
  out: { kind: string; entity: string; property: string }[] = [],
) {
  if (Array.isArray(value)) value.forEach((v) => fieldRefs(v, out));
  else if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      const ref = v as {
        Expression?: { SourceRef?: { Entity?: string } };
        Property?: string;
      };
      if (
        (k === "Column" || k === "Measure") &&
        ref?.Expression?.SourceRef?.Entity
      ) {
        out.push({
          kind: k,
          entity: ref.Expression.SourceRef.Entity,
          property: ref.Property!,
        });
      }
      fieldRefs(v, out);
    }
  }
  return out;
}

Deno.test("PBIP: every field a visual uses is a column or measure of the semantic model", () => {
  const m = model();
  const visuals = walk(`${REPORT_DIR}/definition/pages`).filter((f) =>
    f.endsWith("visual.json")
  );
  assert.ok(visuals.length >= 30, `${visuals.length} visuals`);
  let refs = 0;
  for (const file of visuals) {
    const visual = readJson(file);
    for (const ref of fieldRefs(visual)) {
      refs++;
      const table = m.tables.find((t) => t.name === ref.entity);
      assert.ok(table, `${file}: no table ${ref.entity}`);
      const names = ref.kind === "Column"
        ? table.columns.map((c) => c.name)
        : table.measures.map((x) => x.name);
      assert.ok(
        names.includes(ref.property),
        `${file}: ${ref.kind} ${ref.entity}[${ref.property}] is not in the model`,
      );
    }
    for (
      const state of Object.values(
        visual.visual.query.queryState as Record<
          string,
          { projections: { field: unknown; queryRef: string }[] }
        >,
      )
    ) {
      for (const p of state.projections) {
        const [ref] = fieldRefs([p.field]);
        assert.equal(p.queryRef, `${ref.entity}.${ref.property}`, file);
      }
    }
  }
  assert.ok(refs > 60, `${refs} field references`);
});

Deno.test("PBIP: the semantic model is consistent: relationships, DAX references, sort columns, hidden keys, the date table, parameters", () => {
  const m = model();
  const table = (name: string) => {
    const t = m.tables.find((x) => x.name === name);
    assert.ok(t, `no table ${name}`);
    return t;
  };
  assert.deepEqual(
    [...m.tableOrder].sort(),
    m.tables.map((t) => t.name).sort(),
  );
  const allMeasures = new Set(
    m.tables.flatMap((t) => t.measures.map((x) => x.name)),
  );
  assert.equal(
    allMeasures.size,
    m.tables.reduce((n, t) => n + t.measures.length, 0),
    "measure names are unique in the model",
  );
  for (
    const want of [
      "Revenue",
      "Orders Placed",
      "AOV",
      "Conversion Rate",
      "Failed Order Rate",
      "Units Sold",
      "Active Users",
      "Revenue vs Previous Period",
    ]
  ) assert.ok(allMeasures.has(want), `measure ${want}`);
  for (const r of m.relationships) {
    for (
      const [t, c] of [[r.fromTable, r.fromColumn], [r.toTable, r.toColumn]]
    ) {
      assert.ok(
        table(t).columns.some((x) => x.name === c),
        `relationship ${r.name}: ${t}[${c}] missing`,
      );
    }
    assert.ok(r.isActive);
    assert.match(r.toTable, /^dim_/, `${r.name}: facts filter from dimensions`);
  }
  // Every fact and mart reaches the date, product and user dimensions it has keys for.
  for (const t of m.tables.filter((x) => !x.name.startsWith("dim_"))) {
    for (
      const c of t.columns.filter((x) =>
        /^(date|user|product)_sk$/.test(x.name)
      )
    ) {
      assert.ok(
        m.relationships.some((r) =>
          r.fromTable === t.name && r.fromColumn === c.name
        ),
        `${t.name}[${c.name}] has no relationship`,
      );
    }
  }
  for (const t of m.tables) {
    for (const c of t.columns) {
      if (c.name.endsWith("_sk")) {
        assert.ok(c.isHidden, `${t.name}[${c.name}] is not hidden`);
      }
      if (c.sortByColumn) {
        assert.ok(t.columns.some((x) => x.name === c.sortByColumn));
      }
    }
    for (const x of t.measures) {
      assert.ok(x.formatString, `${t.name}[${x.name}] has no format`);
      const refs = daxReferences(x.expression);
      for (const name of refs.measures) {
        assert.ok(allMeasures.has(name), `${x.name}: [${name}] is no measure`);
      }
      for (const ref of refs.columns) {
        assert.ok(
          table(ref.table).columns.some((c) => c.name === ref.column),
          `${x.name}: ${ref.table}[${ref.column}] is no column`,
        );
      }
    }
    assert.equal(t.partitions.length, 1, t.name);
    const [p] = t.partitions;
    assert.equal(p.kind, "m");
    assert.equal(p.mode, "directQuery");
    assert.match(
      p.source,
      /PostgreSQL\.Database\(PostgresServer, PostgresDatabase\)/,
    );
    assert.equal(p.schema, "bi", `${t.name} reads the masked schema`);
    assert.equal(p.item, t.name);
  }
  const dates = table("dim_date");
  assert.equal(dates.dataCategory, "Time");
  const key = dates.columns.filter((c) => c.isKey);
  assert.deepEqual(key.map((c) => [c.name, c.dataType]), [[
    "date_day",
    "dateTime",
  ]]);
  const params = m.expressions.filter((e) => e.isParameter).map((e) => e.name);
  assert.deepEqual(params.sort(), ["PostgresDatabase", "PostgresServer"]);
});

Deno.test(".pbids: the repository's file is the local cluster's; an opened cluster is served under the address other hosts use", () => {
  const local = loadConfig({});
  assert.deepEqual(
    readJson(`${PBI_DIR}logpipe.pbids`),
    pbids(`127.0.0.1:${DEFAULT_PORTS.postgres}`, local.postgres.database),
  );
  const server = model().expressions.find((e) => e.name === "PostgresServer")!;
  assert.ok(
    server.expression.startsWith(`"127.0.0.1:${DEFAULT_PORTS.postgres}"`),
  );
  assert.equal(reachableServer(local), undefined);
  const nics = () =>
    [
      { family: "IPv4", address: "127.0.0.1" },
      { family: "IPv4", address: "172.29.160.5" },
    ] as Deno.NetworkInterfaceInfo[];
  const opened = (listen: string) =>
    loadConfig({
      LOGPIPE_POSTGRES_TLS: "on",
      LOGPIPE_POSTGRES_LISTEN: listen,
      LOGPIPE_PORT_OFFSET: "10",
    });
  assert.equal(reachableServer(opened("0.0.0.0"), nics), "172.29.160.5:5443");
  assert.equal(reachableServer(opened("10.1.2.3"), nics), "10.1.2.3:5443");
  assert.equal(
    reachableServer(
      loadConfig({
        LOGPIPE_DATABASE_URL: "postgres://u:p@db.example:5432/logpipe",
        LOGPIPE_POSTGRES_TLS: "on",
        LOGPIPE_POSTGRES_LISTEN: "0.0.0.0",
      }),
      nics,
    ),
    undefined,
  );
});
