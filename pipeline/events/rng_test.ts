import assert from "node:assert/strict";
import { Rng, seededRandom } from "./rng.ts";

Deno.test("Rng: the same seed gives the same stream, pinned so a change of algorithm is noticed", () => {
  const r = new Rng(42);
  // sfc32 seeded by cyrb128("42"), after the 15 discarded outputs.
  assert.deepEqual(
    [r.nextUint32(), r.nextUint32(), r.nextUint32()],
    [2258495261, 801819658, 1739561921],
  );
  const a = new Rng("x"), b = new Rng("x"), c = new Rng("y");
  const as = Array.from({ length: 100 }, () => a.next());
  assert.deepEqual(as, Array.from({ length: 100 }, () => b.next()));
  assert.notDeepEqual(as, Array.from({ length: 100 }, () => c.next()));
  // A number seed and its decimal string are the same seed.
  assert.equal(new Rng(7).next(), new Rng("7").next());
});

Deno.test("seededRandom: an Rng's stream as () => number in [0, 1)", () => {
  const f = seededRandom(42), g = new Rng(42);
  for (let i = 0; i < 1_000; i++) {
    const x = f();
    assert.equal(x, g.next());
    assert.ok(x >= 0 && x < 1);
  }
  // Spread: 10 000 draws fill ten equal bins within ±10 % of 1 000.
  const bins = new Array(10).fill(0);
  const h = seededRandom("spread");
  for (let i = 0; i < 10_000; i++) bins[Math.floor(h() * 10)]++;
  assert.ok(bins.every((n) => n > 900 && n < 1_100), String(bins));
});
