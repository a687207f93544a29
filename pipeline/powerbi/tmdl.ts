/**
 * A reader for the TMDL (Tabular Model Definition Language) files of
 * `dbt/powerbi/logpipe.SemanticModel/definition/`, so tests can check the
 * semantic model against the warehouse without Power BI.
 *
 * It reads the subset of TMDL this project writes (tables with columns,
 * measures and M partitions, relationships, parameter expressions, model and
 * database properties) and refuses anything else with the file and line, so
 * a construct it does not understand can never be skipped silently. TMDL
 * nests by tabs; `///` lines describe the object that follows; an object
 * whose declaration ends in `=` carries a multi-line expression, indented
 * deeper than its properties.
 */

/** A column of a table, mapped to a source column of the partition's query. */
export interface TmdlColumn {
  name: string;
  dataType: string;
  sourceColumn?: string;
  formatString?: string;
  summarizeBy?: string;
  sortByColumn?: string;
  isHidden: boolean;
  isKey: boolean;
}

/** A DAX measure. */
export interface TmdlMeasure {
  name: string;
  /** The DAX expression (multi-line ones with their common indent removed). */
  expression: string;
  formatString?: string;
  displayFolder?: string;
  description?: string;
}

/** A partition; for `source` M queries of `Source{[Schema=…, Item=…]}`, the relation read. */
export interface TmdlPartition {
  name: string;
  kind: string;
  mode?: string;
  source: string;
  schema?: string;
  item?: string;
}

export interface TmdlTable {
  name: string;
  description?: string;
  dataCategory?: string;
  columns: TmdlColumn[];
  measures: TmdlMeasure[];
  partitions: TmdlPartition[];
}

export interface TmdlRelationship {
  name: string;
  fromTable: string;
  fromColumn: string;
  toTable: string;
  toColumn: string;
  isActive: boolean;
  crossFilteringBehavior?: string;
}

/** A named M expression, e.g. a parameter (`"value" meta [IsParameterQuery=true, …]`). */
export interface TmdlExpression {
  name: string;
  expression: string;
  description?: string;
  isParameter: boolean;
}

export interface TmdlModel {
  tables: TmdlTable[];
  relationships: TmdlRelationship[];
  expressions: TmdlExpression[];
  /** Properties of `model` and `database` (e.g. culture, compatibilityLevel). */
  properties: Record<string, string>;
  /** `ref table` order of model.tmdl. */
  tableOrder: string[];
}

/** Thrown for TMDL this reader does not understand, with file and line. */
export class TmdlError extends Error {
  override name = "TmdlError";
}

interface Line {
  depth: number;
  text: string;
  no: number;
}

function lines(text: string): Line[] {
  return text.replace(/^\uFEFF/, "").split(/\r?\n/).map((raw, i) => {
    const depth = /^\t*/.exec(raw)![0].length;
    return { depth, text: raw.slice(depth).trimEnd(), no: i + 1 };
  });
}

/** An object name: bare, or 'quoted' with '' for a quote. */
function readName(s: string): { name: string; rest: string } {
  if (s.startsWith("'")) {
    let i = 1;
    let name = "";
    while (i < s.length) {
      if (s[i] === "'" && s[i + 1] === "'") {
        name += "'";
        i += 2;
      } else if (s[i] === "'") {
        return { name, rest: s.slice(i + 1).trim() };
      } else name += s[i++];
    }
    throw new Error(`unterminated quoted name: ${s}`);
  }
  const m = /^([^\s=.:]+)(.*)$/.exec(s);
  if (!m) throw new Error(`no name in: ${s}`);
  return { name: m[1], rest: m[2].trim() };
}

/** `table.column` with either part possibly quoted. */
function readColumnRef(s: string): { table: string; column: string } {
  const t = readName(s);
  if (!t.rest.startsWith(".")) throw new Error(`not table.column: ${s}`);
  const c = readName(t.rest.slice(1));
  return { table: t.name, column: c.name };
}

function unquoteValue(v: string): string {
  return v.length >= 2 && v.startsWith('"') && v.endsWith('"')
    ? v.slice(1, -1).replaceAll('""', '"')
    : v;
}

/** One object: its declaration line, its properties and its children. */
interface Node {
  keyword: string;
  name: string;
  /** Text after `=` on the declaration line, or the multi-line body. */
  expression?: string;
  description?: string;
  props: Map<string, string>;
  /** Multi-line property values (e.g. a partition's `source =`). */
  blocks: Map<string, string>;
  flags: Set<string>;
  children: Node[];
  no: number;
}

const KEYWORDS = new Set([
  "table",
  "column",
  "measure",
  "partition",
  "relationship",
  "expression",
  "model",
  "database",
  "annotation",
  "ref",
  "dataAccessOptions",
]);

/** Removes the common leading tabs and spaces of an expression block. */
function dedent(block: Line[]): string {
  const body = block.map((l) => "\t".repeat(l.depth) + l.text);
  while (body.length && !body.at(-1)!.trim()) body.pop();
  const indent = Math.min(
    ...body.filter((l) => l.trim()).map((l) => /^[\t ]*/.exec(l)![0].length),
  );
  return body.map((l) => l.slice(indent)).join("\n");
}

function parseNodes(text: string, file: string): Node[] {
  const all = lines(text);
  let i = 0;
  const fail = (l: Line, why: string): never => {
    throw new TmdlError(`${file}:${l.no}: ${why}: ${l.text}`);
  };
  /** Lines deeper than `depth` (and blank lines among them): an expression body. */
  const takeBlock = (depth: number): Line[] => {
    const out: Line[] = [];
    while (i < all.length && (!all[i].text || all[i].depth > depth)) {
      out.push(all[i++]);
    }
    // Trailing blank lines belong to nobody.
    while (out.length && !out.at(-1)!.text) {
      out.pop();
      i--;
    }
    return out;
  };
  const parseLevel = (depth: number): Node[] => {
    const nodes: Node[] = [];
    let description: string[] = [];
    while (i < all.length) {
      const l = all[i];
      if (!l.text) {
        i++;
        continue;
      }
      if (l.depth < depth) break;
      if (l.depth > depth) fail(l, "unexpected indentation");
      if (l.text.startsWith("///")) {
        description.push(l.text.slice(3).trim());
        i++;
        continue;
      }
      const keyword = /^\S+/.exec(l.text)![0];
      if (!KEYWORDS.has(keyword)) fail(l, "unknown object");
      i++;
      let rest = l.text.slice(keyword.length).trim();
      if (keyword === "ref") {
        nodes.push({
          keyword,
          name: rest,
          props: new Map(),
          blocks: new Map(),
          flags: new Set(),
          children: [],
          no: l.no,
        });
        continue;
      }
      let name = "";
      if (rest && keyword !== "dataAccessOptions") {
        try {
          ({ name, rest } = readName(rest));
        } catch (e) {
          fail(l, (e as Error).message);
        }
      }
      const node: Node = {
        keyword,
        name,
        description: description.length ? description.join("\n") : undefined,
        props: new Map(),
        blocks: new Map(),
        flags: new Set(),
        children: [],
        no: l.no,
      };
      description = [];
      if (rest.startsWith("=")) {
        const inline = rest.slice(1).trim();
        node.expression = inline || dedent(takeBlock(depth + 1));
      } else if (rest) fail(l, "unexpected text after the name");
      // Properties and children, one level deeper.
      while (i < all.length) {
        const p = all[i];
        if (!p.text) {
          i++;
          continue;
        }
        if (p.depth <= depth) break;
        if (p.depth > depth + 1) fail(p, "unexpected indentation");
        if (p.text.startsWith("///")) {
          node.children.push(...parseLevel(depth + 1));
          continue;
        }
        const word = /^[A-Za-z_]+/.exec(p.text)?.[0] ?? "";
        if (KEYWORDS.has(word) && word !== "dataAccessOptions") {
          node.children.push(...parseLevel(depth + 1));
          continue;
        }
        i++;
        const colon = /^([A-Za-z]+):\s*(.*)$/.exec(p.text);
        const block = /^([A-Za-z]+)\s*=\s*$/.exec(p.text);
        if (colon) node.props.set(colon[1], colon[2]);
        else if (block) {
          node.blocks.set(block[1], dedent(takeBlock(depth + 1)));
        } else if (/^[A-Za-z]+$/.test(p.text)) {
          node.flags.add(p.text);
          // dataAccessOptions' own flags, one level deeper.
          if (p.text === "dataAccessOptions") {
            while (
              i < all.length && all[i].text && all[i].depth === depth + 2
            ) {
              node.flags.add(`dataAccessOptions.${all[i++].text}`);
            }
          }
        } else fail(p, "not a property");
      }
      nodes.push(node);
    }
    return nodes;
  };
  const nodes = parseLevel(0);
  if (i < all.length) fail(all[i], "unexpected line");
  return nodes;
}

function onlyKnown(node: Node, file: string, props: string[], flags: string[]) {
  for (const k of node.props.keys()) {
    if (!props.includes(k)) {
      throw new TmdlError(
        `${file}:${node.no}: ${node.keyword} ${node.name}: unknown property ${k}`,
      );
    }
  }
  for (const f of node.flags) {
    if (!flags.includes(f)) {
      throw new TmdlError(
        `${file}:${node.no}: ${node.keyword} ${node.name}: unknown flag ${f}`,
      );
    }
  }
}

function toTable(node: Node, file: string): TmdlTable {
  onlyKnown(node, file, ["dataCategory", "lineageTag"], ["isHidden"]);
  const table: TmdlTable = {
    name: node.name,
    description: node.description,
    dataCategory: node.props.get("dataCategory"),
    columns: [],
    measures: [],
    partitions: [],
  };
  for (const c of node.children) {
    if (c.keyword === "column") {
      onlyKnown(c, file, [
        "dataType",
        "sourceColumn",
        "formatString",
        "summarizeBy",
        "sortByColumn",
        "lineageTag",
        "dataCategory",
        "displayFolder",
      ], ["isHidden", "isKey", "isNameInferred"]);
      const dataType = c.props.get("dataType");
      if (!dataType) {
        throw new TmdlError(
          `${file}:${c.no}: column ${c.name} has no dataType`,
        );
      }
      table.columns.push({
        name: c.name,
        dataType,
        sourceColumn: c.props.get("sourceColumn"),
        formatString: c.props.get("formatString"),
        summarizeBy: c.props.get("summarizeBy"),
        sortByColumn: c.props.get("sortByColumn"),
        isHidden: c.flags.has("isHidden"),
        isKey: c.flags.has("isKey"),
      });
    } else if (c.keyword === "measure") {
      onlyKnown(c, file, [
        "formatString",
        "displayFolder",
        "lineageTag",
      ], ["isHidden"]);
      if (!c.expression) {
        throw new TmdlError(`${file}:${c.no}: measure ${c.name} has no DAX`);
      }
      table.measures.push({
        name: c.name,
        expression: c.expression,
        formatString: c.props.get("formatString"),
        displayFolder: c.props.get("displayFolder"),
        description: c.description,
      });
    } else if (c.keyword === "partition") {
      onlyKnown(c, file, ["mode"], []);
      const source = c.blocks.get("source");
      if (!source) {
        throw new TmdlError(
          `${file}:${c.no}: partition ${c.name} has no source`,
        );
      }
      const nav =
        /\{\[\s*Schema\s*=\s*"([^"]+)"\s*,\s*Item\s*=\s*"([^"]+)"\s*\]\}/
          .exec(source);
      table.partitions.push({
        name: c.name,
        kind: c.expression ?? "",
        mode: c.props.get("mode"),
        source,
        schema: nav?.[1],
        item: nav?.[2],
      });
    } else if (c.keyword !== "annotation") {
      throw new TmdlError(`${file}:${c.no}: ${c.keyword} inside a table`);
    }
  }
  return table;
}

/** Reads a semantic model's `definition/` folder. */
export function readTmdlModel(definitionDir: string): TmdlModel {
  const model: TmdlModel = {
    tables: [],
    relationships: [],
    expressions: [],
    properties: {},
    tableOrder: [],
  };
  const files = [
    ...["database.tmdl", "model.tmdl", "expressions.tmdl", "relationships.tmdl"]
      .map((f) => `${definitionDir}/${f}`),
    ...[...Deno.readDirSync(`${definitionDir}/tables`)]
      .filter((e) => e.isFile && e.name.endsWith(".tmdl"))
      .map((e) => `${definitionDir}/tables/${e.name}`).sort(),
  ];
  for (const file of files) {
    let text: string;
    try {
      text = Deno.readTextFileSync(file);
    } catch {
      if (
        file.endsWith("expressions.tmdl") || file.endsWith("relationships.tmdl")
      ) {
        continue;
      }
      throw new TmdlError(`${file}: missing`);
    }
    for (const node of parseNodes(text, file)) {
      switch (node.keyword) {
        case "table":
          model.tables.push(toTable(node, file));
          break;
        case "relationship": {
          onlyKnown(node, file, [
            "fromColumn",
            "toColumn",
            "isActive",
            "crossFilteringBehavior",
            "fromCardinality",
            "toCardinality",
          ], []);
          const from = node.props.get("fromColumn");
          const to = node.props.get("toColumn");
          if (!from || !to) {
            throw new TmdlError(
              `${file}:${node.no}: relationship without columns`,
            );
          }
          const f = readColumnRef(from);
          const t = readColumnRef(to);
          model.relationships.push({
            name: node.name,
            fromTable: f.table,
            fromColumn: f.column,
            toTable: t.table,
            toColumn: t.column,
            isActive: node.props.get("isActive") !== "false",
            crossFilteringBehavior: node.props.get("crossFilteringBehavior"),
          });
          break;
        }
        case "expression":
          onlyKnown(node, file, ["lineageTag", "queryGroup"], []);
          model.expressions.push({
            name: node.name,
            expression: node.expression ?? "",
            description: node.description,
            isParameter: /meta\s*\[[^\]]*IsParameterQuery\s*=\s*true/i.test(
              node.expression ?? "",
            ),
          });
          break;
        case "model":
        case "database":
          for (const [k, v] of node.props) {
            model.properties[`${node.keyword}.${k}`] = unquoteValue(v);
          }
          for (const f of node.flags) {
            model.properties[`${node.keyword}.${f}`] = "true";
          }
          for (const c of node.children) {
            if (c.keyword !== "annotation") {
              throw new TmdlError(
                `${file}:${c.no}: ${c.keyword} inside ${node.keyword}`,
              );
            }
          }
          break;
        case "ref": {
          const m = /^table\s+(.+)$/.exec(node.name);
          if (!m) throw new TmdlError(`${file}:${node.no}: ref ${node.name}`);
          model.tableOrder.push(readName(m[1]).name);
          break;
        }
        case "annotation":
          break;
        default:
          throw new TmdlError(`${file}:${node.no}: ${node.keyword} at the top`);
      }
    }
  }
  return model;
}

/**
 * Names a DAX expression refers to: `table[column]` pairs and bare
 * `[measure]` references (string literals left out).
 */
export function daxReferences(
  dax: string,
): { columns: { table: string; column: string }[]; measures: string[] } {
  const code = dax.replace(/"(?:[^"]|"")*"/g, '""');
  const columns: { table: string; column: string }[] = [];
  const measures: string[] = [];
  const re = /(?:'((?:[^']|'')+)'|([A-Za-z_][A-Za-z0-9_]*))?\[([^\]]+)\]/g;
  for (const m of code.matchAll(re)) {
    const table = m[1]?.replaceAll("''", "'") ?? m[2];
    if (table) columns.push({ table, column: m[3] });
    else measures.push(m[3]);
  }
  return { columns, measures };
}
