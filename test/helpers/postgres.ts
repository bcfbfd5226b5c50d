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
  state.adminUrl = state.embedded.url;
}

export async function stopTestPostgres(): Promise<void> {
  await state.embedded?.stop();
  if (state.embeddedDir) fs.rmSync(state.embeddedDir, { recursive: true, force: true });
}

export function describeTarget(): string {
  return process.env.TEST_DATABASE_URL ? 'TEST_DATABASE_URL' : 'embedded PostgreSQL';
}

async function withAdmin<T>(work: (c: pg.Client) => Promise<T>): Promise<T> {
  const { adminUrl } = state;
  if (!adminUrl) throw new Error('test PostgreSQL not started (test/helpers/hooks.ts)');
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
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
