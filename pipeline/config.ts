/**
 * The one place that reads configuration.
 *
 * Every setting comes from a `LOGPIPE_*` environment variable (or a `.env`
 * file in the project root, which never overrides the real environment), with
 * defaults that point at the local services `deno task services up` starts.
 * Setting `LOGPIPE_KAFKA_BROKERS`, `LOGPIPE_WEBHDFS_URL` or
 * `LOGPIPE_DATABASE_URL` switches that service to external mode: nothing is
 * started locally for it, it is only health-checked.
 *
 * Secrets (database passwords, webhook URLs, SMTP credentials) are only ever
 * read from the environment or from the git-ignored local state folder.
 */

/** Raised for a malformed setting; CLIs print `message` and exit 2. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Ports of the local services (also used by docker-compose.yaml). */
export const DEFAULT_PORTS = {
  kafka: 9092,
  kafkaController: 9093,
  namenodeRpc: 8020,
  namenodeHttp: 9870,
  datanodeHttp: 9864,
  datanodeData: 9866,
  datanodeIpc: 9867,
  // The local cluster's further nodes (LOGPIPE_CLUSTER=1): brokers 2 and 3
  // with their KRaft controller ports, and a second DataNode.
  kafka2: 9094,
  kafkaController2: 9095,
  kafka3: 9096,
  kafkaController3: 9097,
  datanode2Http: 9874,
  datanode2Data: 9876,
  datanode2Ipc: 9877,
  postgres: 5433,
  api: 8787,
  sitePreview: 3000,
} as const;

export interface KafkaConfig {
  brokers: string[];
  external: boolean;
  topic: string;
  partitions: number;
  clientId: string;
  consumerGroup: string;
  /** Replication factor of a created topic; undefined = min(3, brokers). */
  replicationFactor: number | undefined;
  /** min.insync.replicas of a created topic; undefined = RF - 1, at least 1. */
  minInsyncReplicas: number | undefined;
  /** TLS to the brokers (undefined = plain text). */
  tls: KafkaTlsConfig | undefined;
  /** SASL authentication (undefined = none). */
  sasl: KafkaSaslConfig | undefined;
}

/** TLS to the brokers; files are PEM. No CA file = the system's CAs. */
export interface KafkaTlsConfig {
  caFile: string | undefined;
  /** Client certificate and key (mutual TLS), both or neither. */
  certFile: string | undefined;
  keyFile: string | undefined;
}

/** The SASL mechanisms kafkajs speaks (besides OAUTHBEARER and AWS). */
export const KAFKA_SASL_MECHANISMS = [
  "plain",
  "scram-sha-256",
  "scram-sha-512",
] as const;

export interface KafkaSaslConfig {
  mechanism: typeof KAFKA_SASL_MECHANISMS[number];
  username: string;
  password: string;
}

/** libpq's sslmode values (with libpq's meaning, see clients/postgres.ts). */
export const POSTGRES_SSL_MODES = [
  "disable",
  "prefer",
  "require",
  "verify-ca",
  "verify-full",
] as const;

export interface HdfsConfig {
  /** e.g. http://127.0.0.1:9870 (the NameNode's HTTP address, no path). */
  webhdfsUrl: string;
  /**
   * Every NameNode's HTTP(S) origin, webhdfsUrl first: with HA, the client
   * fails over to the next on a connection error or a StandbyException.
   */
  webhdfsUrls: string[];
  /** PEM file of the CA that signed the NameNodes' and DataNodes' HTTPS certificates (undefined = system CAs). */
  caFile: string | undefined;
  external: boolean;
  user: string;
  /** Root of everything logpipe writes; zones live below it. */
  root: string;
  rawDir: string;
  deadLetterDir: string;
  exportsDir: string;
}

export interface PostgresConfig {
  /** Connection URL of the logpipe owner role. */
  url: string;
  external: boolean;
  host: string;
  port: number;
  database: string;
  user: string;
  /** Read-only role for BI tools (sees the masked views of schema `bi` only). */
  biUser: string;
  biPassword: string | undefined;
  /** `masked`: the BI role sees masked e-mails and no street addresses; `full`: both as stored. */
  biPii: "masked" | "full";
  /** statement_timeout of the BI role, in seconds. */
  biStatementTimeoutS: number;
  /** Connection limit of the BI role. */
  biConnectionLimit: number;
  /** Network settings of the local cluster (ignored in external mode). */
  server: PostgresServerConfig;
  /**
   * sslmode of logpipe's own connections, with libpq's meaning
   * (LOGPIPE_POSTGRES_SSLMODE, or `sslmode` in LOGPIPE_DATABASE_URL); also
   * in `url` as a query parameter. undefined = plain text.
   */
  sslMode: typeof POSTGRES_SSL_MODES[number] | undefined;
  /** PEM file of the CA to check the server's certificate against. */
  sslRootCert: string | undefined;
}

/** Who may reach the local PostgreSQL cluster over TCP, and how. */
export interface PostgresServerConfig {
  /** Addresses Postgres listens on; 127.0.0.1 is always among them. */
  listen: string[];
  /** CIDRs admitted over TLS (`hostssl`, scram-sha-256) besides loopback. */
  allow: string[];
  /** TLS on (a self-signed certificate is generated on first start with TLS). */
  tls: boolean;
}

export interface NotifyConfig {
  slackWebhookUrl: string | undefined;
  smtpUrl: string | undefined;
  emailFrom: string;
  emailTo: string[];
}

export type Ports = { [K in keyof typeof DEFAULT_PORTS]: number };

export interface ApiConfig {
  host: string;
  port: number;
  /** Bearer token for rule-changing calls (at least MIN_API_TOKEN_LENGTH characters). */
  token: string | undefined;
  /**
   * Extra `Host` header values the API answers (lower-case `name` or
   * `name:port`), beyond 127.0.0.1, localhost and [::1] on its own port.
   */
  allowedHosts: string[];
}

/** Shortest LOGPIPE_API_TOKEN accepted: a guessable token guards nothing. */
export const MIN_API_TOKEN_LENGTH = 32;

export interface Config {
  /** Ports of the local services: DEFAULT_PORTS + LOGPIPE_PORT_OFFSET. */
  ports: Ports;
  /**
   * The local services run as a cluster (LOGPIPE_CLUSTER=1, or a state
   * folder first started with `services up --cluster`): 3 Kafka brokers
   * (RF 3, min ISR 2) and 2 DataNodes (HDFS replication 2).
   */
  cluster: boolean;
  /** Absolute path of the project root (where deno.json lives). */
  projectRoot: string;
  /** Absolute path of the git-ignored local state folder. */
  localDir: string;
  kafka: KafkaConfig;
  hdfs: HdfsConfig;
  postgres: PostgresConfig;
  api: ApiConfig;
  batch: {
    cron: string;
    /** Hour folders at or after the newest loaded hour minus this are always listed. */
    lookbackHours: number;
    /** An event hour is compacted once it ended this many minutes ago. */
    compactionGraceMinutes: number;
  };
  /** Whether a successful batch run rebuilds the site (dist/). */
  site: { publish: boolean };
  /** The event validator's settings (pipeline/events/schema.ts). */
  validation: ValidationConfig;
  notify: NotifyConfig;
  logLevel: "debug" | "info" | "warn" | "error";
}

export interface ValidationConfig {
  /**
   * How far (ms) an event's timestamps may run ahead of its Kafka record
   * timestamp before it is dead-lettered as `future_timestamp`.
   */
  maxFutureSkewMs: number;
}

/** Every variable the project reads, with what it means (README and .env.example list the same). */
export const VARIABLES: Record<string, string> = {
  LOGPIPE_HOME: "local state folder (default: <project>/.local)",
  LOGPIPE_PORT_OFFSET:
    "added to every local port (default 0), to run a second instance beside the first",
  LOGPIPE_KAFKA_BROKERS:
    "comma-separated host:port list; set = external Kafka, not started locally",
  LOGPIPE_CLUSTER:
    "1 | 0: run the local services as a cluster, 3 Kafka brokers (RF 3, min ISR 2) and 2 DataNodes (HDFS replication 2); `deno task services up --cluster` sets it and the state folder remembers it",
  LOGPIPE_KAFKA_REPLICATION_FACTOR:
    "replication factor of the topic when logpipe creates it (default: min(3, brokers in the cluster))",
  LOGPIPE_KAFKA_MIN_INSYNC_REPLICAS:
    "min.insync.replicas of the topic when logpipe creates it (default: replication factor - 1, at least 1)",
  LOGPIPE_KAFKA_TLS: "on | off (default off): TLS to the brokers",
  LOGPIPE_KAFKA_TLS_CA:
    "PEM file of the CA that signed the brokers' certificates (default: the system's CAs)",
  LOGPIPE_KAFKA_TLS_CERT:
    "PEM client certificate for mutual TLS (with LOGPIPE_KAFKA_TLS_KEY)",
  LOGPIPE_KAFKA_TLS_KEY: "PEM private key of LOGPIPE_KAFKA_TLS_CERT",
  LOGPIPE_KAFKA_SASL_MECHANISM:
    "plain | scram-sha-256 | scram-sha-512: SASL authentication to the brokers (plain only with TLS)",
  LOGPIPE_KAFKA_SASL_USERNAME: "SASL user name",
  LOGPIPE_KAFKA_SASL_PASSWORD: "SASL password",
  LOGPIPE_TOPIC: "event topic (default LogEvents)",
  LOGPIPE_TOPIC_PARTITIONS: "partitions when the topic is created (default 6)",
  LOGPIPE_CONSUMER_GROUP: "stream consumer group (default logpipe-hdfs-sink)",
  LOGPIPE_WEBHDFS_URL:
    "NameNode HTTP(S) URL, e.g. http://namenode:9870, or a comma-separated list of an HA pair's NameNodes (failover on connection errors and StandbyException); set = external HDFS",
  LOGPIPE_WEBHDFS_CA:
    "PEM file of the CA that signed the NameNodes' and DataNodes' HTTPS certificates (default: the system's CAs)",
  LOGPIPE_HDFS_USER: "HDFS user for WebHDFS calls (default logpipe)",
  LOGPIPE_HDFS_ROOT:
    "HDFS folder holding the raw, dead-letter and exports zones (default /logpipe)",
  LOGPIPE_DATABASE_URL:
    "postgres://user:password@host:port/db of the owner role; set = external Postgres",
  LOGPIPE_BI_USER: "read-only BI role name (default logpipe_bi)",
  LOGPIPE_BI_PASSWORD:
    "password of the BI role (local default: generated into the local state folder)",
  LOGPIPE_BI_PII:
    "masked | full (default masked): masked = the BI role sees masked e-mail addresses and no street addresses",
  LOGPIPE_BI_STATEMENT_TIMEOUT_S:
    "statement_timeout of the BI role in seconds (default 120)",
  LOGPIPE_BI_CONNECTION_LIMIT: "connection limit of the BI role (default 20)",
  LOGPIPE_POSTGRES_LISTEN:
    "comma-separated addresses the local Postgres listens on (default 127.0.0.1, always included); beyond loopback needs LOGPIPE_POSTGRES_TLS=on",
  LOGPIPE_POSTGRES_ALLOW:
    "comma-separated CIDRs admitted to the local Postgres over TLS only (hostssl, scram-sha-256); needs LOGPIPE_POSTGRES_TLS=on",
  LOGPIPE_POSTGRES_TLS:
    "on | off (default off): TLS on the local Postgres, with a self-signed certificate generated on first start",
  LOGPIPE_POSTGRES_SSLMODE:
    "disable | prefer | require | verify-ca | verify-full, with libpq's meaning: TLS of logpipe's own connections to Postgres (default: the sslmode in LOGPIPE_DATABASE_URL, else disable)",
  LOGPIPE_POSTGRES_SSLROOTCERT:
    "PEM file of the CA for verify-ca / verify-full (default: the system's CAs)",
  LOGPIPE_API_HOST: "API bind address (default 127.0.0.1)",
  LOGPIPE_API_PORT: "API port (default 8787)",
  LOGPIPE_API_TOKEN:
    "token (at least 32 characters) required by rule-changing API calls; mandatory when the API binds beyond 127.0.0.1",
  LOGPIPE_API_ALLOWED_HOSTS:
    "comma-separated extra Host names (name or name:port) the API answers, e.g. a reverse proxy's public name; default only 127.0.0.1, localhost and [::1]",
  LOGPIPE_BATCH_LOOKBACK_HOURS:
    "hour folders of the raw zone at or after the newest loaded hour minus this many hours are listed every run (default 3); older ones only when their HDFS modification time changed",
  LOGPIPE_COMPACTION_GRACE_MINUTES:
    "the batch compacts an event hour's small files once the hour ended this many minutes ago (default 30); later events become a new file, compacted on the next pass",
  LOGPIPE_BATCH_CRON:
    "batch schedule, UTC cron expression (default */10 * * * *)",
  LOGPIPE_SITE_PUBLISH:
    "true | false (default true): rebuild the site into <project>/dist after each successful batch run, manual or scheduled; the test environments set false",
  LOGPIPE_SLACK_WEBHOOK_URL:
    "Slack-compatible incoming webhook for notifications",
  LOGPIPE_SMTP_URL: "smtp://user:pass@host:port for e-mail notifications",
  LOGPIPE_EMAIL_FROM: "sender address of notification e-mails",
  LOGPIPE_EMAIL_TO: "comma-separated operator addresses",
  LOGPIPE_LOG_LEVEL: "debug | info | warn | error (default info)",
  LOGPIPE_MAX_FUTURE_SKEW:
    "how far an event's timestamps may run ahead of its Kafka record timestamp before it is dead-lettered as future_timestamp: 0, 90s, 15m, 1h (default 15m)",
};

const LOCAL_HOST = "127.0.0.1";

/** The project root: the folder above `pipeline/`. */
export const PROJECT_ROOT = new URL("..", import.meta.url).pathname.replace(
  /\/$/,
  "",
);

/** Parses a `.env` file's text (KEY=VALUE lines, # comments, optional quotes). */
export function parseDotEnv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const eq = line.indexOf("=");
    if (eq <= 0) continue;
    const key = line.slice(0, eq).trim().replace(/^export\s+/, "");
    let value = line.slice(eq + 1).trim();
    if (
      value.length >= 2 &&
      (value[0] === '"' || value[0] === "'") && value.at(-1) === value[0]
    ) {
      value = value.slice(1, -1);
    }
    out[key] = value;
  }
  return out;
}

function readDotEnv(root: string): Record<string, string> {
  try {
    return parseDotEnv(Deno.readTextFileSync(`${root}/.env`));
  } catch {
    return {};
  }
}

let dotEnvCache: Record<string, string> | undefined;

/**
 * One `LOGPIPE_*` variable from the process environment, else from `.env`
 * (the same precedence as loadConfig). For what must be known before or
 * without a whole Config: the log level when a module loads, test knobs.
 * Every other module reads configuration through here or loadConfig, never
 * `Deno.env` directly, so a value set in `.env` is never silently ignored.
 */
export function setting(name: `LOGPIPE_${string}`): string | undefined {
  const fromEnv = Deno.env.get(name);
  if (fromEnv !== undefined && fromEnv.trim() !== "") return fromEnv.trim();
  dotEnvCache ??= readDotEnv(PROJECT_ROOT);
  const fromFile = dotEnvCache[name];
  return fromFile === undefined || fromFile.trim() === ""
    ? undefined
    : fromFile.trim();
}

/**
 * Hides credentials in free text (log lines, error messages): the userinfo
 * of any `scheme://user:password@host` becomes `scheme://***@host`.
 */
export function redactSecrets(text: string): string {
  return text.replace(
    /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@'"]+@/gi,
    "$1***@",
  );
}

/**
 * A URL setting as it may be shown in a message: no password, and for
 * http(s) URLs no path or query either (webhook URLs carry their secret
 * there). Of an unparseable value only the scheme is shown.
 */
export function redactUrl(value: string): string {
  try {
    const url = new URL(value);
    if (url.password) url.password = "***";
    if (url.protocol === "http:" || url.protocol === "https:") {
      return url.pathname === "/" && !url.search
        ? url.origin
        : `${url.origin}/…`;
    }
    return url.toString();
  } catch {
    // Where a malformed value's password ends cannot be known: show only
    // its scheme.
    const scheme = /^[a-z][a-z0-9+.-]*:/i.exec(value)?.[0] ?? "";
    return `${scheme}… (rest not shown)`;
  }
}

function readSecretFile(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path).trim() || undefined;
  } catch {
    return undefined;
  }
}

function parseIntSetting(
  name: string,
  value: string | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  if (value === undefined || value === "") return fallback;
  if (!/^\d+$/.test(value)) {
    throw new ConfigError(`${name} must be an integer, got "${value}"`);
  }
  const n = Number(value);
  if (n < min || n > max) {
    throw new ConfigError(
      `${name} must be between ${min} and ${max}, got ${n}`,
    );
  }
  return n;
}

function parseUrlSetting(
  name: string,
  value: string,
  protocols: string[],
): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(
      `${name} is not a valid URL: "${redactUrl(value)}"`,
    );
  }
  if (!protocols.includes(url.protocol)) {
    throw new ConfigError(
      `${name} must use ${protocols.join(" or ")}, got "${url.protocol}"`,
    );
  }
  if (!url.hostname) {
    throw new ConfigError(`${name} has no host: "${redactUrl(value)}"`);
  }
  return url;
}

function parseBrokers(value: string): string[] {
  const brokers = value.split(",").map((b) => b.trim()).filter(Boolean);
  if (brokers.length === 0) {
    throw new ConfigError("LOGPIPE_KAFKA_BROKERS is empty");
  }
  for (const b of brokers) {
    const m = /^([A-Za-z0-9.\-_]+|\[[0-9a-fA-F:]+\]):(\d{1,5})$/.exec(b);
    if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) {
      throw new ConfigError(
        `LOGPIPE_KAFKA_BROKERS entry "${b}" is not host:port`,
      );
    }
  }
  return brokers;
}

function parseAllowedHosts(value: string): string[] {
  const hosts = value.split(",").map((h) => h.trim().toLowerCase()).filter(
    Boolean,
  );
  for (const h of hosts) {
    const m = /^([a-z0-9.-]+|\[[0-9a-f:.]+\])(?::(\d{1,5}))?$/.exec(h);
    if (!m || (m[2] !== undefined && (+m[2] < 1 || +m[2] > 65535))) {
      throw new ConfigError(
        `LOGPIPE_API_ALLOWED_HOSTS entry "${h}" is not a host name or host:port`,
      );
    }
  }
  return hosts;
}

function parseHdfsPath(name: string, value: string): string {
  if (!value.startsWith("/") || value.includes("..") || /\s/.test(value)) {
    throw new ConfigError(
      `${name} must be an absolute HDFS path without spaces or "..", got "${value}"`,
    );
  }
  return value.replace(/\/+$/, "") || "/";
}

/** "0", "1500ms", "90s", "15m", "2h" → milliseconds, at most `max`. */
function parseDurationSetting(name: string, value: string, max: number) {
  const m = /^(\d+)(ms|s|m|h)$/.exec(value) ?? /^(0)()$/.exec(value);
  if (!m) {
    throw new ConfigError(
      `${name} must be a duration like 0, 90s, 15m or 1h, got "${value}"`,
    );
  }
  const ms = Number(m[1]) *
    ({ "": 0, ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2]] ?? 0);
  if (ms > max) {
    throw new ConfigError(`${name} must be at most ${max / 3_600_000} h`);
  }
  return ms;
}

function parseName(name: string, value: string): string {
  if (!/^[A-Za-z0-9._-]{1,200}$/.test(value)) {
    throw new ConfigError(
      `${name} may only hold letters, digits, ".", "_" and "-", got "${value}"`,
    );
  }
  return value;
}

function parseChoice<T extends string>(
  name: string,
  value: string,
  choices: readonly T[],
): T {
  if (!(choices as readonly string[]).includes(value)) {
    throw new ConfigError(
      `${name} must be ${choices.join(" or ")}, got "${value}"`,
    );
  }
  return value as T;
}

/** A setting naming a file that must exist (a certificate, a key). */
function parseFileSetting(name: string, value: string): string {
  let isFile = false;
  try {
    isFile = Deno.statSync(value).isFile;
  } catch { /* missing or unreadable */ }
  if (!isFile) {
    throw new ConfigError(`${name} is not a readable file: "${value}"`);
  }
  return value;
}

/**
 * The marker a state folder started as a local cluster keeps: from then on
 * every command run on that folder (services, up, the tests) sees the
 * cluster without LOGPIPE_CLUSTER being set again.
 */
export function clusterMarkerPath(localDir: string): string {
  return `${localDir}/cluster`;
}

function parseCluster(value: string | undefined, localDir: string): boolean {
  let marked = false;
  try {
    marked = Deno.statSync(clusterMarkerPath(localDir)).isFile;
  } catch { /* no marker */ }
  if (value === undefined) return marked;
  const on = parseChoice("LOGPIPE_CLUSTER", value, ["1", "0"] as const) === "1";
  if (!on && marked) {
    // Its Kafka storage is formatted for a 3-node quorum: one node alone
    // would start empty beside it and the data would seem lost.
    throw new ConfigError(
      `LOGPIPE_CLUSTER=0, but ${localDir} was started as a local cluster (${
        clusterMarkerPath(localDir)
      }); unset LOGPIPE_CLUSTER or use another LOGPIPE_HOME`,
    );
  }
  return on;
}

/** LOGPIPE_KAFKA_TLS* and LOGPIPE_KAFKA_SASL_*. */
export function parseKafkaSecurity(
  get: (k: string) => string | undefined,
): Pick<KafkaConfig, "tls" | "sasl"> {
  const tlsOn = parseChoice(
    "LOGPIPE_KAFKA_TLS",
    get("LOGPIPE_KAFKA_TLS") ?? "off",
    ["on", "off"] as const,
  ) === "on";
  const file = (name: string) => {
    const v = get(name);
    if (v !== undefined && !tlsOn) {
      throw new ConfigError(`${name} needs LOGPIPE_KAFKA_TLS=on`);
    }
    return v === undefined ? undefined : parseFileSetting(name, v);
  };
  const tls = {
    caFile: file("LOGPIPE_KAFKA_TLS_CA"),
    certFile: file("LOGPIPE_KAFKA_TLS_CERT"),
    keyFile: file("LOGPIPE_KAFKA_TLS_KEY"),
  };
  if ((tls.certFile === undefined) !== (tls.keyFile === undefined)) {
    throw new ConfigError(
      "LOGPIPE_KAFKA_TLS_CERT and LOGPIPE_KAFKA_TLS_KEY go together (mutual TLS needs both)",
    );
  }
  const mechanismEnv = get("LOGPIPE_KAFKA_SASL_MECHANISM");
  const username = get("LOGPIPE_KAFKA_SASL_USERNAME");
  const password = get("LOGPIPE_KAFKA_SASL_PASSWORD");
  let sasl: KafkaSaslConfig | undefined;
  if (mechanismEnv === undefined) {
    if (username !== undefined || password !== undefined) {
      throw new ConfigError(
        "LOGPIPE_KAFKA_SASL_USERNAME / _PASSWORD need LOGPIPE_KAFKA_SASL_MECHANISM (plain, scram-sha-256 or scram-sha-512)",
      );
    }
  } else {
    const mechanism = parseChoice(
      "LOGPIPE_KAFKA_SASL_MECHANISM",
      mechanismEnv.toLowerCase(),
      KAFKA_SASL_MECHANISMS,
    );
    if (username === undefined || password === undefined) {
      throw new ConfigError(
        "LOGPIPE_KAFKA_SASL_MECHANISM needs LOGPIPE_KAFKA_SASL_USERNAME and LOGPIPE_KAFKA_SASL_PASSWORD",
      );
    }
    if (mechanism === "plain" && !tlsOn) {
      // PLAIN sends the password as it is; SCRAM never sends it.
      throw new ConfigError(
        "LOGPIPE_KAFKA_SASL_MECHANISM=plain sends the password in clear: it needs LOGPIPE_KAFKA_TLS=on",
      );
    }
    sasl = { mechanism, username, password };
  }
  return { tls: tlsOn ? tls : undefined, sasl };
}

/** LOGPIPE_WEBHDFS_URL: one NameNode or an HA pair's, comma-separated. */
function parseWebHdfsUrls(value: string): string[] {
  const urls = value.split(",").map((u) => u.trim()).filter(Boolean).map((
    u,
  ) => parseUrlSetting("LOGPIPE_WEBHDFS_URL", u, ["http:", "https:"]).origin);
  if (urls.length === 0) throw new ConfigError("LOGPIPE_WEBHDFS_URL is empty");
  return [...new Set(urls)];
}

/**
 * LOGPIPE_POSTGRES_SSLMODE / _SSLROOTCERT, or the same parameters in the
 * URL: written into the URL as libpq's `sslmode` and `sslrootcert`, which
 * psql and libpq read as they are and clients/postgres.ts reads with
 * libpq's meaning.
 */
function applyPostgresSsl(
  url: URL,
  modeEnv: string | undefined,
  rootCertEnv: string | undefined,
): Pick<PostgresConfig, "sslMode" | "sslRootCert"> {
  const urlMode = url.searchParams.get("sslmode") ?? undefined;
  if (modeEnv !== undefined && urlMode !== undefined && modeEnv !== urlMode) {
    throw new ConfigError(
      `LOGPIPE_POSTGRES_SSLMODE=${modeEnv} and sslmode=${urlMode} in LOGPIPE_DATABASE_URL disagree; set one`,
    );
  }
  const modeValue = modeEnv ?? urlMode;
  const sslMode = modeValue === undefined ? undefined : parseChoice(
    modeEnv !== undefined
      ? "LOGPIPE_POSTGRES_SSLMODE"
      : "sslmode in LOGPIPE_DATABASE_URL",
    modeValue,
    POSTGRES_SSL_MODES,
  );
  const rootValue = rootCertEnv ?? url.searchParams.get("sslrootcert") ??
    undefined;
  const sslRootCert = rootValue === undefined
    ? undefined
    : parseFileSetting("LOGPIPE_POSTGRES_SSLROOTCERT", rootValue);
  if (sslMode === "verify-ca" && sslRootCert === undefined) {
    // Any certificate a public CA signed would pass: pointless.
    throw new ConfigError(
      "sslmode verify-ca needs LOGPIPE_POSTGRES_SSLROOTCERT (the CA to check against); with a public CA use verify-full",
    );
  }
  if (sslMode !== undefined) url.searchParams.set("sslmode", sslMode);
  if (sslRootCert !== undefined) {
    url.searchParams.set("sslrootcert", sslRootCert);
  }
  return { sslMode, sslRootCert };
}

const LOOPBACK_ADDRESSES = new Set(["127.0.0.1", "localhost", "::1"]);

function isIpv4(s: string): boolean {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  return !!m && m.slice(1).every((o) => Number(o) <= 255);
}

function isIpv6(s: string): boolean {
  return /^[0-9a-fA-F:]+$/.test(s) && s.includes(":") &&
    (s.match(/::/g)?.length ?? 0) <= 1;
}

/**
 * LOGPIPE_POSTGRES_LISTEN / _ALLOW / _TLS: who may reach the local cluster.
 * Opening it beyond loopback is refused unless TLS is on, since the remote
 * rules are `hostssl` only.
 */
export function parsePostgresServer(
  listenEnv: string | undefined,
  allowEnv: string | undefined,
  tlsEnv: string | undefined,
): PostgresServerConfig {
  const tls = parseChoice(
    "LOGPIPE_POSTGRES_TLS",
    tlsEnv ?? "off",
    [
      "on",
      "off",
    ] as const,
  ) === "on";
  const listen = ["127.0.0.1"];
  for (const a of (listenEnv ?? "").split(",").map((s) => s.trim())) {
    if (!a || listen.includes(a)) continue;
    if (!(a === "*" || a === "localhost" || isIpv4(a) || isIpv6(a))) {
      throw new ConfigError(
        `LOGPIPE_POSTGRES_LISTEN entry "${a}" is not an IP address, "localhost" or "*"`,
      );
    }
    listen.push(a);
  }
  const allow: string[] = [];
  for (const c of (allowEnv ?? "").split(",").map((s) => s.trim())) {
    if (!c) continue;
    const [addr, bits, extra] = c.split("/");
    const max = isIpv4(addr) ? 32 : isIpv6(addr) ? 128 : -1;
    if (
      extra !== undefined || max < 0 || !/^\d{1,3}$/.test(bits ?? "") ||
      Number(bits) > max
    ) {
      throw new ConfigError(
        `LOGPIPE_POSTGRES_ALLOW entry "${c}" is not a CIDR (e.g. 172.20.0.0/16 or 192.168.1.10/32)`,
      );
    }
    allow.push(c);
  }
  const opened = listen.some((a) => !LOOPBACK_ADDRESSES.has(a)) ||
    allow.length > 0;
  if (opened && !tls) {
    throw new ConfigError(
      "LOGPIPE_POSTGRES_LISTEN beyond loopback or LOGPIPE_POSTGRES_ALLOW needs LOGPIPE_POSTGRES_TLS=on (remote logins are TLS only)",
    );
  }
  return { listen, allow, tls };
}

/** Reads one setting: trimmed, undefined when unset or blank. */
type SettingReader = (k: string) => string | undefined;

/** An optional replica count setting (1-32); undefined when unset. */
function parseReplicaCount(
  get: SettingReader,
  name: string,
): number | undefined {
  return get(name) === undefined
    ? undefined
    : parseIntSetting(name, get(name), 1, 1, 32);
}

/** LOGPIPE_KAFKA_*, LOGPIPE_TOPIC*, LOGPIPE_CONSUMER_GROUP. */
function kafkaSettings(
  get: SettingReader,
  ports: Ports,
  cluster: boolean,
): KafkaConfig {
  const brokersEnv = get("LOGPIPE_KAFKA_BROKERS");
  const replicationFactor = parseReplicaCount(
    get,
    "LOGPIPE_KAFKA_REPLICATION_FACTOR",
  );
  const minInsyncReplicas = parseReplicaCount(
    get,
    "LOGPIPE_KAFKA_MIN_INSYNC_REPLICAS",
  );
  if (
    replicationFactor !== undefined && minInsyncReplicas !== undefined &&
    minInsyncReplicas > replicationFactor
  ) {
    throw new ConfigError(
      `LOGPIPE_KAFKA_MIN_INSYNC_REPLICAS (${minInsyncReplicas}) cannot exceed LOGPIPE_KAFKA_REPLICATION_FACTOR (${replicationFactor}): no write would ever be acknowledged`,
    );
  }
  return {
    brokers: brokersEnv
      ? parseBrokers(brokersEnv)
      : (cluster ? [ports.kafka, ports.kafka2, ports.kafka3] : [ports.kafka])
        .map((p) => `${LOCAL_HOST}:${p}`),
    external: brokersEnv !== undefined,
    replicationFactor,
    minInsyncReplicas,
    ...parseKafkaSecurity(get),
    topic: parseName("LOGPIPE_TOPIC", get("LOGPIPE_TOPIC") ?? "LogEvents"),
    partitions: parseIntSetting(
      "LOGPIPE_TOPIC_PARTITIONS",
      get("LOGPIPE_TOPIC_PARTITIONS"),
      6,
      1,
      1000,
    ),
    clientId: "logpipe",
    consumerGroup: parseName(
      "LOGPIPE_CONSUMER_GROUP",
      get("LOGPIPE_CONSUMER_GROUP") ?? "logpipe-hdfs-sink",
    ),
  };
}

/** LOGPIPE_WEBHDFS_*, LOGPIPE_HDFS_*: the NameNode(s) and the zones' folders. */
function hdfsSettings(get: SettingReader, ports: Ports): HdfsConfig {
  const webhdfsEnv = get("LOGPIPE_WEBHDFS_URL");
  const webhdfsUrls = webhdfsEnv
    ? parseWebHdfsUrls(webhdfsEnv)
    : [`http://${LOCAL_HOST}:${ports.namenodeHttp}`];
  const webhdfsUrl = webhdfsUrls[0];
  const webhdfsCa = get("LOGPIPE_WEBHDFS_CA");
  const hdfsRoot = parseHdfsPath(
    "LOGPIPE_HDFS_ROOT",
    get("LOGPIPE_HDFS_ROOT") ?? "/logpipe",
  );
  return {
    webhdfsUrl,
    webhdfsUrls,
    caFile: webhdfsCa === undefined
      ? undefined
      : parseFileSetting("LOGPIPE_WEBHDFS_CA", webhdfsCa),
    external: webhdfsEnv !== undefined,
    user: parseName("LOGPIPE_HDFS_USER", get("LOGPIPE_HDFS_USER") ?? "logpipe"),
    root: hdfsRoot,
    rawDir: `${hdfsRoot}/raw`,
    deadLetterDir: `${hdfsRoot}/dead_letter`,
    exportsDir: `${hdfsRoot}/exports`,
  };
}

/**
 * LOGPIPE_DATABASE_URL, or the local cluster's URL with the password kept
 * in the state folder.
 */
function databaseUrl(
  dbEnv: string | undefined,
  localDir: string,
  ports: Ports,
): URL {
  if (dbEnv) {
    const dbUrl = parseUrlSetting("LOGPIPE_DATABASE_URL", dbEnv, [
      "postgres:",
      "postgresql:",
    ]);
    if (!dbUrl.pathname || dbUrl.pathname === "/") {
      throw new ConfigError(
        `LOGPIPE_DATABASE_URL names no database: "${redactUrl(dbEnv)}"`,
      );
    }
    return dbUrl;
  }
  // The local cluster's password is generated on first start and kept in
  // the git-ignored state folder, so no secret ever sits in the repo.
  const password = readSecretFile(`${localDir}/postgres/logpipe.password`) ??
    "";
  const dbUrl = new URL(
    `postgres://logpipe@${LOCAL_HOST}:${ports.postgres}/logpipe`,
  );
  dbUrl.password = password;
  return dbUrl;
}

/** LOGPIPE_DATABASE_URL, LOGPIPE_POSTGRES_*, LOGPIPE_BI_*. */
function postgresSettings(
  get: SettingReader,
  localDir: string,
  ports: Ports,
): PostgresConfig {
  const dbEnv = get("LOGPIPE_DATABASE_URL");
  const dbUrl = databaseUrl(dbEnv, localDir, ports);
  const ssl = applyPostgresSsl(
    dbUrl,
    get("LOGPIPE_POSTGRES_SSLMODE"),
    get("LOGPIPE_POSTGRES_SSLROOTCERT"),
  );
  return {
    ...ssl,
    url: dbUrl.toString(),
    external: dbEnv !== undefined,
    host: dbUrl.hostname,
    port: dbUrl.port ? Number(dbUrl.port) : 5432,
    database: decodeURIComponent(dbUrl.pathname.slice(1)),
    user: decodeURIComponent(dbUrl.username),
    biUser: parseName(
      "LOGPIPE_BI_USER",
      get("LOGPIPE_BI_USER") ?? "logpipe_bi",
    ),
    biPassword: get("LOGPIPE_BI_PASSWORD") ??
      readSecretFile(`${localDir}/postgres/bi.password`),
    biPii: parseChoice(
      "LOGPIPE_BI_PII",
      get("LOGPIPE_BI_PII") ?? "masked",
      [
        "masked",
        "full",
      ] as const,
    ),
    biStatementTimeoutS: parseIntSetting(
      "LOGPIPE_BI_STATEMENT_TIMEOUT_S",
      get("LOGPIPE_BI_STATEMENT_TIMEOUT_S"),
      120,
      1,
      86_400,
    ),
    biConnectionLimit: parseIntSetting(
      "LOGPIPE_BI_CONNECTION_LIMIT",
      get("LOGPIPE_BI_CONNECTION_LIMIT"),
      20,
      1,
      10_000,
    ),
    server: parsePostgresServer(
      get("LOGPIPE_POSTGRES_LISTEN"),
      get("LOGPIPE_POSTGRES_ALLOW"),
      get("LOGPIPE_POSTGRES_TLS"),
    ),
  };
}

/** LOGPIPE_API_*: where the API listens and who may call it. */
function apiSettings(get: SettingReader, ports: Ports): ApiConfig {
  const apiHost = get("LOGPIPE_API_HOST") ?? LOCAL_HOST;
  if (!/^[A-Za-z0-9.:\-\[\]]+$/.test(apiHost)) {
    throw new ConfigError(`LOGPIPE_API_HOST is not a host: "${apiHost}"`);
  }
  const api = {
    host: apiHost,
    port: parseIntSetting(
      "LOGPIPE_API_PORT",
      get("LOGPIPE_API_PORT"),
      ports.api,
      1,
      65535,
    ),
    token: get("LOGPIPE_API_TOKEN"),
    allowedHosts: parseAllowedHosts(get("LOGPIPE_API_ALLOWED_HOSTS") ?? ""),
  };
  if (api.token !== undefined && api.token.length < MIN_API_TOKEN_LENGTH) {
    // The value itself is never echoed.
    throw new ConfigError(
      `LOGPIPE_API_TOKEN must be at least ${MIN_API_TOKEN_LENGTH} characters (it has ${api.token.length}); e.g. openssl rand -hex 32`,
    );
  }
  return api;
}

/** LOGPIPE_SLACK_WEBHOOK_URL, LOGPIPE_SMTP_URL, LOGPIPE_EMAIL_*. */
function notifySettings(get: SettingReader): NotifyConfig {
  const slack = get("LOGPIPE_SLACK_WEBHOOK_URL");
  const smtp = get("LOGPIPE_SMTP_URL");
  const notify: NotifyConfig = {
    slackWebhookUrl: slack
      ? parseUrlSetting("LOGPIPE_SLACK_WEBHOOK_URL", slack, ["http:", "https:"])
        .toString()
      : undefined,
    smtpUrl: smtp
      ? parseUrlSetting("LOGPIPE_SMTP_URL", smtp, ["smtp:", "smtps:"])
        .toString()
      : undefined,
    emailFrom: get("LOGPIPE_EMAIL_FROM") ?? "logpipe@localhost",
    emailTo: (get("LOGPIPE_EMAIL_TO") ?? "").split(",").map((s) => s.trim())
      .filter(Boolean),
  };
  for (const addr of [notify.emailFrom, ...notify.emailTo]) {
    if (!/^[^@\s]+@[^@\s]+$/.test(addr)) {
      throw new ConfigError(`not an e-mail address: "${addr}"`);
    }
  }
  return notify;
}

/** LOGPIPE_BATCH_LOOKBACK_HOURS, LOGPIPE_COMPACTION_GRACE_MINUTES, with the checked cron. */
function batchSettings(get: SettingReader, cron: string): Config["batch"] {
  return {
    cron,
    lookbackHours: parseIntSetting(
      "LOGPIPE_BATCH_LOOKBACK_HOURS",
      get("LOGPIPE_BATCH_LOOKBACK_HOURS"),
      3,
      0,
      24 * 366,
    ),
    compactionGraceMinutes: parseIntSetting(
      "LOGPIPE_COMPACTION_GRACE_MINUTES",
      get("LOGPIPE_COMPACTION_GRACE_MINUTES"),
      30,
      0,
      7 * 24 * 60,
    ),
  };
}

/**
 * Reads the configuration from `env` (default: the process environment plus
 * `.env`). Throws ConfigError with a one-line message on a malformed value
 * (the first one, in the order read below).
 */
export function loadConfig(
  env: Record<string, string | undefined> = {
    ...readDotEnv(PROJECT_ROOT),
    ...Deno.env.toObject(),
  },
): Config {
  const get: SettingReader = (k) => {
    const v = env[k];
    return v === undefined || v.trim() === "" ? undefined : v.trim();
  };
  const projectRoot = PROJECT_ROOT;
  const localDir = get("LOGPIPE_HOME") ?? `${projectRoot}/.local`;
  const offset = parseIntSetting(
    "LOGPIPE_PORT_OFFSET",
    get("LOGPIPE_PORT_OFFSET"),
    0,
    0,
    10_000,
  );
  const ports = Object.fromEntries(
    Object.entries(DEFAULT_PORTS).map(([k, v]) => [k, v + offset]),
  ) as Ports;
  const cluster = parseCluster(get("LOGPIPE_CLUSTER"), localDir);
  const kafka = kafkaSettings(get, ports, cluster);
  const hdfs = hdfsSettings(get, ports);
  const postgres = postgresSettings(get, localDir, ports);
  const api = apiSettings(get, ports);

  const cron = get("LOGPIPE_BATCH_CRON") ?? "*/10 * * * *";
  if (cron.split(/\s+/).length !== 5) {
    throw new ConfigError(
      `LOGPIPE_BATCH_CRON must have 5 fields (minute hour day month weekday), got "${cron}"`,
    );
  }
  const notify = notifySettings(get);

  const logLevel = get("LOGPIPE_LOG_LEVEL") ?? "info";
  if (!["debug", "info", "warn", "error"].includes(logLevel)) {
    throw new ConfigError(
      `LOGPIPE_LOG_LEVEL must be debug, info, warn or error, got "${logLevel}"`,
    );
  }

  const skew = get("LOGPIPE_MAX_FUTURE_SKEW");
  const validation: ValidationConfig = {
    // = DEFAULT_MAX_FUTURE_SKEW_MS of events/schema.ts, where the choice is
    // argued (config.ts imports nothing; config_test.ts keeps them equal).
    maxFutureSkewMs: skew === undefined
      ? 15 * 60_000
      : parseDurationSetting("LOGPIPE_MAX_FUTURE_SKEW", skew, 7 * 86_400_000),
  };

  return {
    ports,
    cluster,
    projectRoot,
    localDir,
    kafka,
    hdfs,
    postgres,
    api,
    batch: batchSettings(get, cron),
    site: {
      publish: parseChoice(
        "LOGPIPE_SITE_PUBLISH",
        get("LOGPIPE_SITE_PUBLISH") ?? "true",
        ["true", "false"],
      ) === "true",
    },
    validation,
    notify,
    logLevel: logLevel as Config["logLevel"],
  };
}
