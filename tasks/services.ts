/** `deno task services up|down|status`: the local Kafka, HDFS and PostgreSQL. */
import { parseCli, runMain, UsageError } from "../pipeline/cli.ts";
import { loadConfig } from "../pipeline/config.ts";
import {
  servicesDown,
  servicesStatus,
  servicesUp,
} from "../pipeline/services/manager.ts";

const USAGE = `
usage: deno task services <up [--cluster]|down|status>

  up      start (or connect to) Kafka, HDFS and PostgreSQL; wait until healthy;
          create the topic, schemas and HDFS zones. Already running: no-op.
          --cluster: 3 Kafka brokers (KRaft, RF 3, min ISR 2) and 2 DataNodes
          (HDFS replication 2), as LOGPIPE_CLUSTER=1; the state folder
          remembers it, so later commands need neither.
  down    stop every service this project started (never external ones)
  status  one line per service: up/down, address, pid

Services whose LOGPIPE_KAFKA_BROKERS / LOGPIPE_WEBHDFS_URL / LOGPIPE_DATABASE_URL
is set are external: only health-checked.`;

await runMain(async () => {
  const { values, positionals } = parseCli(
    Deno.args,
    { cluster: { type: "boolean" } },
    USAGE,
    { allowPositionals: true },
  );
  const [command, ...rest] = positionals;
  if (!command) throw new UsageError("missing sub-command: up, down or status");
  if (rest.length) throw new UsageError(`unexpected argument "${rest[0]}"`);
  if (values.cluster) {
    if (command !== "up") {
      throw new UsageError("--cluster goes with up only");
    }
    // config.ts reads it (and `up` records it in the state folder).
    Deno.env.set("LOGPIPE_CLUSTER", "1");
  }
  const say = (line: string) => console.log(line);
  switch (command) {
    case "up": {
      const t0 = Date.now();
      const config = await servicesUp({ say });
      for (const s of await servicesStatus(config)) {
        console.log(formatStatus(s));
      }
      console.log(
        `all services healthy in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
      );
      return 0;
    }
    case "down":
      await servicesDown({ say });
      return 0;
    case "status": {
      const rows = await servicesStatus(loadConfig());
      for (const s of rows) console.log(formatStatus(s));
      return rows.every((s) => s.up) ? 0 : 1;
    }
    default:
      throw new UsageError(
        `unknown sub-command "${command}" (expected up, down or status)`,
      );
  }
});

function formatStatus(
  s: Awaited<ReturnType<typeof servicesStatus>>[number],
): string {
  return [
    s.label.padEnd(16),
    (s.up ? "up" : "down").padEnd(5),
    s.mode.padEnd(9),
    s.address.padEnd(40),
    s.pid ? `pid ${s.pid}` : "",
  ].join(" ").trimEnd();
}
