/**
 * The Power BI data-source file (.pbids) for logpipe's warehouse: a
 * PostgreSQL connection in DirectQuery mode, with no credentials (Power BI
 * asks for the BI role's password). `dbt/powerbi/logpipe.pbids` is the one
 * for the local cluster on this machine; when LOGPIPE_POSTGRES_LISTEN opens
 * the cluster to other hosts, the site serves one naming the address they
 * should use instead.
 */
import type { Config } from "../config.ts";

/** The .pbids document for `server` (host:port) and `database`. */
export function pbids(server: string, database: string) {
  return {
    version: "0.1",
    connections: [{
      details: {
        protocol: "postgresql",
        address: { server, database },
      },
      options: {},
      mode: "DirectQuery",
    }],
  };
}

/**
 * host:port another machine uses to reach the local cluster, when
 * LOGPIPE_POSTGRES_LISTEN opens it: the first address it names that is not
 * loopback, or for a wildcard (0.0.0.0, *, ::) this machine's first
 * non-loopback IPv4 address. Undefined for a loopback-only or external
 * database.
 */
export function reachableServer(
  config: Pick<Config, "postgres" | "ports">,
  interfaces: () => Deno.NetworkInterfaceInfo[] = Deno.networkInterfaces,
): string | undefined {
  if (config.postgres.external) return undefined;
  const port = config.ports.postgres;
  const outward = config.postgres.server.listen.filter((a) =>
    !["127.0.0.1", "localhost", "::1"].includes(a)
  );
  if (!outward.length) return undefined;
  const specific = outward.find((a) => !["0.0.0.0", "*", "::"].includes(a));
  if (specific) {
    return specific.includes(":")
      ? `[${specific}]:${port}`
      : `${specific}:${port}`;
  }
  const nic = interfaces().find((n) =>
    n.family === "IPv4" && !n.address.startsWith("127.")
  );
  return nic ? `${nic.address}:${port}` : undefined;
}
