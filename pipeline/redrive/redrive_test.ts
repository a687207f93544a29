/**
 * Dead-letter redrive on the REAL services (issue 13): records sent by a
 * plain kafkajs producer (not the project's) are consumed by the real stream
 * consumer (`tasks/consume.ts`, a subprocess) under a too-strict check
 * (LOGPIPE_MAX_FUTURE_SKEW=30s: events 2 minutes ahead of their Kafka
 * timestamp are dead-lettered as future_timestamp). The check is relaxed
 * (the 15-minute default) and `deno task redrive` re-injects them:
 *
 * - --dry-run reports and sends nothing; a bad flag exits 2;
 * - a run that stops after claiming but before sending, and one that stops
 *   after sending but before marking its rows, are both settled by the next
 *   run from the origin headers in the topic: nothing is lost, nothing is
 *   sent twice;
 * - the real consumer then writes each redriven event to the raw zone
 *   exactly once, at the coordinates ops.redriven recorded;
 * - a second redrive sends nothing; hopeless dead letters stay dead;
 * - GET /api/dead-letters shows them newest first, filtered by reason, with
 *   coordinates, escaped bytes and their redrive state;
 * - the batch (load, dbt) then has each redriven event in fact_event once.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createKafka, topicEndOffsets } from "../clients/kafka.ts";
import { createPool } from "../clients/postgres.ts";
import { createTestEnv, runTask } from "../testing/env.ts";
import { createGenerator } from "../events/generator.ts";
import type { Event } from "../events/schema.ts";
import { consumeUntilCaughtUp, readZones } from "../testing/consumer.ts";
import { startApi } from "../api/server.ts";
import { redrive, REDRIVEN_FROM_HEADER } from "./redrive.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const VALID = 120;
const FUTURE = 30;
const HOPELESS = ["{not json", '{"schema_version":1,"x":"\\u0000"}'];
/** A value that must come back as escaped text, never markup. */
const HOSTILE = new Uint8Array([
  ...new TextEncoder().encode("<img src=x onerror=alert(1)> \u202e"),
  0xff,
  0x0a,
]);

async function runRedrive(env: Record<string, string>, args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}tasks/redrive.ts`, ...args],
    cwd: ROOT,
    env: { ...env, LOGPIPE_LOG_LEVEL: "warn" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

Deno.test({
  name:
    "redrive: dead letters of a too-strict check reach the raw zone and fact_event once after it is relaxed",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const env = await createTestEnv("redrive", { partitions: 3 });
    const config = env.config;
    const strict = { ...env.env, LOGPIPE_MAX_FUTURE_SKEW: "30s" };
    const pool = createPool(config, { max: 2 });
    const kafka = createKafka(config, { quiet: true, retries: 10 });
    const producer = kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
    });
    const api = await startApi(config, { db: pool, port: 0, siteDir: null });
    const future = new Map<string, Event>();
    const endOffsets = async () =>
      [...(await topicEndOffsets(config)).values()]
        .reduce((a, p) => a + Number(p.high), 0);
    // Each step builds on the previous one: after a failure the rest are
    // skipped (they would only wait for what cannot come).
    let failed = false;
    const step = async (name: string, fn: () => Promise<void>) => {
      const ok = await t.step({ name, ignore: failed, fn });
      if (!ok) failed = true;
    };
    try {
      await step(
        "send valid, future-dated and hopeless records",
        async () => {
          const gen = createGenerator({
            seed: "redrive-test",
            startTime: Date.now() - 120_000,
            rate: 1000,
          });
          const messages: {
            key: string | null;
            value: Buffer;
            headers: Record<string, string>;
          }[] = [];
          let valid = 0;
          for (const r of gen) {
            const e = r.event;
            if (!e) continue;
            const type = e.event_type;
            if (
              future.size < FUTURE &&
              (type === "product_view" || type === "add_to_cart")
            ) {
              // Two minutes ahead of the time it is sent: a producer whose
              // clock is fast, refused under a 30 s skew, fine under 15 min.
              const ahead = {
                ...e,
                event_ts: new Date(Date.now() + 120_000).toISOString(),
              };
              future.set(e.event_id, ahead);
              messages.push({
                key: e.session_id,
                value: Buffer.from(JSON.stringify(ahead)),
                headers: { schema_version: "1" },
              });
            } else if (valid < VALID) {
              valid++;
              messages.push({
                key: e.session_id,
                value: Buffer.from(JSON.stringify(e)),
                headers: { schema_version: "1" },
              });
            }
            if (future.size >= FUTURE && valid >= VALID) break;
          }
          for (const v of HOPELESS) {
            messages.push({
              key: "hopeless",
              value: Buffer.from(v),
              headers: {},
            });
          }
          messages.push({
            key: null,
            value: Buffer.from(HOSTILE),
            headers: {},
          });
          await producer.connect();
          await producer.send({
            topic: config.kafka.topic,
            acks: -1,
            messages,
          });
        },
      );

      await step(
        "the strict consumer dead-letters the future events",
        async () => {
          await consumeUntilCaughtUp(strict);
          const z = await readZones(config);
          const byReason = new Map<string, number>();
          for (const d of z.deadLetters) {
            byReason.set(d.reason, (byReason.get(d.reason) ?? 0) + 1);
          }
          assert.equal(
            byReason.get("future_timestamp"),
            FUTURE,
            `dead letters by reason: ${JSON.stringify([...byReason])}; does ` +
              "the consumer pass the Kafka timestamp and LOGPIPE_MAX_FUTURE_SKEW " +
              "to validateEvent (pipeline/consumer/ingest.ts)?",
          );
          assert.equal(z.deadLetters.length, FUTURE + HOPELESS.length + 1);
          assert.equal(z.raw.length, VALID);
        },
      );

      await step(
        "the site's API lists them, newest first, escaped",
        async () => {
          const get = async (q: string) => {
            const res = await fetch(`${api.url}/api/dead-letters${q}`);
            return { status: res.status, body: await res.json() };
          };
          const all = await get("?limit=500");
          assert.equal(all.status, 200, JSON.stringify(all.body));
          const rows = all.body.deadLetters;
          assert.equal(rows.length, FUTURE + HOPELESS.length + 1);
          for (let i = 1; i < rows.length; i++) {
            assert.ok(rows[i - 1].dead_lettered_at >= rows[i].dead_lettered_at);
          }
          const only = await get("?reason=future_timestamp&limit=5");
          assert.equal(only.body.deadLetters.length, 5);
          for (const r of only.body.deadLetters) {
            assert.equal(r.reason, "future_timestamp");
            assert.equal(r.topic, config.kafka.topic);
            assert.ok(
              Number.isInteger(r.partition) && Number.isInteger(r.offset),
            );
            assert.ok(future.has(JSON.parse(r.value).event_id));
            assert.equal(r.headers.schema_version, "1");
            assert.equal(r.redriven, null);
          }
          const hostile = rows.find((r: { key: string | null }) =>
            r.key === null
          );
          assert.equal(hostile.reason, "invalid_utf8");
          assert.equal(
            hostile.value,
            "<img src=x onerror=alert(1)> \\u{202E}\\xFF\\n",
          );
          assert.equal((await get("?reason=nope")).status, 400);
          assert.equal((await get("?limit=0")).status, 400);
          assert.equal((await get("?colour=red")).status, 400);
        },
      );

      await step(
        "--dry-run reports and sends nothing; bad flags exit 2",
        async () => {
          const before = await endOffsets();
          const dry = await runRedrive(env.env, ["--dry-run", "--json"]);
          assert.equal(dry.code, 0, dry.stderr);
          const report = JSON.parse(dry.stdout);
          assert.equal(report.redrivenTotal, FUTURE);
          assert.deepEqual(report.stillInvalid, {
            invalid_json: 1,
            control_character: 1,
            invalid_utf8: 1,
          });
          assert.equal(await endOffsets(), before);
          const rows = await pool.query("select 1 from ops.redriven");
          assert.equal(rows.rowCount, 0);
          for (
            const args of [
              ["--reason", "nope"],
              ["--from", "yesterday"],
              ["--from", "2026-02-01", "--to", "2026-01-01"],
              ["--colour", "red"],
            ]
          ) {
            const bad = await runRedrive(env.env, args);
            assert.equal(bad.code, 2, `${args}: ${bad.stderr}`);
            assert.equal(bad.stderr.trim().split("\n").length, 1, bad.stderr);
          }
          // Still strict: nothing passes, nothing is sent.
          const strictRun = await runRedrive(strict, ["--json"]);
          assert.equal(strictRun.code, 0, strictRun.stderr);
          assert.equal(JSON.parse(strictRun.stdout).redrivenTotal, 0);
        },
      );

      await step(
        "a run stopped after claiming, before sending",
        async () => {
          await assert.rejects(
            () =>
              redrive(config, {
                reason: "future_timestamp",
                chunkSize: 10,
                beforeSend: () => Promise.reject(new Error("stopped here")),
              }),
            /stopped here/,
          );
          const { rows } = await pool.query(
            "select state, count(*)::int as n from ops.redriven group by state",
          );
          assert.deepEqual(rows, [{ state: "sending", n: 10 }]);
        },
      );

      await step(
        "a run stopped after sending, before marking",
        async () => {
          await assert.rejects(
            () =>
              redrive(config, {
                reason: "future_timestamp",
                chunkSize: 10,
                afterSend: (chunk) =>
                  chunk === 2
                    ? Promise.reject(new Error("stopped after sending"))
                    : Promise.resolve(),
              }),
            /stopped after sending/,
          );
          const { rows } = await pool.query(
            "select state, count(*)::int as n from ops.redriven group by state order by state",
          );
          // The first run's claims were released (none of them is in the
          // topic); this run's chunk 1 is sent and marked, chunk 2 only sent.
          assert.deepEqual(rows, [
            { state: "sending", n: 10 },
            { state: "sent", n: 10 },
          ]);
        },
      );

      await step("deno task redrive settles and finishes", async () => {
        const run = await runRedrive(env.env, ["--json"]);
        assert.equal(run.code, 0, run.stderr);
        const report = JSON.parse(run.stdout);
        assert.deepEqual(report.settled, { sent: 10, released: 0 });
        assert.equal(report.alreadyRedriven, 20);
        assert.equal(report.redrivenTotal, FUTURE - 20);
        const { rows } = await pool.query(
          "select state, count(*)::int as n from ops.redriven group by state",
        );
        assert.deepEqual(rows, [{ state: "sent", n: FUTURE }]);
      });

      await step(
        "the relaxed consumer writes each redriven event once",
        async () => {
          await consumeUntilCaughtUp(env.env);
          const z = await readZones(config);
          const count = new Map<string, number>();
          for (const r of z.raw) {
            count.set(r.event_id, (count.get(r.event_id) ?? 0) + 1);
          }
          assert.equal(z.raw.length, VALID + FUTURE);
          for (const id of future.keys()) {
            assert.equal(count.get(id), 1, id);
          }
          // ops.redriven names where each went; the raw zone has it there.
          const { rows } = await pool.query<
            {
              event_id: string;
              partition: number;
              offset: string;
              dl_offset: string;
            }
          >(`select event_id, partition, "offset", dl_offset from ops.redriven`);
          const at = new Map(
            z.raw.map((
              r,
            ) => [r.event_id, `${r.kafka_partition}/${r.kafka_offset}`]),
          );
          for (const r of rows) {
            assert.equal(
              at.get(r.event_id),
              `${r.partition}/${Number(r.offset)}`,
            );
          }
          // A reader of the topic sees each re-injected record once, with a
          // header naming its origin.
          const seen = new Map<string, string>();
          const consumer = kafka.consumer({ groupId: `${env.id}-peek` });
          await consumer.connect();
          await consumer.subscribe({
            topic: config.kafka.topic,
            fromBeginning: true,
          });
          // Everything sent, plus the redriven records.
          const visible = VALID + FUTURE + HOPELESS.length + 1 + FUTURE;
          let read = 0;
          const deadline = Date.now() + 60_000;
          await new Promise<void>((resolve) => {
            consumer.run({
              eachMessage: ({ partition, message }) => {
                const from = message.headers?.[REDRIVEN_FROM_HEADER];
                if (from) {
                  seen.set(`${partition}/${message.offset}`, String(from));
                }
                read++;
                return Promise.resolve();
              },
            });
            const timer = setInterval(() => {
              if (read >= visible || Date.now() > deadline) {
                clearInterval(timer);
                // A moment more: anything beyond is a record too many.
                setTimeout(resolve, 1000);
              }
            }, 200);
          });
          await consumer.disconnect();
          assert.equal(read, visible);
          const origins = await pool.query<
            {
              partition: number;
              offset: string;
              dl_partition: number;
              dl_offset: string;
            }
          >(`select partition, "offset", dl_partition, dl_offset from ops.redriven`);
          assert.equal(seen.size, FUTURE);
          for (const r of origins.rows) {
            assert.equal(
              seen.get(`${r.partition}/${Number(r.offset)}`),
              `${config.kafka.topic}/${r.dl_partition}/${Number(r.dl_offset)}`,
            );
          }
        },
      );

      await step("a second redrive sends nothing", async () => {
        const before = await endOffsets();
        const run = await runRedrive(env.env, ["--json"]);
        assert.equal(run.code, 0, run.stderr);
        const report = JSON.parse(run.stdout);
        assert.equal(report.redrivenTotal, 0);
        assert.equal(report.alreadyRedriven, FUTURE);
        assert.equal(
          Object.values(report.stillInvalid).reduce(
            (a: number, b) => a + (b as number),
            0,
          ),
          HOPELESS.length + 1,
        );
        assert.equal(await endOffsets(), before);
        await consumeUntilCaughtUp(env.env);
        assert.equal((await readZones(config)).raw.length, VALID + FUTURE);
        // The API shows where each went.
        const res = await fetch(
          `${api.url}/api/dead-letters?reason=future_timestamp&limit=500`,
        );
        const body = await res.json();
        assert.equal(body.deadLetters.length, FUTURE);
        for (const r of body.deadLetters) {
          assert.equal(r.redriven?.state, "sent");
          assert.equal(r.redriven.topic, config.kafka.topic);
        }
      });

      await step(
        "the batch loads them: each redriven event is in fact_event once",
        async () => {
          const run = await runTask(env, "batch.ts", ["--skip", "export"]);
          assert.equal(run.code, 0, run.stderr.slice(-3000));
          const { rows } = await pool.query<{ event_id: string; n: number }>(
            `select event_id::text, count(*)::int as n
               from analytics.fact_event
              where event_id::text = any($1::text[])
              group by event_id`,
            [[...future.keys()]],
          );
          assert.equal(rows.length, FUTURE, "every redriven event is a fact");
          assert.ok(rows.every((r) => r.n === 1), JSON.stringify(rows));
          const total = await pool.query<{ n: number }>(
            "select count(*)::int as n from analytics.fact_event",
          );
          assert.equal(total.rows[0].n, VALID + FUTURE);
        },
      );
    } finally {
      await producer.disconnect().catch(() => {});
      await api.shutdown();
      await pool.end();
      await env.cleanup();
    }
  },
});
