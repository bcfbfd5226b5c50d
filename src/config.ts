/**
 * The one place that reads the environment. Every knob is a convict key named exactly like its
 * environment variable, with a doc, a format and a default; `.env.example` lists the same keys.
 * A bad value stops start-up with a message naming the variable and what it accepts.
 */
import fs from 'node:fs';
import os from 'node:os';
import convict from 'convict';

export const DEV_SECRET_KEY = 'dev-only-insecure-secret-change-me';
const MIN_PRODUCTION_SECRET_BYTES = 32;

/** Registers an integer format with bounds and returns its name (convict coerces env strings by format). */
function int(min: number, max = Number.MAX_SAFE_INTEGER): string {
  const name = `int[${min},${max}]`;
  convict.addFormat({
    name,
    coerce: (v: unknown) => (typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v.trim()) : v),
    validate: (v: unknown) => {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
        const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`;
        throw new Error(`must be an integer ${range}`);
      }
    },
  });
  return name;
}

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
  },
});

convict.addFormat({
  name: 'non-empty-string',
  validate: (v: unknown) => {
    if (typeof v !== 'string' || v.trim() === '') throw new Error('must be a non-empty string');
  },
});

const schema = {
  NODE_ENV: {
    doc: '`production` refuses a missing, default or short SECRET_KEY',
    format: ['development', 'production', 'test'],
    default: 'development',
    env: 'NODE_ENV',
  },
  GRPC_HOST: {
    doc: 'Address the gRPC server listens on',
    format: 'non-empty-string',
    default: '0.0.0.0',
    env: 'GRPC_HOST',
  },
  GRPC_PORT: {
    doc: 'Port the gRPC server listens on (0: a free port)',
    format: int(0, 65535),
    default: 50051,
    env: 'GRPC_PORT',
  },
  GRPC_MAX_RECEIVE_BYTES: {
    doc: 'Largest request message accepted; larger ones get RESOURCE_EXHAUSTED',
    format: int(1024, 16 * 1024 * 1024),
    default: 64 * 1024,
    env: 'GRPC_MAX_RECEIVE_BYTES',
  },
  SHUTDOWN_GRACE_MS: {
    doc: 'On SIGTERM/SIGINT, how long in-flight RPCs may take before they are cancelled',
    format: int(0, 600_000),
    default: 10_000,
    env: 'SHUTDOWN_GRACE_MS',
  },
  DATABASE_URL: {
    doc: 'Empty: start an embedded PostgreSQL under DATA_DIR; else a postgres:// URL',
    format: 'postgres-url',
    default: '',
    env: 'DATABASE_URL',
    sensitive: true,
  },
  DATA_DIR: {
    doc: 'Where the embedded PostgreSQL keeps its files (kept across restarts)',
    format: 'non-empty-string',
    default: './.data',
    env: 'DATA_DIR',
  },
  EMBEDDED_PG_PORT: {
    doc: "The embedded PostgreSQL's port on 127.0.0.1 (0: a free port)",
    format: int(0, 65535),
    default: 0,
    env: 'EMBEDDED_PG_PORT',
  },
  DB_ECHO: {
    doc: 'Log every SQL statement (debugging only)',
    format: 'strict-boolean',
    default: false,
    env: 'DB_ECHO',
  },
  DB_SYNC: {
    doc: 'Create missing tables, columns (additive only) and indexes at server start',
    format: 'strict-boolean',
    default: true,
    env: 'DB_SYNC',
  },
  DB_POOL_MAX: { doc: 'Most connections in the pool', format: int(1, 1000), default: 30, env: 'DB_POOL_MAX' },
  DB_POOL_MIN: {
    doc: 'Connections the pool keeps open when idle',
    format: int(0, 1000),
    default: 2,
    env: 'DB_POOL_MIN',
  },
  DB_POOL_ACQUIRE_MS: {
    doc: 'How long a request waits for a pooled connection before it fails',
    format: int(1, 600_000),
    default: 30_000,
    env: 'DB_POOL_ACQUIRE_MS',
  },
  DB_POOL_IDLE_MS: {
    doc: 'Idle time before a connection above the minimum is closed',
    format: int(1, 86_400_000),
    default: 10_000,
    env: 'DB_POOL_IDLE_MS',
  },
  DB_POOL_EVICT_MS: {
    doc: 'How often idle connections are checked for eviction',
    format: int(1, 86_400_000),
    default: 1_000,
    env: 'DB_POOL_EVICT_MS',
  },
  DB_POOL_RECYCLE_S: {
    doc: 'Connections older than this are closed instead of reused',
    format: int(1, 604_800),
    default: 3_600,
    env: 'DB_POOL_RECYCLE_S',
  },
  DB_CONNECT_TIMEOUT_MS: {
    doc: 'How long opening one database connection may take',
    format: int(1, 600_000),
    default: 5_000,
    env: 'DB_CONNECT_TIMEOUT_MS',
  },
  DB_STATEMENT_TIMEOUT_MS: {
    doc: 'Longest a single SQL statement may run (0: no limit)',
    format: int(0, 3_600_000),
    default: 15_000,
    env: 'DB_STATEMENT_TIMEOUT_MS',
  },
  SECRET_KEY: {
    doc: 'JWT signing key (HS256); at least 32 bytes in production',
    format: 'non-empty-string',
    default: DEV_SECRET_KEY,
    env: 'SECRET_KEY',
    sensitive: true,
  },
  JWT_ISSUER: {
    doc: 'iss claim of access tokens',
    format: 'non-empty-string',
    default: 'connectsphere-auth',
    env: 'JWT_ISSUER',
  },
  JWT_AUDIENCE: {
    doc: 'aud claim of access tokens',
    format: 'non-empty-string',
    default: 'connectsphere',
    env: 'JWT_AUDIENCE',
  },
  ACCESS_TOKEN_EXPIRE_MINUTES: {
    doc: 'Access-token lifetime in minutes',
    format: int(1, 1440),
    default: 30,
    env: 'ACCESS_TOKEN_EXPIRE_MINUTES',
  },
  REFRESH_TOKEN_EXPIRE_DAYS: {
    doc: 'Refresh-token lifetime in days',
    format: int(1, 365),
    default: 14,
    env: 'REFRESH_TOKEN_EXPIRE_DAYS',
  },
  REFRESH_REUSE_GRACE_SECONDS: {
    doc: 'A refresh token presented again this soon after its rotation gets a new pair instead of ending the session (0: strict)',
    format: int(0, 300),
    default: 0,
    env: 'REFRESH_REUSE_GRACE_SECONDS',
  },
  BCRYPT_ROUNDS: { doc: 'bcrypt cost', format: int(4, 15), default: 12, env: 'BCRYPT_ROUNDS' },
  HASH_CONCURRENCY: {
    doc: 'bcrypt operations run at once on the libuv pool (0: one per CPU core)',
    format: int(0, 64),
    default: 0,
    env: 'HASH_CONCURRENCY',
  },
  HASH_NICE: {
    doc: 'Nice value of the hashing threads (Linux): higher lets other RPCs win the CPU during a login flood; 0: unchanged',
    format: int(0, 19),
    default: 19,
    env: 'HASH_NICE',
  },
  HASH_QUEUE_MAX: {
    doc: 'Register/Login/ChangePassword calls that may wait for a hashing slot; more get RESOURCE_EXHAUSTED',
    format: int(0, 100_000),
    default: 128,
    env: 'HASH_QUEUE_MAX',
  },
  LOGIN_MAX_FAILURES: {
    doc: 'Consecutive failed logins for one account before further attempts are refused for a while',
    format: int(1, 1000),
    default: 5,
    env: 'LOGIN_MAX_FAILURES',
  },
  LOGIN_LOCKOUT_BASE_S: {
    doc: 'First refusal period after LOGIN_MAX_FAILURES failures; doubles with every further failure',
    format: int(1, 86_400),
    default: 30,
    env: 'LOGIN_LOCKOUT_BASE_S',
  },
  LOGIN_LOCKOUT_MAX_S: {
    doc: 'Longest refusal period',
    format: int(1, 604_800),
    default: 3_600,
    env: 'LOGIN_LOCKOUT_MAX_S',
  },
  LOGIN_FAILURE_WINDOW_S: {
    doc: 'A failure older than this no longer counts towards LOGIN_MAX_FAILURES',
    format: int(1, 604_800),
    default: 900,
    env: 'LOGIN_FAILURE_WINDOW_S',
  },
  DB_HEALTH_INTERVAL_MS: {
    doc: 'How often the database is pinged for the health service (NOT_SERVING while it fails; 0: never)',
    format: int(0, 600_000),
    default: 1_000,
    env: 'DB_HEALTH_INTERVAL_MS',
  },
  STATS_LOG_INTERVAL_S: {
    doc: 'Log memory, pool and hashing figures this often (0: never)',
    format: int(0, 86_400),
    default: 0,
    env: 'STATS_LOG_INTERVAL_S',
  },
  WORKERS: {
    doc: 'Server processes sharing the port (Node cluster); 0: one per CPU core',
    format: int(0, 64),
    default: 1,
    env: 'WORKERS',
  },
  LOG_LEVEL: {
    doc: 'Structured JSON log level',
    format: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
    default: 'info',
    env: 'LOG_LEVEL',
  },
} as const;

type Env = Record<string, string | undefined>;

export interface PoolConfig {
  max: number;
  min: number;
  acquireMs: number;
  idleMs: number;
  evictMs: number;
  recycleS: number;
}

export interface AppConfig {
  env: 'development' | 'production' | 'test';
  grpc: { host: string; port: number; maxReceiveBytes: number };
  shutdownGraceMs: number;
  db: {
    url: string;
    dataDir: string;
    embeddedPort: number;
    echo: boolean;
    sync: boolean;
    pool: PoolConfig;
    connectTimeoutMs: number;
    statementTimeoutMs: number;
  };
  auth: {
    secretKey: string;
    issuer: string;
    audience: string;
    accessTokenTtlS: number;
    refreshTokenTtlS: number;
    refreshReuseGraceS: number;
    bcryptRounds: number;
    hashConcurrency: number;
    hashQueueMax: number;
    hashNice: number;
    login: { maxFailures: number; lockoutBaseS: number; lockoutMaxS: number; failureWindowS: number };
  };
  dbHealthIntervalMs: number;
  statsLogIntervalS: number;
  workers: number;
  logLevel: string;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Loads `.env` from the working directory into process.env when present (real env vars win). */
export function loadDotEnv(file = '.env'): void {
  if (fs.existsSync(file)) process.loadEnvFile(file);
}

/** Reads and validates the configuration; throws ConfigError listing every bad variable. */
export function loadConfig(env: Env = process.env): AppConfig {
  // `args: []`: never parse process.argv (test runners and CLIs have their own flags).
  const conf = convict(schema, { env, args: [] });
  try {
    conf.validate({ allowed: 'strict' });
  } catch (err) {
    throw new ConfigError(`invalid configuration:\n${(err as Error).message}`);
  }
  const get = <K extends keyof typeof schema>(key: K) => conf.get(key) as unknown;
  const num = (key: keyof typeof schema) => get(key) as number;
  const str = (key: keyof typeof schema) => get(key) as string;
  const bool = (key: keyof typeof schema) => get(key) as boolean;

  const nodeEnv = str('NODE_ENV') as AppConfig['env'];
  const secretKey = str('SECRET_KEY');
  if (nodeEnv === 'production') {
    if (secretKey === DEV_SECRET_KEY) {
      throw new ConfigError(
        'invalid configuration:\nSECRET_KEY: must be set in production (the built-in development key is public); ' +
          `use at least ${MIN_PRODUCTION_SECRET_BYTES} random bytes, e.g. \`openssl rand -base64 48\``,
      );
    }
    if (Buffer.byteLength(secretKey, 'utf8') < MIN_PRODUCTION_SECRET_BYTES) {
      throw new ConfigError(
        `invalid configuration:\nSECRET_KEY: must be at least ${MIN_PRODUCTION_SECRET_BYTES} bytes in production, ` +
          'e.g. `openssl rand -base64 48`',
      );
    }
  }
  const pool: PoolConfig = {
    max: num('DB_POOL_MAX'),
    min: num('DB_POOL_MIN'),
    acquireMs: num('DB_POOL_ACQUIRE_MS'),
    idleMs: num('DB_POOL_IDLE_MS'),
    evictMs: num('DB_POOL_EVICT_MS'),
    recycleS: num('DB_POOL_RECYCLE_S'),
  };
  if (pool.min > pool.max) {
    throw new ConfigError(
      `invalid configuration:\nDB_POOL_MIN: must not exceed DB_POOL_MAX (${pool.max}): value was "${pool.min}"`,
    );
  }
  return {
    env: nodeEnv,
    grpc: { host: str('GRPC_HOST'), port: num('GRPC_PORT'), maxReceiveBytes: num('GRPC_MAX_RECEIVE_BYTES') },
    shutdownGraceMs: num('SHUTDOWN_GRACE_MS'),
    db: {
      url: str('DATABASE_URL'),
      dataDir: str('DATA_DIR'),
      embeddedPort: num('EMBEDDED_PG_PORT'),
      echo: bool('DB_ECHO'),
      sync: bool('DB_SYNC'),
      pool,
      connectTimeoutMs: num('DB_CONNECT_TIMEOUT_MS'),
      statementTimeoutMs: num('DB_STATEMENT_TIMEOUT_MS'),
    },
    auth: {
      secretKey,
      issuer: str('JWT_ISSUER'),
      audience: str('JWT_AUDIENCE'),
      accessTokenTtlS: num('ACCESS_TOKEN_EXPIRE_MINUTES') * 60,
      refreshTokenTtlS: num('REFRESH_TOKEN_EXPIRE_DAYS') * 86_400,
      refreshReuseGraceS: num('REFRESH_REUSE_GRACE_SECONDS'),
      bcryptRounds: num('BCRYPT_ROUNDS'),
      hashConcurrency: num('HASH_CONCURRENCY'),
      hashQueueMax: num('HASH_QUEUE_MAX'),
      hashNice: num('HASH_NICE'),
      login: {
        maxFailures: num('LOGIN_MAX_FAILURES'),
        lockoutBaseS: num('LOGIN_LOCKOUT_BASE_S'),
        lockoutMaxS: num('LOGIN_LOCKOUT_MAX_S'),
        failureWindowS: num('LOGIN_FAILURE_WINDOW_S'),
      },
    },
    dbHealthIntervalMs: num('DB_HEALTH_INTERVAL_MS'),
    statsLogIntervalS: num('STATS_LOG_INTERVAL_S'),
    workers: num('WORKERS') || os.availableParallelism(),
    logLevel: str('LOG_LEVEL'),
  };
}

/** The documented keys with their defaults, for `.env.example` and its test. */
export const CONFIG_KEYS = Object.keys(schema);
export const CONFIG_DEFAULTS: Record<string, string> = Object.fromEntries(
  Object.entries(schema).map(([key, spec]) => [key, String(spec.default)]),
);
export const CONFIG_DOCS: Record<string, string> = Object.fromEntries(
  Object.entries(schema).map(([key, spec]) => [key, spec.doc]),
);
