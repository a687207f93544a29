/**
 * The user and product catalogs (`data/users.json`, `data/products.json`),
 * generated deterministically from a fixed seed, and the price and stock of a
 * product at any moment.
 *
 * The JSON files are the catalogs "as listed": list price and base stock.
 * Prices and stock then change over time as pure functions of (product, time):
 * - `priceAt`: a weekly list-price revision for ~10% of products and daily
 *   promotions (10–40% off) for ~5%, so the dbt snapshot of `raw.products`
 *   (upserted by the batch with `priceAt(now)`) captures real price history,
 *   and the generator charges the price in force at the event's moment.
 * - `stockAt`: hourly depletion within a per-product restock cycle, so stock
 *   changes between batch runs and some products sell out before restocking.
 * Being pure functions, they need no state: the generator, the batch and the
 * tests all get the same answer for the same (product, time).
 */
import { PROJECT_ROOT } from "../config.ts";
import {
  CATEGORIES,
  type Category,
  CATEGORY_NAMES,
  type City,
  COUNTRIES,
  type CountryCode,
  PRODUCT_COUNT,
  USER_COUNT,
} from "./schema.ts";
import { cumulativeWeights, hash32, hashUnit, Rng } from "./rng.ts";

/** The seed of the committed catalogs. Changing it changes data/*.json. */
export const CATALOG_SEED = "logpipe-catalogs-v1";

/** A user of users.json (original-system.md §1.5; country is ISO alpha-2 like the events). */
export interface User {
  user_id: string;
  username: string;
  email: string;
  full_name: string;
  first_name: string;
  last_name: string;
  sex: "male" | "female";
  age: number;
  country: CountryCode;
  city: string;
  /** YYYY-MM-DD */
  signup_date: string;
}

/** A product of products.json (original-system.md §1.6; price exact to the cent). */
export interface Product {
  product_id: string;
  name: string;
  category: Category;
  subcategory: string;
  brand: string;
  /** List price, a number with at most 2 decimals. */
  price: number;
  description: string;
  /** Base stock (the top of the restock cycle). */
  stock: number;
  rating: number;
  /** YYYY-MM-DD */
  date_added: string;
  /** "{1..20} kg" for Electronics and Home & Kitchen, otherwise "N/A". */
  weight: string;
}

export interface Catalogs {
  users: User[];
  products: Product[];
}

/** Brands per category: a product's name uses its own brand (the original mixed them). */
export const BRANDS: Record<Category, readonly string[]> = {
  "Electronics": [
    "Apple",
    "Bose",
    "Canon",
    "Dell",
    "HP",
    "JBL",
    "LG",
    "Samsung",
    "Sony",
    "Xiaomi",
  ],
  "Fashion": [
    "Adidas",
    "Gucci",
    "H&M",
    "Levi's",
    "Mango",
    "Nike",
    "Puma",
    "Ralph Lauren",
    "Uniqlo",
    "Zara",
  ],
  "Home & Kitchen": [
    "Bosch",
    "Dyson",
    "IKEA",
    "KitchenAid",
    "Le Creuset",
    "Panasonic",
    "Philips",
    "Tefal",
    "Tupperware",
    "Whirlpool",
  ],
  "Books": [
    "Bloomsbury",
    "Hachette",
    "HarperCollins",
    "Macmillan",
    "Oxford",
    "Penguin",
    "Scholastic",
    "Simon & Schuster",
    "Vintage",
    "Wiley",
  ],
  "Beauty": [
    "Chanel",
    "Clinique",
    "Dove",
    "Estée Lauder",
    "Garnier",
    "L'Oréal",
    "MAC",
    "Maybelline",
    "Nivea",
    "Olay",
  ],
  "Grocery": [
    "Barilla",
    "Coca-Cola",
    "Danone",
    "Heinz",
    "Kellogg's",
    "Kraft",
    "Lipton",
    "Nestlé",
    "PepsiCo",
    "Unilever",
  ],
  "Toys": [
    "Barbie",
    "Fisher-Price",
    "Hasbro",
    "Hot Wheels",
    "LEGO",
    "Mattel",
    "Melissa & Doug",
    "Nerf",
    "Playmobil",
    "Ravensburger",
  ],
  "Sports": [
    "Adidas",
    "Asics",
    "Decathlon",
    "Garmin",
    "Nike",
    "Reebok",
    "Speedo",
    "Trek",
    "Under Armour",
    "Wilson",
  ],
};

/** List-price range per category in whole units (original-system.md §1.6). */
export const PRICE_RANGES: Record<Category, readonly [number, number]> = {
  "Electronics": [108, 2954],
  "Home & Kitchen": [16, 2198],
  "Sports": [35, 727],
  "Fashion": [20, 447],
  "Beauty": [5, 295],
  "Toys": [5, 295],
  "Books": [1, 75],
  "Grocery": [1, 75],
};

/** How users are spread over the event countries. */
export const USER_COUNTRY_WEIGHTS: Record<CountryCode, number> = {
  US: 20,
  GB: 12,
  DE: 12,
  IN: 16,
  EG: 14,
  FR: 10,
  ES: 8,
  SA: 8,
};

const NAMES: Record<
  CountryCode,
  { male: string[]; female: string[]; last: string[] }
> = {
  US: {
    male: [
      "James",
      "Michael",
      "Robert",
      "David",
      "William",
      "Daniel",
      "Christopher",
      "Matthew",
      "Andrew",
      "Joshua",
    ],
    female: [
      "Mary",
      "Jennifer",
      "Linda",
      "Sarah",
      "Jessica",
      "Emily",
      "Ashley",
      "Olivia",
      "Madison",
      "Hannah",
    ],
    last: [
      "Smith",
      "Johnson",
      "Williams",
      "Brown",
      "Jones",
      "Garcia",
      "Miller",
      "Davis",
      "Wilson",
      "Taylor",
      "Anderson",
      "Moore",
    ],
  },
  GB: {
    male: [
      "Oliver",
      "George",
      "Harry",
      "Jack",
      "Thomas",
      "Charlie",
      "Oscar",
      "Henry",
      "Alfie",
      "Arthur",
    ],
    female: [
      "Amelia",
      "Isla",
      "Emily",
      "Sophie",
      "Grace",
      "Lily",
      "Freya",
      "Charlotte",
      "Poppy",
      "Evie",
    ],
    last: [
      "Smith",
      "Jones",
      "Taylor",
      "Brown",
      "Evans",
      "Walker",
      "Wright",
      "Thompson",
      "Roberts",
      "Hughes",
      "Clarke",
      "Patel",
    ],
  },
  DE: {
    male: [
      "Lukas",
      "Leon",
      "Finn",
      "Jonas",
      "Paul",
      "Felix",
      "Maximilian",
      "Elias",
      "Noah",
      "Ben",
    ],
    female: [
      "Mia",
      "Emma",
      "Hannah",
      "Lea",
      "Sophia",
      "Lena",
      "Anna",
      "Marie",
      "Clara",
      "Emilia",
    ],
    last: [
      "Müller",
      "Schmidt",
      "Schneider",
      "Fischer",
      "Weber",
      "Meyer",
      "Wagner",
      "Becker",
      "Hoffmann",
      "Schulz",
      "Koch",
      "Richter",
    ],
  },
  IN: {
    male: [
      "Aarav",
      "Vihaan",
      "Arjun",
      "Rohan",
      "Rahul",
      "Amit",
      "Karan",
      "Vikram",
      "Aditya",
      "Sanjay",
    ],
    female: [
      "Priya",
      "Ananya",
      "Diya",
      "Saanvi",
      "Neha",
      "Pooja",
      "Kavya",
      "Isha",
      "Meera",
      "Riya",
    ],
    last: [
      "Sharma",
      "Patel",
      "Singh",
      "Kumar",
      "Gupta",
      "Reddy",
      "Iyer",
      "Nair",
      "Das",
      "Mehta",
      "Joshi",
      "Rao",
    ],
  },
  EG: {
    male: [
      "Ahmed",
      "Mohamed",
      "Mahmoud",
      "Omar",
      "Youssef",
      "Mostafa",
      "Karim",
      "Hassan",
      "Ali",
      "Tarek",
    ],
    female: [
      "Fatma",
      "Mariam",
      "Nour",
      "Salma",
      "Yasmin",
      "Aya",
      "Heba",
      "Mona",
      "Dina",
      "Rana",
    ],
    last: [
      "Hassan",
      "Mostafa",
      "Ibrahim",
      "Mahmoud",
      "Abdelrahman",
      "Saleh",
      "Fathy",
      "Kamal",
      "Farouk",
      "Nasser",
      "Said",
      "Khalil",
    ],
  },
  FR: {
    male: [
      "Lucas",
      "Louis",
      "Hugo",
      "Jules",
      "Gabriel",
      "Arthur",
      "Nathan",
      "Théo",
      "Raphaël",
      "Léo",
    ],
    female: [
      "Emma",
      "Jade",
      "Louise",
      "Alice",
      "Chloé",
      "Léa",
      "Manon",
      "Camille",
      "Inès",
      "Zoé",
    ],
    last: [
      "Martin",
      "Bernard",
      "Dubois",
      "Thomas",
      "Robert",
      "Richard",
      "Petit",
      "Durand",
      "Leroy",
      "Moreau",
      "Simon",
      "Laurent",
    ],
  },
  ES: {
    male: [
      "Hugo",
      "Martín",
      "Lucas",
      "Mateo",
      "Daniel",
      "Pablo",
      "Álvaro",
      "Alejandro",
      "Diego",
      "Javier",
    ],
    female: [
      "Lucía",
      "Sofía",
      "Martina",
      "María",
      "Paula",
      "Julia",
      "Carmen",
      "Elena",
      "Laura",
      "Marta",
    ],
    last: [
      "García",
      "Rodríguez",
      "González",
      "Fernández",
      "López",
      "Martínez",
      "Sánchez",
      "Pérez",
      "Gómez",
      "Ruiz",
      "Díaz",
      "Moreno",
    ],
  },
  SA: {
    male: [
      "Abdullah",
      "Mohammed",
      "Faisal",
      "Khalid",
      "Saud",
      "Fahad",
      "Sultan",
      "Turki",
      "Nasser",
      "Majed",
    ],
    female: [
      "Noura",
      "Sara",
      "Reem",
      "Lama",
      "Haya",
      "Jawaher",
      "Shahad",
      "Lulwa",
      "Amal",
      "Dana",
    ],
    last: [
      "Al-Otaibi",
      "Al-Qahtani",
      "Al-Ghamdi",
      "Al-Zahrani",
      "Al-Harbi",
      "Al-Shehri",
      "Al-Dossary",
      "Al-Mutairi",
      "Al-Anazi",
      "Al-Shammari",
      "Al-Subaie",
      "Al-Yami",
    ],
  },
};

const ADJECTIVES = [
  "Compact",
  "Durable",
  "Lightweight",
  "Premium",
  "Everyday",
  "Classic",
  "Modern",
  "Eco-friendly",
  "Best-selling",
  "Award-winning",
];

const BENEFITS: Record<Category, readonly string[]> = {
  "Electronics": [
    "long battery life",
    "crisp sound and picture",
    "fast performance",
    "a two-year warranty",
  ],
  "Fashion": [
    "a comfortable fit",
    "breathable fabric",
    "timeless style",
    "easy care",
  ],
  "Home & Kitchen": [
    "easy cleaning",
    "energy-efficient use",
    "solid build quality",
    "space-saving design",
  ],
  "Books": [
    "a gripping narrative",
    "clear explanations",
    "beautiful illustrations",
    "an acclaimed author",
  ],
  "Beauty": [
    "dermatologically tested formula",
    "a lasting finish",
    "gentle ingredients",
    "a fresh scent",
  ],
  "Grocery": [
    "great taste",
    "natural ingredients",
    "family-size value",
    "long shelf life",
  ],
  "Toys": [
    "hours of creative play",
    "safe materials",
    "educational value",
    "sturdy construction",
  ],
  "Sports": [
    "performance materials",
    "all-weather use",
    "ergonomic design",
    "pro-level quality",
  ],
};

const SIGNUP_FIRST = Date.UTC(2023, 4, 18);
const SIGNUP_LAST = Date.UTC(2025, 4, 17);
const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;

function isoDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** Lower-case ASCII for e-mail addresses and usernames ("Müller" → "mueller"). */
export function asciiSlug(name: string): string {
  return name.replace(/ä/g, "ae").replace(/ö/g, "oe").replace(/ü/g, "ue")
    .replace(/Ä/g, "Ae").replace(/Ö/g, "Oe").replace(/Ü/g, "Ue")
    .replace(/ß/g, "ss").normalize("NFD").replace(/[\u0300-\u036f]/g, "")
    .toLowerCase().replace(/[^a-z0-9-]/g, "");
}

/** Generates the 2,000 users deterministically from `seed`. */
export function generateUsers(seed = CATALOG_SEED): User[] {
  const rng = new Rng(`${seed}/users`);
  const countries = Object.keys(USER_COUNTRY_WEIGHTS) as CountryCode[];
  const cumulative = cumulativeWeights(
    countries.map((c) => USER_COUNTRY_WEIGHTS[c]),
  );
  const emails = new Set<string>();
  const usernames = new Set<string>();
  const users: User[] = [];
  for (let i = 1; i <= USER_COUNT; i++) {
    const country = rng.pickWeighted(countries, cumulative);
    const names = NAMES[country];
    const sex = rng.chance(0.5) ? "male" : "female";
    const first = rng.pick(names[sex]);
    const last = rng.pick(names.last);
    const f = asciiSlug(first), l = asciiSlug(last);
    let username: string;
    do {
      username = `${f}_${l}_${rng.int(100, 999)}`;
    } while (usernames.has(username));
    usernames.add(username);
    // The original's emails collided (730 unique of 2000): number repeats.
    let email = `${f}.${l}@example.com`;
    for (let n = 2; emails.has(email); n++) email = `${f}.${l}${n}@example.com`;
    emails.add(email);
    users.push({
      user_id: `user_${i}`,
      username,
      email,
      full_name: `${first} ${last}`,
      first_name: first,
      last_name: last,
      sex,
      age: rng.int(18, 65),
      country,
      city: rng.pick<City>(COUNTRIES[country].cities).name,
      signup_date: isoDay(
        SIGNUP_FIRST +
          rng.int(0, (SIGNUP_LAST - SIGNUP_FIRST) / DAY_MS) * DAY_MS,
      ),
    });
  }
  return users;
}

/** Generates the 10,000 products deterministically from `seed`. */
export function generateProducts(seed = CATALOG_SEED): Product[] {
  const rng = new Rng(`${seed}/products`);
  const names = new Set<string>();
  const products: Product[] = [];
  for (let i = 1; i <= PRODUCT_COUNT; i++) {
    const category = rng.pick(CATEGORY_NAMES);
    const subcategory = rng.pick(CATEGORIES[category]);
    const brand = rng.pick(BRANDS[category]);
    let name: string;
    do {
      name = `${brand} ${subcategory} ${rng.int(1000, 9999)}`;
    } while (names.has(name));
    names.add(name);
    const [lo, hi] = PRICE_RANGES[category];
    // Log-uniform: many cheap items, a few expensive ones, as in real shops.
    const units = Math.floor(Math.exp(
      Math.log(lo) + rng.next() * (Math.log(hi + 1) - Math.log(lo)),
    ));
    const ending = rng.pick([99, 99, 99, 49, 95, 0]);
    const cents = Math.max(99, units * 100 + ending - (ending ? 100 : 0));
    const adjective = rng.pick(ADJECTIVES);
    products.push({
      product_id: productIdOf(i),
      name,
      category,
      subcategory,
      brand,
      price: cents / 100,
      description:
        `${adjective} ${subcategory.toLowerCase()} from ${brand} with ${
          rng.pick(BENEFITS[category])
        }.`,
      stock: rng.int(0, 500),
      rating: rng.int(30, 50) / 10,
      date_added: isoDay(
        SIGNUP_FIRST +
          rng.int(0, (SIGNUP_LAST - SIGNUP_FIRST) / DAY_MS) * DAY_MS,
      ),
      weight: category === "Electronics" || category === "Home & Kitchen"
        ? `${rng.int(1, 20)} kg`
        : "N/A",
    });
  }
  return products;
}

/** `prod_` + 5 digits. */
export function productIdOf(index: number): string {
  return `prod_${String(index).padStart(5, "0")}`;
}

/** 1-based index of a product id, or -1 if it is not one. */
export function productIndexOf(productId: string): number {
  if (!/^prod_\d{5}$/.test(productId)) return -1;
  const n = Number(productId.slice(5));
  return n >= 1 && n <= PRODUCT_COUNT ? n : -1;
}

/** Both catalogs, generated (not read from disk). */
export function generateCatalogs(seed = CATALOG_SEED): Catalogs {
  return { users: generateUsers(seed), products: generateProducts(seed) };
}

/**
 * A catalog as committed: a JSON array, one record per line (valid JSON that
 * diffs well and is a third smaller than pretty-printing).
 */
export function serializeCatalog(records: readonly object[]): string {
  return `[\n${records.map((r) => `  ${JSON.stringify(r)}`).join(",\n")}\n]\n`;
}

/** Where the committed catalogs live. */
export const CATALOG_DIR = `${PROJECT_ROOT}/data`;

/** Reads data/users.json and data/products.json (the batch loads these into raw.*). */
export async function loadCatalogs(dir = CATALOG_DIR): Promise<Catalogs> {
  const [users, products] = await Promise.all([
    Deno.readTextFile(`${dir}/users.json`).then((t) => JSON.parse(t) as User[]),
    Deno.readTextFile(`${dir}/products.json`).then((t) =>
      JSON.parse(t) as Product[]
    ),
  ]);
  if (users.length !== USER_COUNT || products.length !== PRODUCT_COUNT) {
    throw new Error(
      `catalogs in ${dir} have ${users.length} users and ${products.length} products; ` +
        `expected ${USER_COUNT} and ${PRODUCT_COUNT} (run: deno task catalogs)`,
    );
  }
  return { users, products };
}

// ------------------------------------------------- price and stock history --

let listCents: Int32Array | undefined;
let baseStock: Int32Array | undefined;

function productTables(): { prices: Int32Array; stock: Int32Array } {
  if (!listCents || !baseStock) {
    const products = generateProducts();
    listCents = new Int32Array(PRODUCT_COUNT + 1);
    baseStock = new Int32Array(PRODUCT_COUNT + 1);
    for (let i = 0; i < products.length; i++) {
      listCents[i + 1] = Math.round(products[i].price * 100);
      baseStock[i + 1] = products[i].stock;
    }
  }
  return { prices: listCents, stock: baseStock };
}

const PRICE_SALT = 0x5eed_0001;
const PROMO_SALT = 0x5eed_0002;
const STOCK_SALT = 0x5eed_0003;

/** Weekly list-price revisions (percent change) and daily promotion depths. */
const REVISIONS = [-5, 5, 8, 10] as const;
const PROMOS = [10, 15, 20, 25, 30, 40] as const;

function indexOrThrow(productId: string): number {
  const i = productIndexOf(productId);
  if (i < 0) throw new RangeError(`unknown product id: ${productId}`);
  return i;
}

/**
 * The price of a product at `time`, in integer cents: the list price, revised
 * for ~10% of products each week (−5%…+10%), with a daily promotion (10–40%
 * off) for ~5% of products each day (UTC days and weeks since the epoch).
 */
export function priceAt(productId: string, time: Date | number): number {
  const i = indexOrThrow(productId);
  return priceAtIndex(i, typeof time === "number" ? time : time.getTime());
}

/** `priceAt` by 1-based product index (the generator's hot path). */
export function priceAtIndex(index: number, ms: number): number {
  let cents = productTables().prices[index];
  const day = Math.floor(ms / DAY_MS);
  const week = Math.floor((day + 3) / 7); // weeks start on Monday
  const w = hash32(index, week, PRICE_SALT);
  if (w % 10 === 0) {
    const pct = REVISIONS[(w >>> 8) % REVISIONS.length];
    cents = Math.round(cents * (100 + pct) / 100);
  }
  const p = hash32(index, day, PROMO_SALT);
  if (p % 20 === 0) {
    const pct = PROMOS[(p >>> 8) % PROMOS.length];
    cents = Math.round(cents * (100 - pct) / 100);
  }
  return Math.max(1, cents);
}

/**
 * The stock of a product at `time` (changes hourly): it falls from the base
 * stock through a restock cycle of 3–14 days, some products selling out
 * before the cycle ends, then jumps back to the base at restock.
 */
export function stockAt(productId: string, time: Date | number): number {
  const i = indexOrThrow(productId);
  return stockAtIndex(i, typeof time === "number" ? time : time.getTime());
}

/** `stockAt` by 1-based product index. */
export function stockAtIndex(index: number, ms: number): number {
  const base = productTables().stock[index];
  const cycleHours = (3 + hash32(index, STOCK_SALT) % 12) * 24;
  const phase = hash32(index, STOCK_SALT, 1) % cycleHours;
  const hour = Math.floor(ms / HOUR_MS);
  const position = ((hour + phase) % cycleHours) / cycleHours;
  const depletion = 0.5 + hashUnit(index, STOCK_SALT, 2) * 0.8; // 0.5–1.3
  return Math.max(0, Math.round(base * (1 - position * depletion)));
}

/** The products as of `time` (price and stock in force then), for the batch's upsert of raw.products. */
export function productsAsOf(
  products: readonly Product[],
  time: Date | number,
): Product[] {
  const ms = typeof time === "number" ? time : time.getTime();
  return products.map((p) => {
    const i = indexOrThrow(p.product_id);
    return {
      ...p,
      price: priceAtIndex(i, ms) / 100,
      stock: stockAtIndex(i, ms),
    };
  });
}
