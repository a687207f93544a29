// The API's guards in isolation: Host and Origin allow-lists, the
// concurrency limit, the single-flight result cache, the capped body reader.
import assert from "node:assert/strict";
import {
  BusyError,
  ConcurrencyLimiter,
  hostAllowList,
  originAllowed,
  readTextCapped,
  ResultCache,
} from "./guard.ts";
import { ApiError } from "./params.ts";
import { isLoopback } from "./alert_routes.ts";

Deno.test("Host allow-list: loopback names on the API's port, plus configured names", () => {
  const local = hostAllowList({ host: "127.0.0.1", allowedHosts: [] }, 8787);
  for (const h of ["127.0.0.1:8787", "localhost:8787", "[::1]:8787"]) {
    assert.ok(local(h), h);
  }
  assert.ok(local("LOCALHOST:8787"), "Host is case-insensitive");
  for (
    const h of [
      "evil.example:8787", // DNS rebinding: the attacker's own name
      "evil.example",
      "127.0.0.1:9999",
      "127.0.0.1",
      "localhost.evil.example:8787",
      "",
    ]
  ) {
    assert.ok(!local(h), h);
  }
  const proxied = hostAllowList({
    host: "0.0.0.0",
    allowedHosts: ["logpipe.example.com", "10.0.0.5:9000"],
  }, 8787);
  assert.ok(proxied("logpipe.example.com"), "behind a proxy on 80/443");
  assert.ok(proxied("logpipe.example.com:8787"));
  assert.ok(proxied("10.0.0.5:9000"));
  assert.ok(!proxied("10.0.0.5:8787"), "a name with a port is exact");
  assert.ok(!proxied("0.0.0.0:8787"), "a wildcard bind is not a name");
  const bound = hostAllowList({ host: "192.168.1.5", allowedHosts: [] }, 80);
  assert.ok(bound("192.168.1.5") && bound("192.168.1.5:80"));
});

Deno.test("Origin allow-list: http(s) origins of allowed hosts only", () => {
  const allowed = hostAllowList({
    host: "127.0.0.1",
    allowedHosts: ["logpipe.example.com"],
  }, 8787);
  assert.ok(originAllowed("http://127.0.0.1:8787", allowed));
  assert.ok(originAllowed("http://localhost:8787", allowed));
  assert.ok(originAllowed("https://logpipe.example.com", allowed));
  for (
    const o of [
      "http://evil.example:8787",
      "http://127.0.0.1:3000",
      "null",
      "file://",
      "ftp://127.0.0.1:8787",
    ]
  ) {
    assert.ok(!originAllowed(o, allowed), o);
  }
});

Deno.test("ConcurrencyLimiter: at most max at once, release once", () => {
  const limit = new ConcurrencyLimiter(2);
  const a = limit.tryAcquire();
  const b = limit.tryAcquire();
  assert.ok(a && b);
  assert.equal(limit.tryAcquire(), undefined);
  a();
  a(); // a second release changes nothing
  assert.equal(limit.inFlight, 1);
  assert.ok(limit.tryAcquire());
  assert.equal(limit.tryAcquire(), undefined);
});

Deno.test("ConcurrencyLimiter: a bounded queue waits briefly, first come first served", async () => {
  const limit = new ConcurrencyLimiter(1, 2, 200);
  const first = await limit.acquire()!;
  const order: string[] = [];
  const a = limit.acquire()!.then((release) => {
    order.push("a");
    return release;
  });
  const b = limit.acquire()!.then((release) => {
    order.push("b");
    return release;
  });
  assert.equal(limit.queued, 2);
  assert.equal(limit.acquire(), undefined, "queue full: refused at once");
  first();
  const releaseA = await a;
  assert.deepEqual(order, ["a"]);
  assert.equal(limit.inFlight, 1, "the slot went straight to the waiter");
  releaseA();
  (await b)();
  assert.deepEqual(order, ["a", "b"]);
  assert.equal(limit.inFlight, 0);
  assert.equal(limit.queued, 0);
  // Nothing frees the slot in time: the waiter gets BusyError, and leaves
  // the queue (the slot freed later is not handed to it).
  const held = limit.tryAcquire()!;
  await assert.rejects(() => limit.acquire()!, BusyError);
  assert.equal(limit.queued, 0);
  held();
  assert.equal(limit.inFlight, 0);
});

Deno.test("ResultCache: single flight, TTL, failures not kept, bounded", async () => {
  const cache = new ResultCache(3);
  let runs = 0;
  const { promise: gate, resolve } = Promise.withResolvers<void>();
  const compute = () => {
    runs++;
    return gate.then(() => runs);
  };
  const joined = Array.from(
    { length: 20 },
    () => cache.get("k", 50, compute),
  );
  resolve();
  assert.deepEqual(await Promise.all(joined), Array(20).fill(1));
  assert.equal(runs, 1, "20 concurrent callers, one computation");
  assert.equal(await cache.get("k", 50, compute), 1, "within the TTL");
  await new Promise((r) => setTimeout(r, 80));
  assert.equal(await cache.get("k", 50, compute), 2, "after the TTL");
  cache.clear();
  assert.equal(await cache.get("k", 50, compute), 3, "after clear()");

  const failing = () => Promise.reject(new Error("db down"));
  await assert.rejects(() => cache.get("f", 10_000, failing)!);
  assert.equal(await cache.get("f", 10_000, () => Promise.resolve("ok")), "ok");

  // Stale-while-revalidate: past its TTL the old result answers at once
  // while one refresh runs; a failed refresh keeps it.
  let version = 0;
  const { promise: slow, resolve: finish } = Promise.withResolvers<void>();
  const refresh = () => {
    version++;
    const v = version;
    return v === 1 ? Promise.resolve(v) : slow.then(() => v);
  };
  assert.equal(await cache.get("swr", 20, refresh, 10_000), 1);
  await new Promise((r) => setTimeout(r, 40));
  assert.equal(await cache.get("swr", 20, refresh, 10_000), 1, "stale");
  assert.equal(await cache.get("swr", 20, refresh, 10_000), 1, "one refresh");
  assert.equal(version, 2);
  finish();
  await slow;
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(await cache.get("swr", 20, refresh, 10_000), 2, "refreshed");
  await new Promise((r) => setTimeout(r, 40));
  assert.equal(
    await cache.get("swr", 20, () => Promise.reject(new Error("down")), 10_000),
    2,
    "a failed refresh keeps the last result",
  );
  assert.equal(
    await cache.get("swr", 20, () => undefined, 10_000),
    2,
    "so does a refresh that cannot start",
  );

  // Past the stale bound a caller waits for the refresh already running
  // instead of starting a second one.
  const { promise: late, resolve: land } = Promise.withResolvers<string>();
  let starts = 0;
  const slowRefresh =
    () => (starts++, starts === 1 ? Promise.resolve("a") : late);
  assert.equal(await cache.get("late", 10, slowRefresh, 30), "a");
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(await cache.get("late", 10, slowRefresh, 30), "a", "stale");
  await new Promise((r) => setTimeout(r, 40));
  const waiting = cache.get("late", 10, slowRefresh, 30)!;
  land("b");
  assert.equal(await waiting, "b");
  assert.equal(starts, 2, "one refresh, joined");

  assert.equal(cache.get("busy", 1000, () => undefined), undefined);
  for (const k of ["a", "b", "c", "d", "e"]) {
    await cache.get(k, 10_000, () => Promise.resolve(k));
  }
  assert.ok(cache.size <= 3);
});

Deno.test("readTextCapped: refuses at the cap without reading the rest", async () => {
  let pulled = 0;
  const chunk = new Uint8Array(16 * 1024).fill(0x61);
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      pulled++;
      if (pulled > 1000) controller.close();
      else controller.enqueue(chunk);
    },
  });
  // No content-length: a chunked upload says nothing about its size.
  const req = new Request("http://127.0.0.1/x", { method: "POST", body });
  await assert.rejects(
    () => readTextCapped(req, 64 * 1024, "a rule"),
    (e: unknown) =>
      e instanceof ApiError && e.status === 413 &&
      /a rule must be under 65536 bytes/.test(e.message),
  );
  assert.ok(pulled < 10, `read ${pulled} chunks of 16 KB before refusing`);
  const small = new Request("http://127.0.0.1/x", {
    method: "POST",
    body: '{"ok":true}',
  });
  assert.equal(await readTextCapped(small, 64 * 1024), '{"ok":true}');
  const declared = new Request("http://127.0.0.1/x", {
    method: "POST",
    body: "x",
    headers: { "content-length": "999999" },
  });
  await assert.rejects(
    () => readTextCapped(declared, 1024),
    (e: unknown) => e instanceof ApiError && e.status === 413,
  );
});

Deno.test("isLoopback: which bind addresses stay on this machine", () => {
  for (const h of ["127.0.0.1", "localhost", "::1", "127.1.2.3"]) {
    assert.ok(isLoopback(h), h);
  }
  for (const h of ["0.0.0.0", "::", "192.168.1.5", "example.com"]) {
    assert.ok(!isLoopback(h), h);
  }
});
