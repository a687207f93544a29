/**
 * World country shapes (TopoJSON, 1:110m) for the Geography map, copied from
 * the world-atlas npm package in node_modules so the page needs no CDN.
 */
const path = new URL(
  "../../node_modules/world-atlas/countries-110m.json",
  import.meta.url,
);
await Deno.stdout.write(await Deno.readFile(path));
