/**
 * The real server, started in the test process on an ephemeral port against a fresh database,
 * with its logs captured, and typed clients built from the generated service definitions.
 */
import { Writable } from 'node:stream';
import { type ChannelCredentials, credentials } from '@grpc/grpc-js';
import bcrypt from 'bcrypt';
import { expect } from 'chai';
import pg from 'pg';
import { type App, startApp } from '../../src/app.js';
import {
  type ConnectOptions,
  type ConnectSphereClient,
  connect,
  promiseClient,
  type ServiceError,
} from '../../src/client.js';
import { loadConfig } from '../../src/config.js';
import { HealthClient, HealthService } from '../../src/gen/health/v1/health.js';
import { createLogger } from '../../src/logger.js';
import { createTestDatabase, type TestDatabase } from './postgres.js';
import { until } from './wait.js';

export interface TestServer {
  app: App;
  port: number;
  address: string;
  client: ConnectSphereClient;
  db: TestDatabase;
  /** Every log line written so far. */
  logs: string[];
  /** Runs SQL on the server's database (for assertions on stored rows). */
  sql<T extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<T[]>;
  /** Stops the server; keeps the database when `keepDatabase` (for a restart on it). */
  stop(options?: { keepDatabase?: boolean }): Promise<void>;
}

export const TEST_ENV = {
  NODE_ENV: 'test',
  GRPC_HOST: '127.0.0.1',
  GRPC_PORT: '0',
  OPS_PORT: '0', // the operations tests pick a free port of their own
  BCRYPT_ROUNDS: '4',
  LOG_LEVEL: 'info',
  SHUTDOWN_GRACE_MS: '2000',
  // every test call comes from 127.0.0.1: tests of per-address limits set their own (with TRUSTED_PROXIES)
  HASH_QUEUE_PER_SOURCE: '1000',
  LOGIN_SOURCE_MAX_FAILURES: '100000',
};

export async function startTestServer(
  env: Record<string, string> = {},
  options: { database?: TestDatabase; client?: ConnectOptions } = {},
): Promise<TestServer> {
  const db = options.database ?? (await createTestDatabase());
  const config = loadConfig({ ...TEST_ENV, DATABASE_URL: db.url, ...env });
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      logs.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  const app = await startApp(config, createLogger(config.LOG_LEVEL, sink));
  const address = `127.0.0.1:${app.port}`;
  const client = connect(address, { deadlineMs: 10_000, ...options.client });
  let stopped = false;
  return {
    app,
    port: app.port,
    address,
    client,
    db,
    logs,
    async sql(text, values) {
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      try {
        const result = (await c.query(text, values)) as pg.QueryResult | pg.QueryResult[];
        // A change behind the server's back reaches its read cache by notice, a moment later. The
        // tests that make one then expect the server to know it at once: the change is followed by
        // an "empty everything" notice, delivered after the change's own (in commit order), and
        // awaited until the cache is empty (it is also safe if it was empty already).
        if (/^\s*(UPDATE|DELETE|INSERT)\b/i.test(text) && app.stats().cache?.active) {
          await c.query("SELECT pg_notify('connectsphere_cache', '*')");
          await until('the server heard the change', () => app.stats().cache?.entries === 0, 10_000, 1);
        }
        // several statements: the rows of all of them, in order
        return Array.isArray(result) ? result.flatMap((r) => r.rows ?? []) : result.rows;
      } finally {
        await c.end();
      }
    },
    async stop({ keepDatabase = false } = {}) {
      if (stopped) return;
      stopped = true;
      client.close();
      await app.stop();
      if (!keepDatabase) await db.drop();
    },
  };
}

/** Awaits a call that must fail with `code` (and a message matching `message`); returns the error. */
export async function expectCode(
  call: Promise<unknown>,
  code: number,
  message?: RegExp,
): Promise<ServiceError> {
  let error: ServiceError | undefined;
  try {
    await call;
  } catch (err) {
    error = err as ServiceError;
  }
  expect(error, `expected gRPC status ${code}, got a response`).to.not.equal(undefined);
  const e = error as ServiceError;
  expect(e.code, `status code (message: ${e.details})`).to.equal(code);
  if (message) expect(e.details).to.match(message);
  return e;
}

let counter = 0;
/** A unique, valid registration. */
export function newAccount(prefix = 'user') {
  counter++;
  const tag = `${prefix}${counter}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  return { email: `${tag}@example.com`, password: `correct horse ${tag}`, displayName: `User ${tag}` };
}

/**
 * `n` accounts inserted straight into the server's database (one bcrypt hash at cost 4, the test
 * servers' BCRYPT_ROUNDS), for tests that need many distinct accounts quickly.
 */
export async function seedAccounts(s: TestServer, n: number, prefix = 'seed') {
  const password = 'correct horse battery staple';
  const hash = await bcrypt.hash(password, 4);
  const tag = `${prefix}${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  await s.sql(
    `INSERT INTO users (id, email, password_hash, display_name, roles, created_at, updated_at)
     SELECT gen_random_uuid(), $1 || g || '@example.com', $2, 'Seeded ' || g, '{user}', now(), now()
     FROM generate_series(1, $3::int) g`,
    [tag, hash, n],
  );
  return Array.from({ length: n }, (_, i) => ({ email: `${tag}${i + 1}@example.com`, password }));
}

/** A typed client of the standard health service. */
export function healthOf(
  address: string,
  channelCredentials: ChannelCredentials = credentials.createInsecure(),
) {
  return promiseClient(HealthService, new HealthClient(address, channelCredentials), {
    deadlineMs: 2000,
  });
}
