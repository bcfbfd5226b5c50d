/**
 * The one place that reads the environment. Every knob is declared once, below: its name is its
 * environment variable, and its declaration carries the doc, the type with its bounds and the
 * default. `AppConfig` is derived from the declarations, `.env.example` and the README's
 * configuration table are generated from them (`npm run gen:config`), and a test drives every knob.
 * A bad value stops start-up with a message naming the variable and what it accepts.
 */
import fs from 'node:fs';
import convict from 'convict';
import { connectionOptions } from './db/url.js';
import { parseCidrs } from './net/addresses.js';

export const DEV_SECRET_KEY = 'dev-only-insecure-secret-change-me';
const MIN_PRODUCTION_SECRET_BYTES = 32;
const MIN_PRODUCTION_SECRET_DISTINCT = 16;

/** What a knob accepts; drives validation, the generated docs and the configuration test. */
export type KnobType =
  | { kind: 'int'; min: number; max: number }
  | { kind: 'bool' }
  | { kind: 'enum'; values: readonly string[] }
  /** Any string; `nonEmpty` refuses '' and blanks. */
  | { kind: 'string'; nonEmpty: boolean }
  | { kind: 'postgres-url' }
  /** Comma-separated IP addresses or CIDR blocks; may be empty. */
  | { kind: 'cidrs' };

export interface Knob<T> {
  doc: string;
  type: KnobType;
  default: T;
  /** Never printed (not in errors, not in logs). */
  sensitive: boolean;
}

const int = (doc: string, def: number, min: number, max = Number.MAX_SAFE_INTEGER): Knob<number> => ({
  doc,
  type: { kind: 'int', min, max },
  default: def,
  sensitive: false,
});
const bool = (doc: string, def: boolean): Knob<boolean> => ({
  doc,
  type: { kind: 'bool' },
  default: def,
  sensitive: false,
});
const oneOf = <const V extends readonly string[]>(
  doc: string,
  values: V,
  def: V[number],
): Knob<V[number]> => ({
  doc,
  type: { kind: 'enum', values },
  default: def,
  sensitive: false,
});
const str = (
  doc: string,
  def: string,
  options: { nonEmpty?: boolean; sensitive?: boolean } = {},
): Knob<string> => ({
  doc,
  type: { kind: 'string', nonEmpty: options.nonEmpty ?? true },
  default: def,
  sensitive: options.sensitive ?? false,
});

export const CONFIG_SCHEMA = {
  NODE_ENV: oneOf(
    '`production` refuses the development SECRET_KEY (or one containing it), one of fewer than 32 bytes or 16 distinct characters, BCRYPT_ROUNDS below 10 and DB_ECHO=true',
    ['development', 'production', 'test'],
    'development',
  ),
  GRPC_HOST: str(
    'Address the gRPC server listens on (set 0.0.0.0 in a container; in production a non-loopback address needs TLS or GRPC_ALLOW_PLAINTEXT)',
    '127.0.0.1',
  ),
  GRPC_PORT: int('Port the gRPC server listens on (0: a free port)', 50051, 0, 65535),
  GRPC_TLS_CERT_FILE: str(
    'PEM certificate chain of the gRPC port: with GRPC_TLS_KEY_FILE the port speaks TLS only (reloaded on SIGHUP)',
    '',
    {
      nonEmpty: false,
    },
  ),
  GRPC_TLS_KEY_FILE: str('PEM private key of GRPC_TLS_CERT_FILE', '', { nonEmpty: false }),
  GRPC_TLS_CLIENT_CA_FILE: str(
    'PEM CA whose client certificates are verified (mutual TLS); a verified certificate of a service account authenticates it',
    '',
    { nonEmpty: false },
  ),
  GRPC_TLS_CLIENT_AUTH: oneOf(
    'With GRPC_TLS_CLIENT_CA_FILE: `optional` accepts a connection without a client certificate (end users; callers then need a token); `require` refuses it (a port only services reach)',
    ['require', 'optional'],
    'optional',
  ),
  GRPC_ALLOW_PLAINTEXT: bool(
    'Allow plaintext on a non-loopback GRPC_HOST in production (behind a mesh sidecar that terminates TLS)',
    false,
  ),
  TRUSTED_PROXIES: {
    doc: 'Proxies whose `x-forwarded-for` is believed (IPs or CIDRs, or `none`): a call from one comes from the right-most untrusted address in it. In production required unless plaintext on loopback',
    type: { kind: 'cidrs' },
    default: '',
    sensitive: false,
  } satisfies Knob<string> as Knob<string>,
  THROTTLE_IPV6_PREFIX: int(
    'IPv6 clients count as their network of this many bits for every per-address limit (throttling, the hashing queue): one subscriber usually holds a whole /64; IPv4 counts by address',
    64,
    48,
    128,
  ),
  GRPC_MAX_RECEIVE_BYTES: int(
    'Largest request message accepted; larger ones get RESOURCE_EXHAUSTED',
    64 * 1024,
    1024,
    16 * 1024 * 1024,
  ),
  GRPC_KEEPALIVE_TIME_MS: int(
    "How often the server pings each connection (HTTP/2 PING) to find dead peers and keep idle ones open through NATs and L4 balancers (2 h: gRPC's server default; 0: never)",
    7_200_000,
    0,
    86_400_000,
  ),
  GRPC_KEEPALIVE_TIMEOUT_MS: int(
    'How long a keepalive ping may go unanswered before the server closes the connection',
    20_000,
    1,
    600_000,
  ),
  GRPC_MAX_CONNECTION_AGE_MS: int(
    'Close each connection gracefully (GOAWAY) after about this long (±10 %), so clients that balance per connection reach instances added since; 0: never (an L7 balancer needs none)',
    0,
    0,
    86_400_000,
  ),
  GRPC_MAX_CONNECTION_AGE_GRACE_MS: int(
    'After that GOAWAY, how long calls still in flight on the old connection may take before it is closed',
    30_000,
    1,
    3_600_000,
  ),
  GRPC_MAX_CONCURRENT_STREAMS: int(
    'Calls (HTTP/2 streams) in flight on one connection; the client queues the rest until one ends',
    100,
    1,
    10_000,
  ),
  GRPC_MAX_CONNECTIONS: int(
    'Connections open at once on the gRPC port, per process (WORKERS: each); one beyond is closed as it arrives (the client sees UNAVAILABLE)',
    1000,
    1,
    1_000_000,
  ),
  HEALTH_MAX_WATCHERS: int(
    'Health Watch streams open at once, per process; one beyond gets RESOURCE_EXHAUSTED (Check is not limited)',
    1000,
    1,
    1_000_000,
  ),
  SHUTDOWN_GRACE_MS: int(
    'On SIGTERM/SIGINT, how long in-flight RPCs may take before they are cancelled',
    10_000,
    0,
    600_000,
  ),
  DATABASE_URL: {
    doc: "Empty: start an embedded PostgreSQL under DATA_DIR; else a `postgres://` URL, with libpq's `sslmode` (default `prefer`), `sslrootcert`, `sslcert` and `sslkey` (see Encrypted database connections)",
    type: { kind: 'postgres-url' },
    default: '',
    sensitive: true,
  } satisfies Knob<string> as Knob<string>,
  DATA_DIR: str("The embedded PostgreSQL's files (kept across restarts)", './.data'),
  EMBEDDED_PG_PORT: int("The embedded PostgreSQL's port on 127.0.0.1 (0: a free port)", 0, 0, 65535),
  DB_ECHO: bool('Log every SQL statement (debugging only); otherwise no SQL reaches the logs', false),
  DB_SYNC: bool(
    'Apply pending schema migrations at start (one transaction under an advisory lock: instances may start together); false: refuse to start while any is pending (`npm run migrate` applies them)',
    true,
  ),
  DB_POOL_MAX: int('Most connections in the pool', 30, 1, 1000),
  DB_POOL_MIN: int('Connections the pool keeps open when idle (at most DB_POOL_MAX)', 2, 0, 1000),
  DB_POOL_ACQUIRE_MS: int(
    'How long a call waits for a pooled connection before it gets RESOURCE_EXHAUSTED',
    30_000,
    1,
    600_000,
  ),
  DB_POOL_IDLE_MS: int('Idle time before a connection above DB_POOL_MIN is closed', 10_000, 1, 86_400_000),
  DB_POOL_EVICT_MS: int('How often idle connections are checked for eviction', 1_000, 1, 86_400_000),
  DB_POOL_RECYCLE_S: int(
    "Connections older than this are closed instead of reused (the pool's validate also drops broken ones)",
    3_600,
    1,
    604_800,
  ),
  DB_CONNECT_TIMEOUT_MS: int('How long opening one database connection may take', 5_000, 1, 600_000),
  DB_STATEMENT_TIMEOUT_MS: int(
    'Longest a single SQL statement may run (0: no limit); sent as the startup parameter `statement_timeout`, which PgBouncer refuses (see PgBouncer)',
    15_000,
    0,
    3_600_000,
  ),
  DB_PREPARED_STATEMENTS: bool(
    'Run hot-path lookups as named prepared statements (faster); false behind PgBouncer in transaction pooling mode (before 1.21, or without max_prepared_statements), which loses them',
    true,
  ),
  SECRET_KEY: str(
    'JWT signing key (HS256) and the root of the page-token key; at least 32 bytes in production (`openssl rand -base64 48`)',
    DEV_SECRET_KEY,
    { sensitive: true },
  ),
  JWT_ISSUER: str('`iss` claim of access tokens', 'connectsphere-auth'),
  JWT_AUDIENCE: str('`aud` claim of access tokens', 'connectsphere'),
  JWT_ALGORITHM: oneOf(
    'Signature of access tokens: HS256 (with SECRET_KEY) or ES256/EdDSA (with JWT_PRIVATE_KEY_FILE; other services can verify them with the JWK Set)',
    ['HS256', 'ES256', 'EdDSA'],
    'HS256',
  ),
  JWT_PRIVATE_KEY_FILE: str(
    'PEM private key (P-256 for ES256, Ed25519 for EdDSA) signing access tokens',
    '',
    {
      nonEmpty: false,
      sensitive: false,
    },
  ),
  JWT_PREVIOUS_PUBLIC_KEY_FILES: str(
    'Comma-separated `<PEM public key file>@<retirement time, ISO 8601 with zone>`: keys still verifying the tokens they signed before retirement, during a rotation (served in the JWK Set)',
    '',
    { nonEmpty: false },
  ),
  ACCESS_TOKEN_EXPIRE_MINUTES: int('Access-token lifetime in minutes', 30, 1, 1440),
  SERVICE_TOKEN_EXPIRE_MINUTES: int(
    'Service-account access-token lifetime in minutes (no refresh token)',
    15,
    1,
    1440,
  ),
  SERVICE_SECRET_OVERLAP_S: int(
    'After `service-account rotate`, how long the previous client secret keeps working',
    3_600,
    0,
    30 * 86_400,
  ),
  INTROSPECTION_AUTH: oneOf(
    'ValidateToken: `none` answers anyone; `required` needs a service identity with scope tokens.introspect; `auto`: required in production, none otherwise',
    ['auto', 'none', 'required'],
    'auto',
  ),
  REFRESH_TOKEN_EXPIRE_DAYS: int('Refresh-token lifetime in days', 14, 1, 365),
  REFRESH_REUSE_GRACE_SECONDS: int(
    'A refresh token presented again this soon after its rotation gets a new pair instead of ending the session (0: strict)',
    0,
    0,
    300,
  ),
  SESSION_MAX_LIFETIME_S: int(
    'A login session older than this cannot be refreshed, however often it rotated (default 30 days)',
    30 * 86_400,
    10,
    365 * 86_400,
  ),
  BCRYPT_ROUNDS: int(
    'bcrypt cost (12 ≈ 230 ms of one core per hash on a small machine); at least 10 in production',
    12,
    4,
    15,
  ),
  HASH_CONCURRENCY: int('bcrypt operations run at once on the libuv pool (0: one per CPU core)', 0, 0, 64),
  HASH_NICE: int(
    'Nice value of the hashing threads (Linux): higher lets other RPCs win the CPU during a login flood; 0: unchanged',
    19,
    0,
    19,
  ),
  HASH_QUEUE_MAX: int(
    'Register/Login/ChangePassword calls that may wait for a hashing slot; more get RESOURCE_EXHAUSTED',
    128,
    0,
    100_000,
  ),
  HASH_QUEUE_PER_SOURCE: int(
    'Hashing places (running or waiting) one client address may hold; past that its own calls get RESOURCE_EXHAUSTED while other addresses still get in',
    16,
    1,
    100_000,
  ),
  LOGIN_MAX_FAILURES: int(
    'Failed logins for one account from one client address (and wrong current passwords for one user) before further attempts are refused for a while',
    5,
    1,
    1000,
  ),
  LOGIN_SOURCE_MAX_FAILURES: int(
    'Failed logins from one client address, whatever the accounts (password spraying), before that address is refused for a while',
    20,
    1,
    100_000,
  ),
  LOGIN_ACCOUNT_MAX_FAILURES: int(
    'Failed logins for one account from all addresses together before it is refused for everyone for a while',
    100,
    1,
    1_000_000,
  ),
  REGISTER_SOURCE_MAX_FAILURES: int(
    'Failed registrations (address taken, password refused) from one client source before its Registers are refused for a while (same window and lockout as logins); counted before any hashing, a success gives its attempt back',
    20,
    1,
    100_000,
  ),
  LOGIN_LOCKOUT_BASE_S: int(
    'First refusal period once a limit is reached; doubles with every further failure',
    30,
    1,
    86_400,
  ),
  LOGIN_LOCKOUT_MAX_S: int('Longest refusal period', 3_600, 1, 604_800),
  LOGIN_FAILURE_WINDOW_S: int(
    'A failure older than this no longer counts towards the limits',
    900,
    1,
    604_800,
  ),
  DB_HEALTH_INTERVAL_MS: int(
    'How often the database is pinged for the health service (NOT_SERVING while it fails; 0: never)',
    1_000,
    0,
    600_000,
  ),
  PRUNE_AFTER_DAYS: int(
    'Sessions and refresh tokens that expired or ended more than this many days ago are deleted by the housekeeping job',
    7,
    1,
    3650,
  ),
  PRUNE_INTERVAL_S: int('How often the housekeeping job runs (0: never)', 3_600, 0, 604_800),
  AUDIT_RETENTION_DAYS: int(
    'Audit events older than this many days are deleted by the housekeeping job (never those younger than the floor in the audit_settings table, 30 days unless a superuser changes it)',
    365,
    1,
    36_500,
  ),
  CACHE: oneOf(
    'The in-process read cache of sessions and users (see Caching): `on` answers repeated lookups without the database, evicted by PostgreSQL notices; `off`: every call asks PostgreSQL',
    ['on', 'off'],
    'on',
  ),
  CACHE_MAX_ENTRIES: int(
    'Entries the read cache holds per process at most (least recently used out); a cached session takes about 1.3 KB, a user two entries of about 0.6 KB each (100000 entries: roughly 60–130 MB per process)',
    100_000,
    1,
    10_000_000,
  ),
  CACHE_TTL_MS: int('The oldest a cached entry may be, whatever the notices say', 5_000, 1, 3_600_000),
  CACHE_LISTEN_URL: {
    doc: 'Where the cache listens for invalidation notices (LISTEN needs a session of its own: behind PgBouncer in transaction pooling mode, the PostgreSQL server itself); empty: DATABASE_URL',
    type: { kind: 'postgres-url' },
    default: '',
    sensitive: true,
  } satisfies Knob<string> as Knob<string>,
  CACHE_LISTEN_PING_MS: int(
    'How often the listening connection is pinged; one unanswered for this long counts as lost (the cache is bypassed and emptied until it listens again)',
    2_000,
    100,
    60_000,
  ),
  STATS_LOG_INTERVAL_S: int('Log memory, pool and hashing figures this often (0: never)', 0, 0, 86_400),
  OPS_PORT: int(
    'HTTP port for /metrics (Prometheus), /healthz, /readyz and /.well-known/jwks.json (0: off, and no metrics are collected)',
    9464,
    0,
    65535,
  ),
  OPS_HOST: str(
    'Address the operations port listens on (0.0.0.0 for a scraper on another host)',
    '127.0.0.1',
  ),
  WORKERS: int('Server processes sharing the port (Node cluster); 0: one per CPU core', 1, 0, 64),
  LOG_LEVEL: oneOf(
    'Structured JSON log level (one line per RPC at `info`)',
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
    'info',
  ),
} as const satisfies Record<string, Knob<unknown>>;

type Schema = typeof CONFIG_SCHEMA;
export type ConfigKey = keyof Schema;
/** The whole configuration, one property per environment variable. */
export type AppConfig = { readonly [K in ConfigKey]: Schema[K] extends Knob<infer T> ? T : never };

type Env = Record<string, string | undefined>;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Loads `.env` from the working directory into process.env when present (real env vars win). */
export function loadDotEnv(file = '.env'): void {
  if (fs.existsSync(file)) process.loadEnvFile(file);
}

// ---- convict formats, one per knob type (convict coerces env strings by format) ----

const formatName = (t: KnobType): string | readonly string[] => {
  switch (t.kind) {
    case 'int': {
      const name = `int[${t.min},${t.max}]`;
      convict.addFormat({
        name,
        coerce: (v: unknown) => (typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v.trim()) : v),
        validate: (v: unknown) => {
          if (typeof v !== 'number' || !Number.isInteger(v) || v < t.min || v > t.max) {
            const range = t.max === Number.MAX_SAFE_INTEGER ? `>= ${t.min}` : `from ${t.min} to ${t.max}`;
            throw new Error(`must be an integer ${range}`);
          }
        },
      });
      return name;
    }
    case 'bool':
      return 'strict-boolean';
    case 'enum':
      return t.values;
    case 'string':
      return t.nonEmpty ? 'non-empty-string' : 'any-string';
    case 'postgres-url':
      return 'postgres-url';
    case 'cidrs':
      return 'cidrs';
  }
};

convict.addFormat({
  name: 'cidrs',
  // `none`: no proxies, said explicitly (production needs TRUSTED_PROXIES set; see crossChecks)
  coerce: (v: unknown) => (typeof v === 'string' && v.trim().toLowerCase() === 'none' ? '' : v),
  validate: (v: unknown) => {
    if (typeof v !== 'string') throw new Error('must be a string');
    parseCidrs(v);
  },
});

convict.addFormat({
  name: 'strict-boolean',
  coerce: (v: unknown) => {
    const s = String(v).trim().toLowerCase();
    if (s === 'true' || s === '1') return true;
    if (s === 'false' || s === '0') return false;
    return v;
  },
  validate: (v: unknown) => {
    if (typeof v !== 'boolean') throw new Error('must be true or false');
  },
});

convict.addFormat({
  name: 'non-empty-string',
  validate: (v: unknown) => {
    if (typeof v !== 'string' || v.trim() === '') throw new Error('must be a non-empty string');
  },
});

convict.addFormat({
  name: 'any-string',
  validate: (v: unknown) => {
    if (typeof v !== 'string') throw new Error('must be a string');
  },
});

convict.addFormat({
  name: 'postgres-url',
  validate: (v: unknown) => {
    if (typeof v !== 'string') throw new Error('must be a string');
    if (v === '') return;
    let url: URL;
    try {
      url = new URL(v);
    } catch {
      throw new Error(
        'must be empty (embedded PostgreSQL) or a postgres://user:password@host:port/database URL',
      );
    }
    if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
      throw new Error('must be empty (embedded PostgreSQL) or a postgres:// or postgresql:// URL');
    }
    connectionOptions(v); // the TLS parameters (sslmode, ...): its message names the parameter, not the URL
  },
});

const convictSchema = Object.fromEntries(
  Object.entries(CONFIG_SCHEMA).map(([key, knob]) => {
    const k = knob as Knob<unknown>;
    return [
      key,
      { doc: k.doc, format: formatName(k.type), default: k.default, env: key, sensitive: k.sensitive },
    ];
  }),
);

/** A host name or address that only this machine can reach. */
export const isLoopback = (host: string): boolean =>
  host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);

/** INTROSPECTION_AUTH=auto: required in production, none otherwise. */
export const introspectionRequired = (c: Pick<AppConfig, 'INTROSPECTION_AUTH' | 'NODE_ENV'>): boolean =>
  c.INTROSPECTION_AUTH === 'required' || (c.INTROSPECTION_AUTH === 'auto' && c.NODE_ENV === 'production');

/**
 * In production, a gRPC port other than plaintext on loopback may sit behind a proxy, where every
 * caller would be one address: TRUSTED_PROXIES must be said (its proxies, or `none`). `raw` is the
 * variable as given: undefined when unset, which the default '' cannot tell from an empty value.
 */
function trustedProxiesProblem(c: AppConfig, raw: string | undefined): string | null {
  if (c.NODE_ENV !== 'production' || (!c.GRPC_TLS_CERT_FILE && isLoopback(c.GRPC_HOST))) return null;
  const why =
    'in production a port that is not plaintext on loopback may be behind a proxy, and then every caller is one address (one caller’s failed Logins lock everyone’s)';
  const fix =
    "set it to the proxies' addresses (comma-separated IPs or CIDRs), or `none` when no proxy is in front";
  if (raw === undefined) return `TRUSTED_PROXIES: must be set: ${why}; ${fix}`;
  if (raw.trim() === '') return `TRUSTED_PROXIES: is empty: ${why}; ${fix}`;
  return null;
}

/** What production starts with but an operator should hear about (logged as warnings at start). */
export function productionWarnings(c: Pick<AppConfig, 'NODE_ENV' | 'INTROSPECTION_AUTH'>): string[] {
  if (c.NODE_ENV !== 'production') return [];
  const warnings: string[] = [];
  if (c.INTROSPECTION_AUTH === 'none') {
    warnings.push(
      'INTROSPECTION_AUTH=none in production: ValidateToken answers anyone, who can then test stolen or guessed tokens; use `required` (the default) unless only trusted callers reach the port',
    );
  }
  return warnings;
}

/** Rules across knobs, or that depend on NODE_ENV; each returns a message naming the variable. */
function crossChecks(c: AppConfig): string[] {
  const problems: string[] = [];
  if (c.DB_POOL_MIN > c.DB_POOL_MAX) {
    problems.push(
      `DB_POOL_MIN: must not exceed DB_POOL_MAX (${c.DB_POOL_MAX}): value was "${c.DB_POOL_MIN}"`,
    );
  }
  if (Boolean(c.GRPC_TLS_CERT_FILE) !== Boolean(c.GRPC_TLS_KEY_FILE)) {
    problems.push('GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE: set both (TLS) or neither (plaintext)');
  }
  if (c.GRPC_TLS_CLIENT_CA_FILE && !c.GRPC_TLS_CERT_FILE) {
    problems.push(
      'GRPC_TLS_CLIENT_CA_FILE: needs GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE (mutual TLS is TLS first)',
    );
  }
  if (c.JWT_ALGORITHM !== 'HS256' && !c.JWT_PRIVATE_KEY_FILE) {
    problems.push(`JWT_PRIVATE_KEY_FILE: required with JWT_ALGORITHM=${c.JWT_ALGORITHM} (a PEM private key)`);
  }
  if (
    c.NODE_ENV === 'production' &&
    !c.GRPC_TLS_CERT_FILE &&
    !c.GRPC_ALLOW_PLAINTEXT &&
    !isLoopback(c.GRPC_HOST)
  ) {
    problems.push(
      `GRPC_HOST: ${c.GRPC_HOST} is reachable from other machines and the port would be plaintext in production; ` +
        'set GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE, or GRPC_ALLOW_PLAINTEXT=true behind a mesh sidecar that terminates TLS',
    );
  }
  if (c.OPS_PORT !== 0 && c.OPS_PORT === c.GRPC_PORT)
    problems.push(`OPS_PORT: must differ from GRPC_PORT (${c.GRPC_PORT}); 0 turns the operations port off`);
  if (c.NODE_ENV === 'production') {
    const generate = `use at least ${MIN_PRODUCTION_SECRET_BYTES} random bytes, e.g. \`openssl rand -base64 48\``;
    if (c.SECRET_KEY.includes(DEV_SECRET_KEY)) {
      problems.push(
        `SECRET_KEY: must be set in production (the built-in development key is public); ${generate}`,
      );
    } else if (Buffer.byteLength(c.SECRET_KEY, 'utf8') < MIN_PRODUCTION_SECRET_BYTES) {
      problems.push(
        `SECRET_KEY: must be at least ${MIN_PRODUCTION_SECRET_BYTES} bytes in production; ${generate}`,
      );
    } else if (new Set(c.SECRET_KEY).size < MIN_PRODUCTION_SECRET_DISTINCT) {
      problems.push(
        `SECRET_KEY: must have at least ${MIN_PRODUCTION_SECRET_DISTINCT} distinct characters in production (it looks made by hand); ${generate}`,
      );
    }
    if (c.BCRYPT_ROUNDS < 10)
      problems.push(`BCRYPT_ROUNDS: must be at least 10 in production: value was "${c.BCRYPT_ROUNDS}"`);
    if (c.DB_ECHO) problems.push('DB_ECHO: must be false in production (it logs every SQL statement)');
  }
  return problems;
}

/** Reads and validates the configuration; throws ConfigError listing every bad variable. */
export function loadConfig(env: Env = process.env): AppConfig {
  // `args: []`: never parse process.argv (test runners and CLIs have their own flags).
  const conf = convict(convictSchema, { env, args: [] });
  try {
    conf.validate({ allowed: 'strict' });
  } catch (err) {
    throw new ConfigError(`invalid configuration:\n${(err as Error).message}`);
  }
  const config = Object.freeze(conf.getProperties()) as AppConfig;
  const problems = crossChecks(config);
  const proxies = trustedProxiesProblem(config, env.TRUSTED_PROXIES);
  if (proxies) problems.push(proxies);
  if (problems.length) throw new ConfigError(`invalid configuration:\n${problems.join('\n')}`);
  return config;
}
