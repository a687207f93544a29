// kafkajs over TLS with SASL, as LOGPIPE_KAFKA_TLS* and LOGPIPE_KAFKA_SASL_*
// configure it, against a real local broker of the test's own (its own
// LOGPIPE_HOME and ports) with a SASL_SSL listener: a self-signed
// certificate made with openssl, SCRAM-SHA-256 and SCRAM-SHA-512 users
// written at format time, a PLAIN user. Each mechanism produces and
// consumes; a wrong password, a client without the CA, a plain-text client
// and a certificate for another name are refused.
import assert from "node:assert/strict";
import { type Config, DEFAULT_PORTS, loadConfig } from "../config.ts";
import {
  createKafka,
  deleteTopic,
  ensureTopic,
  kafkaSecurityOptions,
} from "./kafka.ts";
import { kafkaNodes, startKafka } from "../services/kafka.ts";
import { kafkaHealthy } from "../probes/probes.ts";
import { portIsFree, stopProcess, waitFor } from "../services/process.ts";

const PASSWORD = "s3cret-Pa55word";

async function openssl(args: string[], cwd: string): Promise<void> {
  const out = await new Deno.Command("openssl", {
    args,
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `openssl ${args[0]}: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
}

/** A self-signed certificate for `san` (key PKCS#8, unencrypted). */
async function selfSigned(dir: string, name: string, san: string) {
  await openssl([
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "2",
    "-subj",
    `/CN=${name}`,
    "-addext",
    `subjectAltName=${san}`,
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.crt`,
  ], dir);
  return { key: `${dir}/${name}.key`, crt: `${dir}/${name}.crt` };
}

function freeOffset(extra: number): number {
  for (let tries = 0; tries < 100; tries++) {
    const offset = 3000 + Math.floor(Math.random() * 4000);
    if (
      [DEFAULT_PORTS.kafka, DEFAULT_PORTS.kafkaController, extra].every((p) =>
        portIsFree(p + offset)
      )
    ) return offset;
  }
  throw new Error("no free ports for the test's own broker");
}

/** Produces one record and reads it back with a group, through `config`. */
async function roundTrip(config: Config, topic: string, value: string) {
  const kafka = createKafka(config, { quiet: true, retries: 2 });
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  const consumer = kafka.consumer({ groupId: `g-${crypto.randomUUID()}` });
  try {
    await producer.connect();
    await producer.send({ topic, acks: -1, messages: [{ key: "k", value }] });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const seen: string[] = [];
    await consumer.run({
      eachMessage: ({ message }) => {
        seen.push(message.value!.toString());
        return Promise.resolve();
      },
    });
    assert.ok(
      await waitFor(() => Promise.resolve(seen.includes(value)), 30_000, 200),
      `${value} read back (saw ${seen.join(", ")})`,
    );
  } finally {
    await consumer.disconnect().catch(() => {});
    await producer.disconnect().catch(() => {});
  }
}

/** The error an admin connection through `config` ends with, if any. */
async function connectError(config: Config): Promise<unknown> {
  const admin = createKafka(config, { quiet: true, retries: 0 }).admin();
  try {
    await admin.connect();
    await admin.listTopics();
    return undefined;
  } catch (err) {
    return err;
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

Deno.test({
  name:
    "Kafka over TLS with SASL SCRAM-SHA-256/512 and PLAIN: a broker with a self-signed certificate accepts the configured client and refuses wrong passwords, missing CA, plain text and a wrong host name",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const shared = loadConfig();
    const home = await Deno.makeTempDir({ prefix: "logpipe-kafka-tls-" });
    Deno.mkdirSync(`${home}/logs`);
    Deno.mkdirSync(`${home}/run`);
    Deno.mkdirSync(`${home}/jars`);
    Deno.symlinkSync(`${shared.localDir}/jars/kafka`, `${home}/jars/kafka`);
    const tls = `${home}/tls`;
    Deno.mkdirSync(tls);
    const server = await selfSigned(
      tls,
      "broker",
      "IP:127.0.0.1,DNS:localhost",
    );
    const other = await selfSigned(tls, "other", "DNS:other.example");
    const keystore = `${tls}/broker-keystore.pem`;
    Deno.writeTextFileSync(
      keystore,
      Deno.readTextFileSync(server.key) + Deno.readTextFileSync(server.crt),
    );
    const securePort = 9190;
    const offset = freeOffset(securePort);
    const base = {
      LOGPIPE_HOME: home,
      LOGPIPE_PORT_OFFSET: String(offset),
      LOGPIPE_CLUSTER: "0",
    };
    const local = loadConfig(base);
    const port = securePort + offset;
    let pid: number | undefined;
    try {
      pid = await startKafka(local, kafkaNodes(local)[0], {
        secure: {
          port,
          keystorePem: keystore,
          scramUsers: [
            { mechanism: "SCRAM-SHA-256", name: "alice", password: PASSWORD },
            { mechanism: "SCRAM-SHA-512", name: "bob", password: PASSWORD },
          ],
          plainUsers: [{ name: "carol", password: "plainPassw0rd" }],
        },
      });
      assert.ok(
        await waitFor(() => kafkaHealthy(local), 120_000, 500),
        "the broker answers on its plain-text port",
      );

      // What a user sets in .env for a secured cluster.
      const secured = (extra: Record<string, string>) =>
        loadConfig({
          ...base,
          LOGPIPE_KAFKA_BROKERS: `127.0.0.1:${port}`,
          LOGPIPE_KAFKA_TLS: "on",
          LOGPIPE_KAFKA_TLS_CA: server.crt,
          LOGPIPE_KAFKA_SASL_MECHANISM: "scram-sha-256",
          LOGPIPE_KAFKA_SASL_USERNAME: "alice",
          LOGPIPE_KAFKA_SASL_PASSWORD: PASSWORD,
          LOGPIPE_TOPIC: "secured",
          LOGPIPE_TOPIC_PARTITIONS: "2",
          ...extra,
        });
      const scram256 = secured({});
      const opts = kafkaSecurityOptions(scram256.kafka);
      assert.equal(opts.sasl?.mechanism, "scram-sha-256");
      assert.ok(typeof opts.ssl === "object" && Array.isArray(opts.ssl.ca));

      await t.step(
        "SCRAM-SHA-256: create the topic, produce, consume",
        async () => {
          assert.equal(await ensureTopic(scram256), true);
          await roundTrip(scram256, "secured", "over scram-sha-256");
        },
      );
      await t.step("SCRAM-SHA-512", async () => {
        await roundTrip(
          secured({
            LOGPIPE_KAFKA_SASL_MECHANISM: "scram-sha-512",
            LOGPIPE_KAFKA_SASL_USERNAME: "bob",
          }),
          "secured",
          "over scram-sha-512",
        );
      });
      await t.step("PLAIN (over TLS)", async () => {
        await roundTrip(
          secured({
            LOGPIPE_KAFKA_SASL_MECHANISM: "plain",
            LOGPIPE_KAFKA_SASL_USERNAME: "carol",
            LOGPIPE_KAFKA_SASL_PASSWORD: "plainPassw0rd",
          }),
          "secured",
          "over plain",
        );
      });
      await t.step("refused: a wrong password", async () => {
        const err = await connectError(
          secured({ LOGPIPE_KAFKA_SASL_PASSWORD: "wrong-password" }),
        );
        assert.match(String(err), /SASL|[Aa]uthentication/);
      });
      await t.step(
        "refused: a SCRAM-SHA-256 user over SCRAM-SHA-512",
        async () => {
          const err = await connectError(
            secured({ LOGPIPE_KAFKA_SASL_MECHANISM: "scram-sha-512" }),
          );
          assert.match(String(err), /SASL|[Aa]uthentication/);
        },
      );
      await t.step(
        "refused: TLS without the CA (the system's CAs do not know it)",
        async () => {
          const noCa = loadConfig({
            ...base,
            LOGPIPE_KAFKA_BROKERS: `127.0.0.1:${port}`,
            LOGPIPE_KAFKA_TLS: "on",
            LOGPIPE_KAFKA_SASL_MECHANISM: "scram-sha-256",
            LOGPIPE_KAFKA_SASL_USERNAME: "alice",
            LOGPIPE_KAFKA_SASL_PASSWORD: PASSWORD,
          });
          const err = await connectError(noCa);
          assert.ok(err, "connected without trusting the certificate");
          assert.match(
            String(err),
            /certificate|self.signed|SSL|TLS|Connection/i,
          );
        },
      );
      await t.step("refused: a certificate for another name", async () => {
        // The CA the client trusts signed only other.example.
        const err = await connectError(
          secured({ LOGPIPE_KAFKA_TLS_CA: other.crt }),
        );
        assert.ok(err, "accepted a certificate its CA did not sign");
      });
      await t.step("refused: plain text to the SASL_SSL port", async () => {
        const plain = loadConfig({
          ...base,
          LOGPIPE_KAFKA_BROKERS: `127.0.0.1:${port}`,
          LOGPIPE_KAFKA_SASL_MECHANISM: "scram-sha-256",
          LOGPIPE_KAFKA_SASL_USERNAME: "alice",
          LOGPIPE_KAFKA_SASL_PASSWORD: PASSWORD,
        });
        assert.ok(await connectError(plain), "plain text got through");
      });
      await t.step("config refuses PLAIN without TLS", () => {
        assert.throws(
          () =>
            loadConfig({
              ...base,
              LOGPIPE_KAFKA_SASL_MECHANISM: "plain",
              LOGPIPE_KAFKA_SASL_USERNAME: "carol",
              LOGPIPE_KAFKA_SASL_PASSWORD: "x",
            }),
          /needs LOGPIPE_KAFKA_TLS=on/,
        );
      });
      await deleteTopic(scram256, "secured");
    } finally {
      if (pid) await stopProcess(pid);
      await Deno.remove(home, { recursive: true }).catch(() => {});
    }
  },
});
