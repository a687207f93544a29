import assert from "node:assert/strict";
import {
  BRANDS,
  CATALOG_DIR,
  generateCatalogs,
  loadCatalogs,
  PRICE_RANGES,
  priceAt,
  productsAsOf,
  serializeCatalog,
  stockAt,
} from "./catalogs.ts";
import {
  CATEGORIES,
  type Category,
  COUNTRIES,
  COUNTRY_CODES,
} from "./schema.ts";

const generated = generateCatalogs();

Deno.test("committed data/*.json equal the generator's output", async () => {
  assert.equal(
    await Deno.readTextFile(`${CATALOG_DIR}/users.json`),
    serializeCatalog(generated.users),
    "data/users.json is stale: run deno task catalogs",
  );
  assert.equal(
    await Deno.readTextFile(`${CATALOG_DIR}/products.json`),
    serializeCatalog(generated.products),
    "data/products.json is stale: run deno task catalogs",
  );
  const loaded = await loadCatalogs();
  assert.deepEqual(loaded, generated);
});

Deno.test("generation is deterministic and seed-dependent", () => {
  assert.deepEqual(generateCatalogs(), generated);
  assert.notDeepEqual(generateCatalogs("other-seed").users, generated.users);
});

Deno.test("users: 2,000, unique ids, emails and usernames, spread over the event countries", () => {
  const { users } = generated;
  assert.equal(users.length, 2000);
  assert.deepEqual(
    users.map((u) => u.user_id),
    users.map((_, i) => `user_${i + 1}`),
  );
  assert.equal(new Set(users.map((u) => u.email)).size, 2000);
  assert.equal(new Set(users.map((u) => u.username)).size, 2000);
  const perCountry = new Map<string, number>();
  for (const u of users) {
    assert.ok(u.age >= 18 && u.age <= 65);
    assert.ok(u.sex === "male" || u.sex === "female");
    assert.ok(COUNTRIES[u.country], u.country);
    assert.ok(
      COUNTRIES[u.country].cities.some((c) => c.name === u.city),
      u.city,
    );
    assert.match(u.email, /^[a-z0-9.-]+@example\.com$/);
    assert.match(u.username, /^[a-z0-9-]+_[a-z0-9-]+_\d{3}$/);
    assert.equal(u.full_name, `${u.first_name} ${u.last_name}`);
    assert.ok(u.signup_date >= "2023-05-18" && u.signup_date <= "2025-05-17");
    perCountry.set(u.country, (perCountry.get(u.country) ?? 0) + 1);
  }
  for (const c of COUNTRY_CODES) assert.ok((perCountry.get(c) ?? 0) >= 100, c);
});

Deno.test("products: 10,000, 8 × 5 categories, own brand in the name, exact prices in range", () => {
  const { products } = generated;
  assert.equal(products.length, 10000);
  assert.equal(new Set(products.map((p) => p.name)).size, 10000);
  const pairs = new Set<string>();
  for (const p of products) {
    const cat = p.category as Category;
    assert.ok((CATEGORIES[cat] as readonly string[]).includes(p.subcategory));
    assert.ok(BRANDS[cat].includes(p.brand));
    assert.ok(p.name.startsWith(`${p.brand} ${p.subcategory} `), p.name);
    assert.equal(Math.round(p.price * 100) / 100, p.price, "2 decimals");
    const [lo, hi] = PRICE_RANGES[cat];
    assert.ok(p.price >= lo - 1 && p.price <= hi + 1, `${p.price} ${cat}`);
    assert.ok(Number.isInteger(p.stock) && p.stock >= 0 && p.stock <= 500);
    assert.ok(
      p.rating >= 3 && p.rating <= 5 &&
        Math.round(p.rating * 10) / 10 === p.rating,
    );
    assert.equal(
      p.weight === "N/A",
      cat !== "Electronics" && cat !== "Home & Kitchen",
    );
    pairs.add(`${p.category}/${p.subcategory}`);
  }
  assert.equal(pairs.size, 40);
});

Deno.test("price and stock history: pure, in range, and actually changing", () => {
  const day = 86_400_000;
  const t0 = Date.UTC(2026, 0, 5);
  let priceChanges = 0, stockChanges = 0, soldOut = 0;
  for (const p of generated.products.slice(0, 2000)) {
    const list = Math.round(p.price * 100);
    for (let d = 0; d < 14; d++) {
      const t = t0 + d * day;
      const price = priceAt(p.product_id, t);
      assert.equal(price, priceAt(p.product_id, new Date(t)));
      assert.ok(Number.isInteger(price) && price >= 1);
      assert.ok(
        price >= Math.round(list * 0.57) && price <= Math.round(list * 1.1) + 1,
      );
      if (price !== priceAt(p.product_id, t + day)) priceChanges++;
      const stock = stockAt(p.product_id, t);
      assert.ok(Number.isInteger(stock) && stock >= 0 && stock <= p.stock);
      if (stock !== stockAt(p.product_id, t + 3_600_000)) stockChanges++;
      if (stock === 0) soldOut++;
    }
  }
  assert.ok(priceChanges > 1000, `price changes ${priceChanges}`);
  assert.ok(stockChanges > 10000, `stock changes ${stockChanges}`);
  assert.ok(soldOut > 0);
  // Prices hold within a day (the generator charges the price of the moment).
  assert.equal(
    priceAt("prod_00042", t0 + 1),
    priceAt("prod_00042", t0 + day - 1),
  );
  assert.throws(() => priceAt("prod_99999", t0), RangeError);
  const asOf = productsAsOf(generated.products.slice(0, 3), t0);
  assert.equal(asOf[0].price * 100, priceAt(asOf[0].product_id, t0));
  assert.equal(asOf[1].stock, stockAt(asOf[1].product_id, t0));
});
