/**
 * The PostgreSQL the tests run against: TEST_DATABASE_URL when set (each run gets fresh databases
 * on it), else an embedded PostgreSQL of this run's own in a temporary directory.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import pg from 'pg';
import { type EmbeddedPostgres, startEmbeddedPostgres, tempDataDir } from '../../src/db/embedded.js';
import { createLogger } from '../../src/logger.js';

interface State {
  adminUrl?: string;
  embedded?: EmbeddedPostgres;
  embeddedDir?: string;
  instrumented?: Promise<{ pg: EmbeddedPostgres; dir: string }>;
}
// Kept on globalThis: mocha loads the root-hook file through require() and the specs through
// import(), which gives this module two instances.
const holder = globalThis as { __csTestPostgres?: State };
holder.__csTestPostgres ??= {};
const state: State = holder.__csTestPostgres;

export async function startTestPostgres(): Promise<void> {
  if (process.env.TEST_DATABASE_URL) {
    state.adminUrl = process.env.TEST_DATABASE_URL;
    return;
  }
  state.embeddedDir = tempDataDir('cs-test-pg-');
  state.embedded = await startEmbeddedPostgres({
    dataDir: state.embeddedDir,
    port: 0,
    logger: createLogger('warn'),
  });
  state.adminUrl = state.embedded.adminUrl;
}

export async function stopTestPostgres(): Promise<void> {
  await state.embedded?.stop();
  if (state.embeddedDir) fs.rmSync(state.embeddedDir, { recursive: true, force: true });
  const instrumented = await state.instrumented?.catch(() => undefined);
  await instrumented?.pg.stop();
  if (instrumented) fs.rmSync(instrumented.dir, { recursive: true, force: true });
}

/**
 * A fresh database on a PostgreSQL of the test run's own that records every statement it executes
 * (pg_stat_statements, whichever server TEST_DATABASE_URL names), for tests that must prove a query
 * did or did not run. `calls(fragment)` sums the executions of statements whose text contains it.
 */
export async function createInstrumentedDatabase(): Promise<
  TestDatabase & { calls(fragment: string): Promise<number> }
> {
  state.instrumented ??= (async () => {
    const dir = tempDataDir('cs-test-pgss-');
    const pgServer = await startEmbeddedPostgres({
      dataDir: dir,
      port: 0,
      logger: createLogger('warn'),
      settings: { shared_preload_libraries: 'pg_stat_statements', 'pg_stat_statements.track': 'all' },
    });
    return { pg: pgServer, dir };
  })();
  const { pg: server } = await state.instrumented;
  const name = `cs_test_${randomBytes(6).toString('hex')}`;
  const admin = withClient;
  await admin(server.adminUrl, (c) => c.query(`CREATE DATABASE ${name}`));
  const url = new URL(server.adminUrl);
  url.pathname = `/${name}`;
  await admin(url.toString(), (c) => c.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements'));
  return {
    url: url.toString(),
    name,
    drop: () =>
      admin(server.adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(
        () => undefined,
      ),
    calls: (fragment) =>
      admin(url.toString(), async (c) => {
        const { rows } = await c.query(
          `SELECT COALESCE(sum(s.calls), 0)::int AS n FROM pg_stat_statements s
           JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = $1 AND s.query LIKE '%' || $2 || '%'`,
          [name, fragment],
        );
        return (rows[0] as { n: number }).n;
      }),
  };
}

/** Runs `work` on a connection of its own to `url`. */
async function withClient<T>(url: string, work: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

function withAdmin<T>(work: (c: pg.Client) => Promise<T>): Promise<T> {
  const { adminUrl } = state;
  if (!adminUrl) throw new Error('test PostgreSQL not started (test/helpers/hooks.ts)');
  return withClient(adminUrl, work);
}

export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

/** A new, empty database on the test server. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `cs_test_${randomBytes(6).toString('hex')}`;
  await withAdmin((c) => c.query(`CREATE DATABASE ${name}`));
  const url = new URL(state.adminUrl as string);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    drop: () =>
      withAdmin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => undefined),
  };
}
