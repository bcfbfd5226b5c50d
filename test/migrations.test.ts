/**
 * Versioned migrations (src/db/migrate.ts, src/db/migrations/): many instances starting at once on
 * one empty database, adopting a database made by the versions before migrations (Sequelize's
 * sync(), rebuilt from test/fixtures/schema-before-migrations.sql), DB_SYNC=false with
 * `npm run migrate`, its status output, and one transaction for a whole schema change.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import bcrypt from 'bcrypt';
import { expect } from 'chai';
import pg from 'pg';
import { connect } from '../src/client.js';
import { loadConfig } from '../src/config.js';
import { createDatabase, type Database } from '../src/db/database.js';
import { tempDataDir } from '../src/db/embedded.js';
import { applyMigrations, migrationStatus, requireMigrated, SCHEMA_LOCK } from '../src/db/migrate.js';
import { MIGRATIONS } from '../src/db/migrations/index.js';
import type { Migration } from '../src/db/migrations/migration.js';
import { createLogger } from '../src/logger.js';
import { createTestDatabase, type TestDatabase } from './helpers/postgres.js';
import { runCli, runUntilExit, type ServerProcess, spawnServer } from './helpers/process.js';
import { newAccount, startTestServer, TEST_ENV } from './helpers/server.js';
import { until } from './helpers/wait.js';

const NAMES = MIGRATIONS.map((m) => m.name);
const FIXTURE = fs.readFileSync(
  path.join(import.meta.dirname, 'fixtures/schema-before-migrations.sql'),
  'utf8',
);

async function sql<T extends pg.QueryResultRow = pg.QueryResultRow>(
  url: string,
  text: string,
  values?: unknown[],
): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const result = (await c.query(text, values)) as pg.QueryResult<T> | pg.QueryResult<T>[];
    return Array.isArray(result) ? result.flatMap((r) => r.rows ?? []) : result.rows;
  } finally {
    await c.end();
  }
}

/**
 * The catalog of the public schema as sorted lines: every column (type, nullability, default, and
 * with `columnOrder` its position), constraint, index and trigger definition.
 */
async function schemaOf(url: string, { columnOrder = true } = {}): Promise<string[]> {
  const rows = await sql<{ line: string }>(
    url,
    `SELECT format('column %s.%s %s %s %s null=%s default=%s', table_name, column_name,
                   CASE WHEN $1 THEN ordinal_position::text ELSE '' END, data_type, udt_name, is_nullable,
                   coalesce(column_default, '-')) AS line
       FROM information_schema.columns WHERE table_schema = 'public'
     UNION ALL
     SELECT format('constraint %s %s %s', conrelid::regclass, conname, pg_get_constraintdef(oid))
       FROM pg_constraint WHERE connamespace = 'public'::regnamespace
     UNION ALL
     SELECT format('index %s', indexdef) FROM pg_indexes WHERE schemaname = 'public'
     UNION ALL
     SELECT format('trigger %s', pg_get_triggerdef(t.oid)) FROM pg_trigger t
       JOIN pg_class c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal AND c.relnamespace = 'public'::regnamespace
     ORDER BY 1`,
    [columnOrder],
  );
  return rows.map((r) => r.line);
}

const tablesOf = async (url: string) =>
  (
    await sql<{ t: string }>(
      url,
      "SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    )
  ).map((r) => r.t);

const recorded = async (url: string) =>
  (await sql<{ name: string }>(url, 'SELECT name FROM schema_migrations ORDER BY name')).map((r) => r.name);

/** A database migrated from empty by this version, for comparisons. */
async function freshlyMigrated(): Promise<TestDatabase> {
  const db = await createTestDatabase();
  await withDatabase(db.url, (d) => applyMigrations(d));
  return db;
}

/** A `Database` of the server's own kind on `url`, closed after `work`. */
async function withDatabase<T>(url: string, work: (db: Database) => Promise<T>): Promise<T> {
  const config = loadConfig({ ...TEST_ENV, DATABASE_URL: url });
  const db = createDatabase(url, config, createLogger('silent'));
  try {
    return await work(db);
  } finally {
    await db.close();
  }
}

/**
 * Rows of every table, as the versions before migrations wrote them: a user (its password known),
 * a live session with a refresh token (its raw value known), a throttle counter, a service account.
 * `withLaterColumns: false` leaves out the session columns older versions lack.
 */
async function seedOldRows(url: string, { withLaterColumns = true } = {}) {
  const account = newAccount('adopted');
  const userId = randomUUID();
  const sessionId = randomUUID();
  const refreshToken = randomBytes(32).toString('base64url');
  await sql(
    url,
    `INSERT INTO users (id, email, password_hash, display_name, roles, created_at, updated_at)
     VALUES ($1, $2, $3, $4, '{user}', now(), now())`,
    [userId, account.email, await bcrypt.hash(account.password, 4), account.displayName],
  );
  await sql(
    url,
    withLaterColumns
      ? `INSERT INTO sessions (id, user_id, created_at, client_address, user_agent) VALUES ($1, $2, now(), '198.51.100.7', 'old-app/1.0')`
      : 'INSERT INTO sessions (id, user_id, created_at) VALUES ($1, $2, now())',
    [sessionId, userId],
  );
  await sql(
    url,
    `INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at)
     VALUES ($1, $2, now(), now() + interval '1 day')`,
    [createHash('sha256').update(refreshToken).digest('hex'), sessionId],
  );
  await sql(url, "INSERT INTO login_throttle (key, failures, last_failure_at) VALUES ('pair:x', 1, now())");
  await sql(
    url,
    `INSERT INTO service_accounts (id, name, client_id, secret_hash, scopes, created_at)
     VALUES ($1, 'billing', 'svc_old', $2, '{users.read}', now())`,
    [randomUUID(), 'ab'.repeat(32)],
  );
  return { account, userId, sessionId, refreshToken };
}

const rowCounts = async (url: string) =>
  (
    await sql<{ n: string }>(
      url,
      `SELECT (SELECT count(*) FROM users) || ',' || (SELECT count(*) FROM sessions) || ',' ||
              (SELECT count(*) FROM refresh_tokens) || ',' || (SELECT count(*) FROM login_throttle) || ',' ||
              (SELECT count(*) FROM service_accounts) AS n`,
    )
  )[0]?.n;

describe('schema migrations', () => {
  describe('many instances on one empty database', () => {
    it('three servers started at once all reach SERVING: they queue on the schema lock, one applies each migration, the others find nothing pending', async function () {
      this.timeout(120_000);
      const db = await createTestDatabase();
      // Holding the schema lock makes "at the same moment" certain: all three reach the lock before
      // any of them may change the schema, and are let go together.
      const holder = new pg.Client({ connectionString: db.url });
      await holder.connect();
      await holder.query('SELECT pg_advisory_lock($1::bigint)', [SCHEMA_LOCK]);
      const starting = [1, 2, 3].map(() => spawnServer({ DATABASE_URL: db.url }));
      const settled = Promise.allSettled(starting);
      let procs: ServerProcess[] = [];
      // Settling before the test lets go means the schema work did not wait for the lock.
      const overtaken = new Promise<never>((_, reject) => {
        for (const p of starting) {
          p.then(
            () => reject(new Error('a server reached SERVING while the test held the schema lock')),
            (err: unknown) => reject(err),
          );
        }
      });
      overtaken.catch(() => {});
      try {
        const waiting = until(
          'three servers waiting on the schema lock',
          async () => {
            const { rows } = await holder.query<{ n: number }>(
              `SELECT count(*)::int AS n FROM pg_locks
               WHERE locktype = 'advisory' AND NOT granted AND objsubid = 1
                 AND ((classid::bigint << 32) | objid::bigint) = $1::bigint`,
              [SCHEMA_LOCK],
            );
            return rows[0]?.n === 3;
          },
          90_000,
        );
        await Promise.race([waiting, overtaken]);
        await holder.query('SELECT pg_advisory_unlock($1::bigint)', [SCHEMA_LOCK]);
        const results = await settled;
        procs = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
        const failures = results.flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : []));
        expect(failures, 'every server reached SERVING').to.deep.equal([]);

        expect(await recorded(db.url)).to.deep.equal([...NAMES].sort());
        const ran = procs.flatMap((p) => p.output.filter((l) => l.includes('"msg":"migration ran"')));
        expect(ran, 'each migration ran once, in one of the three').to.have.length(NAMES.length);
        expect(
          procs.filter((p) => p.output.some((l) => l.includes('"msg":"schema migrated"'))),
        ).to.have.length(1);

        const acct = newAccount('together');
        const first = connect(`127.0.0.1:${procs[0]?.port}`);
        const last = connect(`127.0.0.1:${procs[2]?.port}`);
        await first.auth.register(acct);
        expect((await last.auth.login(acct)).user?.email).to.equal(acct.email);
        first.close();
        last.close();
      } finally {
        await holder.end(); // lets the servers go if the wait failed
        if (!procs.length)
          procs = (await settled).flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
        for (const p of procs) p.child.kill('SIGKILL');
        await Promise.all(procs.map((p) => p.exited));
        await db.drop();
      }
    });
  });

  describe('a database made before migrations (by sync())', () => {
    it('0001 on an empty database makes exactly the schema sync() made', async () => {
      const before = await createTestDatabase();
      const fresh = await freshlyMigrated();
      try {
        await sql(before.url, FIXTURE);
        // what 0001 made: without the table that records migrations and those of later migrations
        const later = [
          'schema_migrations',
          'audit_events',
          'audit_settings',
          'cache_notice',
          'tokens_valid_after',
          'login_throttle.in_flight',
        ];
        const migrated = (await schemaOf(fresh.url)).filter((l) => !later.some((t) => l.includes(t)));
        expect(migrated).to.deep.equal(await schemaOf(before.url));
      } finally {
        await before.drop();
        await fresh.drop();
      }
    });

    it('is adopted: the server starts, 0001 is recorded, every row stays and its user can log in and refresh', async () => {
      const db = await createTestDatabase();
      const fresh = await freshlyMigrated();
      await sql(db.url, FIXTURE);
      const old = await seedOldRows(db.url);
      const s = await startTestServer({}, { database: db });
      try {
        expect(await recorded(db.url)).to.deep.equal(NAMES);
        expect(await rowCounts(db.url)).to.equal('1,1,1,1,1');
        const login = await s.client.auth.login(old.account);
        expect(login.user?.id).to.equal(old.userId);
        const refreshed = await s.client.auth.refreshToken({ refreshToken: old.refreshToken });
        expect(refreshed.tokens?.refreshToken).to.be.a('string');
        expect(await schemaOf(db.url)).to.deep.equal(await schemaOf(fresh.url));
      } finally {
        await s.stop();
        await fresh.drop();
      }
    });

    it('of an older version is adopted too: the columns it lacks are added, its rows stay and work', async () => {
      const db = await createTestDatabase();
      const fresh = await freshlyMigrated();
      await sql(db.url, FIXTURE);
      // The first version: no refresh_tokens.parent_hash (and its index by session alone), no
      // sessions.last_refresh_at, client_address, user_agent.
      await sql(
        db.url,
        `DROP INDEX refresh_tokens_session_parent_idx;
         ALTER TABLE refresh_tokens DROP COLUMN parent_hash;
         CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);
         ALTER TABLE sessions DROP COLUMN last_refresh_at, DROP COLUMN client_address, DROP COLUMN user_agent`,
      );
      const old = await seedOldRows(db.url, { withLaterColumns: false });
      const s = await startTestServer({}, { database: db });
      try {
        expect(await recorded(db.url)).to.deep.equal(NAMES);
        expect(await rowCounts(db.url)).to.equal('1,1,1,1,1');
        const refreshed = await s.client.auth.refreshToken({ refreshToken: old.refreshToken });
        const sessions = await s.client.withToken(refreshed.tokens?.accessToken ?? '').auth.listSessions({});
        expect(sessions.sessions.map((x) => x.id)).to.deep.equal([old.sessionId]);
        expect((await s.client.auth.login(old.account)).user?.id).to.equal(old.userId);
        // Added columns come last, so their order differs; and the old index stays (nothing drops it).
        const adopted = (await schemaOf(db.url, { columnOrder: false })).filter(
          (l) => !l.includes('refresh_tokens_session_idx'),
        );
        expect(adopted).to.deep.equal(await schemaOf(fresh.url, { columnOrder: false }));
      } finally {
        await s.stop();
        await fresh.drop();
      }
    });
  });

  describe('DB_SYNC=false and npm run migrate', () => {
    it('refuses to start on a database with a pending migration, naming it and `npm run migrate`; starts once it ran', async function () {
      this.timeout(90_000);
      const db = await createTestDatabase();
      let proc: ServerProcess | undefined;
      try {
        const env = { DATABASE_URL: db.url, DB_SYNC: 'false', GRPC_PORT: '0' };
        const refused = await runUntilExit(env);
        expect(refused.code, refused.output).to.equal(1);
        expect(refused.output).to.include('start-up failed');
        expect(refused.output).to.include(
          `${NAMES.length} pending migration${NAMES.length > 1 ? 's' : ''} (${NAMES.join(', ')}); run \`npm run migrate\``,
        );
        expect(await tablesOf(db.url), 'DB_SYNC=false changes nothing').to.deep.equal([]);

        const migrated = await runCli(['migrate'], { DATABASE_URL: db.url });
        expect(migrated.code, migrated.output).to.equal(0);
        for (const name of NAMES) {
          expect(migrated.output).to.include(`${name}: applying`);
          expect(migrated.output).to.match(new RegExp(`${name}: done in \\d+ ms`));
        }
        expect(migrated.output).to.include(`applied ${NAMES.length} migration`);
        expect(await recorded(db.url)).to.deep.equal(NAMES);

        proc = await spawnServer(env);
        const client = connect(`127.0.0.1:${proc.port}`);
        const acct = newAccount('migrated');
        expect((await client.auth.register(acct)).user?.email).to.equal(acct.email);
        client.close();
      } finally {
        proc?.child.kill('SIGKILL');
        await proc?.exited;
        await db.drop();
      }
    });

    it('migrate --status lists what is applied and what is pending, with a summary', async function () {
      this.timeout(60_000);
      const db = await createTestDatabase();
      try {
        const before = await runCli(['migrate', '--status'], { DATABASE_URL: db.url });
        expect(before.code, before.output).to.equal(0);
        expect(before.output.split('\n')).to.deep.equal([
          ...NAMES.map((n) => `pending  ${n}`),
          `0 applied, ${NAMES.length} pending: run \`npm run migrate\` to apply them`,
        ]);

        await withDatabase(db.url, (d) => applyMigrations(d));
        const after = await runCli(['migrate', 'status'], { DATABASE_URL: db.url });
        expect(after.code, after.output).to.equal(0);
        const lines = after.output.split('\n');
        expect(lines.slice(0, -1).map((l) => l.replace(/ {2}\d{4}-\d\d-\d\dT[\d:.]+Z$/, ''))).to.deep.equal(
          NAMES.map((n) => `applied  ${n}`),
        );
        expect(lines.at(-1)).to.equal(`${NAMES.length} applied, 0 pending: the schema is up to date`);
      } finally {
        await db.drop();
      }
    });

    it("migrate and its status work on a running server's embedded database", async function () {
      this.timeout(90_000);
      const dataDir = tempDataDir('cs-migrate-');
      const env = { DATA_DIR: dataDir, DATABASE_URL: '' };
      const server = await spawnServer(env);
      try {
        const status = await runCli(['migrate', '--status'], env);
        expect(status.code, status.output).to.equal(0);
        expect(status.output).to.include(`applied  ${NAMES[0]}`);
        expect(status.output).to.include(`${NAMES.length} applied, 0 pending`);
        const again = await runCli(['migrate'], env);
        expect(again.code, again.output).to.equal(0);
        expect(again.output).to.include('nothing to apply: the schema is up to date');
      } finally {
        server.child.kill('SIGTERM');
        await server.exited;
        fs.rmSync(dataDir, { recursive: true, force: true });
      }
    });
  });

  describe('one transaction per schema change', () => {
    let db: TestDatabase;
    beforeEach(async () => {
      db = await createTestDatabase();
    });
    afterEach(async () => {
      await db.drop();
    });

    const failing: Migration = {
      name: '9001-fails-halfway',
      async up({ context }) {
        await context.query('CREATE TABLE made_then_rolled_back (x int)');
        await context.query('SELECT no_such_column FROM users');
      },
    };

    it('a migration that fails leaves nothing applied: not even the migrations before it', async () => {
      const error = await withDatabase(db.url, (d) =>
        applyMigrations(d, { migrations: [...MIGRATIONS, failing] }).then(
          () => expect.fail('the migration should have failed'),
          (e: Error) => e,
        ),
      );
      expect(error.message).to.match(
        /^migration 9001-fails-halfway failed, so none was applied \(rolled back\): column "no_such_column" does not exist/,
      );
      expect(await tablesOf(db.url)).to.deep.equal([]);
    });

    it('a migration added later is the only one pending: DB_SYNC=false refuses naming it, applying runs only it', async () => {
      const later: Migration = {
        name: '9002-added-later',
        async up({ context }) {
          // dollar quoting reaches PostgreSQL as written
          await context.query(`CREATE FUNCTION cs_answer() RETURNS int LANGUAGE sql AS $$ SELECT 42 $$`);
        },
      };
      const all = [...MIGRATIONS, later];
      await withDatabase(db.url, async (d) => {
        await applyMigrations(d);
        const refusal = await requireMigrated(d, all).then(
          () => expect.fail('should refuse'),
          (e: Error) => e,
        );
        expect(refusal.message).to.include('1 pending migration (9002-added-later); run `npm run migrate`');
        const progress: string[] = [];
        const { applied } = await applyMigrations(d, {
          migrations: all,
          onProgress: (p) => progress.push(`${p.event} ${p.name}`),
        });
        expect(applied).to.deep.equal(['9002-added-later']);
        expect(progress).to.deep.equal(['running 9002-added-later', 'ran 9002-added-later']);
        expect((await migrationStatus(d, all)).pending).to.deep.equal([]);
        expect((await migrationStatus(d)).unknown, 'seen from the older version').to.deep.equal([
          '9002-added-later',
        ]);
      });
      expect((await sql(db.url, 'SELECT cs_answer() AS a'))[0]?.a).to.equal(42);
    });
  });
});
