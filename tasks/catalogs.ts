/**
 * `deno task catalogs`: regenerates data/users.json and data/products.json
 * from the fixed catalog seed (deterministic), or checks them with --check.
 */
import { parseCli, runMain, UsageError } from "../pipeline/cli.ts";
import {
  CATALOG_DIR,
  CATALOG_SEED,
  generateCatalogs,
  serializeCatalog,
} from "../pipeline/events/catalogs.ts";

const USAGE = `
Usage: deno task catalogs [--check] [--out-dir DIR]

Generates the user (2,000) and product (10,000) catalogs deterministically
from the seed "${CATALOG_SEED}" into data/users.json and data/products.json.

Options:
  --check         do not write; exit 1 if the files differ from the generator
  --out-dir DIR   write (or check) in DIR instead of data/
  -h, --help      this help
`;

runMain(async () => {
  const { values } = parseCli(Deno.args, {
    check: { type: "boolean" },
    "out-dir": { type: "string" },
  }, USAGE);
  const dir = values["out-dir"] ?? CATALOG_DIR;
  if (dir.trim() === "") throw new UsageError("--out-dir must not be empty");
  const { users, products } = generateCatalogs();
  const files = {
    "users.json": serializeCatalog(users),
    "products.json": serializeCatalog(products),
  };
  if (values.check) {
    let stale = 0;
    for (const [name, text] of Object.entries(files)) {
      let current = "";
      try {
        current = await Deno.readTextFile(`${dir}/${name}`);
      } catch {
        // missing counts as different
      }
      if (current !== text) {
        console.error(`${dir}/${name} differs from the generator's output`);
        stale++;
      }
    }
    if (stale) {
      console.error("run: deno task catalogs");
      return 1;
    }
    console.error(`catalogs in ${dir} are up to date`);
    return 0;
  }
  await Deno.mkdir(dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) {
    // Write to a temporary name and rename, so a reader never sees half a file.
    const tmp = `${dir}/.${name}.tmp`;
    await Deno.writeTextFile(tmp, text);
    await Deno.rename(tmp, `${dir}/${name}`);
  }
  console.error(
    `wrote ${users.length} users and ${products.length} products to ${dir}`,
  );
});
