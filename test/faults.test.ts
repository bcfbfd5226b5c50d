import { expect } from 'chai';
import pg from 'pg';
import { Code, connect, type ServiceError } from '../src/client.js';
import { type EmbeddedPostgres, freePort, startEmbeddedPostgres, tempDataDir } from '../src/db/embedded.js';
import { HealthCheckResponse_ServingStatus as Serving } from '../src/gen/health/v1/health.js';
import { createLogger } from '../src/logger.js';
import { createInstrumentedDatabase, createTestDatabase, type TestDatabase } from './helpers/postgres.js';
import { spawnServer } from './helpers/process.js';
import {
  expectCode,
  healthOf,
  newAccount,
  seedAccounts,
  startTestServer,
  type TestServer,
} from './helpers/server.js';
import { until } from './helpers/wait.js';

/** A transaction on the server's database holding an exclusive lock on users: every query on it waits. */
async function lockUsers(url: string) {
  const c = new pg.Client({ connectionString: url });
  c.on('error', () => {}); // a failed test's cleanup may terminate it; the test has failed already
  await c.connect();
  await c.query('BEGIN');
  await c.query('LOCK TABLE users IN ACCESS EXCLUSIVE MODE');
  let released: Promise<void> | undefined;
  const lock = {
    /** Commits and disconnects; safe to call again (afterEach releases what a failed test left). */
    release: () => {
      released ??= c
        .query('COMMIT')
        .then(
          () => undefined,
          () => undefined,
        )
        .finally(() => c.end().catch(() => {}));
      heldLocks.delete(lock);
      return released;
    },
  };
  heldLocks.add(lock);
  return lock;
}
const heldLocks = new Set<{ release(): Promise<void> }>();

/** Starts `n` calls; `results` fills with each outcome as it settles (in settling order). */
function settleEach(n: number, call: () => Promise<unknown>) {
  const results: { code: number; details: string }[] = [];
  const calls = Array.from({ length: n }, () =>
    call().then(
      () => results.push({ code: Code.OK, details: '' }),
      (e: ServiceError) => results.push({ code: e.code, details: e.details }),
    ),
  );
  return { results, calls };
}

describe('database faults', () => {
  afterEach(async () => {
    for (const lock of [...heldLocks]) await lock.release();
  });
  describe('outage of the database', () => {
    let dataDir: string;
    let port: number;
    let pgServer: EmbeddedPostgres;
    let s: TestServer;
    let opsPort: number;
    const logger = createLogger('warn');
    const readyz = async () => (await fetch(`http://127.0.0.1:${opsPort}/readyz`)).status;
    before(async function () {
      this.timeout(60_000);
      dataDir = tempDataDir('cs-outage-');
      port = await freePort();
      opsPort = await freePort();
      pgServer = await startEmbeddedPostgres({ dataDir, port, logger });
      const database: TestDatabase = { url: pgServer.url, name: 'connectsphere', drop: async () => {} };
      s = await startTestServer(
        {
          DB_HEALTH_INTERVAL_MS: '200',
          DB_POOL_ACQUIRE_MS: '3000',
          DB_CONNECT_TIMEOUT_MS: '1000',
          LOG_LEVEL: 'warn',
          OPS_PORT: String(opsPort),
        },
        { database },
      );
    });
    after(async () => {
      await s?.stop();
      await pgServer?.stop();
    });

    it('fails calls with UNAVAILABLE (none waits for its deadline), turns NOT_SERVING (/readyz 503), and recovers without a restart', async function () {
      this.timeout(90_000);
      const acct = newAccount('outage');
      const reg = await s.client.auth.register(acct);
      const me = connect(s.address, { token: reg.tokens?.accessToken, deadlineMs: 2000 });
      const health = healthOf(s.address);
      const get = () => me.users.getUser({ lookup: { $case: 'email', value: acct.email } });

      // calls in flight when the database goes away
      let running = true;
      const outcomes: { code: number; ms: number }[] = [];
      const loops = Array.from({ length: 16 }, async () => {
        while (running) {
          const t = Date.now();
          const code = await get().then(
            () => Code.OK,
            (e: ServiceError) => e.code,
          );
          outcomes.push({ code, ms: Date.now() - t });
          if (code !== Code.OK) await new Promise((r) => setTimeout(r, 20));
        }
      });
      await until('traffic', async () => outcomes.length > 50);
      await pgServer.stop();
      const downAt = Date.now();
      await until(
        'NOT_SERVING',
        async () => (await health.check({ service: '' })).status === Serving.NOT_SERVING,
      );
      expect(await readyz(), '/readyz follows the health service').to.equal(503);
      const err = await expectCode(get(), Code.UNAVAILABLE, /database/);
      expect(err.details).to.not.match(/ECONNREFUSED|127\.0\.0\.1|select|stack/i);
      await until(
        'more calls failed during the outage',
        () => outcomes.filter((o) => o.code !== Code.OK).length > 50,
      );

      pgServer = await startEmbeddedPostgres({ dataDir, port, logger });
      const upAt = Date.now();
      const recoveredMs = await until(
        'a call succeeds again',
        async () => (await get()).email === acct.email,
      );
      await until('SERVING', async () => (await health.check({ service: '' })).status === Serving.SERVING);
      await until('/readyz 200 again', async () => (await readyz()) === 200);
      running = false;
      await Promise.all(loops);
      me.close();

      const duringOutage = outcomes.filter((o) => o.code !== Code.OK);
      expect(duringOutage.length, 'some calls failed while the database was down').to.be.greaterThan(0);
      // none got DEADLINE_EXCEEDED: each failed fast (before its 2 s deadline) with the database's status
      expect([...new Set(duringOutage.map((o) => Code[o.code]))]).to.deep.equal(['UNAVAILABLE']);
      const slowest = Math.max(...duringOutage.map((o) => o.ms));
      console.log(
        `      outage: ${duringOutage.length} calls failed UNAVAILABLE (slowest ${slowest} ms) over ${upAt - downAt} ms; ` +
          `first success ${recoveredMs} ms after the database came back`,
      );
    });
  });

  describe('pool exhaustion', () => {
    // A Login holds a pooled connection for each of its statements (no batching), so Logins blocked
    // on a locked `users` table hold every connection and the rest wait in Sequelize's pool itself.
    it('queues 200 concurrent calls that each need a connection on a pool of 5, and serves them all', async function () {
      this.timeout(60_000);
      const s = await startTestServer({
        DB_POOL_MAX: '5',
        DB_POOL_MIN: '1',
        DB_HEALTH_INTERVAL_MS: '0',
        HASH_QUEUE_MAX: '1000',
        LOG_LEVEL: 'warn',
        // all 200 in flight on the test's one connection (by default the client queues past 100)
        GRPC_MAX_CONCURRENT_STREAMS: '200',
      });
      try {
        // distinct accounts: parallel logins of one account would meet its attempt limit first
        const accounts = await seedAccounts(s, 200);
        const lock = await lockUsers(s.db.url);
        const calls = accounts.map((acct) => s.client.auth.login(acct, { deadlineMs: 60_000 }));
        // every connection is held and the other 195 calls wait for one
        await until(
          '5 connections in use, 195 calls waiting for one',
          async () => {
            const p = s.app.stats().pool;
            return p.using === 5 && p.waiting === 195;
          },
          30_000,
        );
        expect(s.app.stats().pool.size, 'never more than DB_POOL_MAX').to.equal(5);
        await lock.release();
        const results = await Promise.allSettled(calls);
        expect(results.filter((r) => r.status === 'fulfilled')).to.have.length(200);
        expect(s.app.stats().pool.size).to.be.at.most(5);
      } finally {
        await s.stop();
      }
    });

    it("fails the calls that get no connection within DB_POOL_ACQUIRE_MS with the pool's RESOURCE_EXHAUSTED while the others still hold theirs, then shrinks back to its minimum", async function () {
      this.timeout(60_000);
      const s = await startTestServer({
        DB_POOL_MAX: '5',
        DB_POOL_MIN: '1',
        DB_POOL_ACQUIRE_MS: '300',
        DB_POOL_IDLE_MS: '300',
        DB_POOL_EVICT_MS: '100',
        DB_HEALTH_INTERVAL_MS: '0',
        LOG_LEVEL: 'warn',
      });
      try {
        const accounts = await seedAccounts(s, 40);
        const lock = await lockUsers(s.db.url); // every query on users now waits: connections stay busy
        let next = 0;
        const { results, calls } = settleEach(40, () =>
          s.client.auth.login(accounts[next++] as (typeof accounts)[number], { deadlineMs: 60_000 }),
        );
        // The excess fails while the lock is still held: fast, not at its 60 s deadline.
        await until('35 calls refused', async () => results.length === 35, 30_000);
        expect(s.app.stats().pool.using, 'the other 5 still hold their connections').to.equal(5);
        for (const r of results) {
          expect(r.code, r.details).to.equal(Code.RESOURCE_EXHAUSTED);
          expect(r.details).to.equal('no database connection became free within 300 ms; retry later');
        }
        await lock.release();
        await Promise.all(calls);
        expect(
          results.filter((r) => r.code === Code.OK),
          'the holders finish once the lock goes',
        ).to.have.length(5);
        const shrinkMs = await until(
          'the pool back at its minimum',
          async () => s.app.stats().pool.size === 1,
          30_000,
        );
        console.log(
          `      pool: 35 of 40 refused while 5 held connections; back to 1 connection ${shrinkMs} ms after`,
        );
      } finally {
        await s.stop();
      }
    });

    it('fails lookups that wait longer than DB_POOL_ACQUIRE_MS for a batch slot with their own RESOURCE_EXHAUSTED', async function () {
      this.timeout(60_000);
      const s = await startTestServer({
        DB_POOL_MAX: '5',
        DB_POOL_ACQUIRE_MS: '300',
        DB_HEALTH_INTERVAL_MS: '0',
        LOG_LEVEL: 'warn',
      });
      try {
        const reg = await s.client.auth.register(newAccount('batch'));
        const me = connect(s.address, { token: reg.tokens?.accessToken, deadlineMs: 60_000 });
        const lock = await lockUsers(s.db.url);
        // GetUser's lookups go through the batcher: 2 batches in flight, the rest queue behind them
        const { results, calls } = settleEach(40, () =>
          me.users.getUser({ lookup: { $case: 'id', value: reg.user?.id ?? '' } }),
        );
        await until('38 lookups refused', async () => results.length === 38, 30_000);
        expect(s.app.stats().pool.waiting, 'the pool itself was never short').to.equal(0);
        for (const r of results) {
          expect(r.code, r.details).to.equal(Code.RESOURCE_EXHAUSTED);
          expect(r.details).to.equal(
            'the database is busy: this lookup waited 300 ms for a batch slot; retry later',
          );
        }
        await lock.release();
        await Promise.all(calls);
        expect(
          results.filter((r) => r.code === Code.OK),
          'the two batches in flight finish',
        ).to.have.length(2);
        me.close();
      } finally {
        await s.stop();
      }
    });
  });

  describe('deadlines', () => {
    it('abandons a call whose deadline passes while it waits for a connection: the database never runs its query', async function () {
      this.timeout(60_000);
      // pg_stat_statements on a PostgreSQL of the test's own counts what the database really executed
      const database = await createInstrumentedDatabase();
      const s = await startTestServer(
        { DB_POOL_MAX: '2', DB_POOL_MIN: '0', DB_HEALTH_INTERVAL_MS: '0', LOG_LEVEL: 'info' },
        { database },
      );
      try {
        const acct = newAccount('deadline');
        await s.client.auth.register(acct);
        const login = (deadlineMs: number) => s.client.auth.login(acct, { deadlineMs });
        // Login's first statement is the throttle check; then it reads the account (blocked by the lock)
        const throttleChecks = () => database.calls('INSERT INTO login_throttle');
        const lock = await lockUsers(s.db.url);
        const holders = [login(60_000), login(60_000)]; // take both connections, wait on the lock
        await until(
          'both connections waiting on the lock',
          async () => {
            const [row] = await s.sql<{ n: number }>(
              `SELECT count(*)::int AS n FROM pg_stat_activity
             WHERE application_name = 'connectsphere-identity' AND wait_event_type = 'Lock'`,
            );
            return row?.n === 2;
          },
          30_000,
        );
        const before = await throttleChecks();
        expect(before, 'the counter sees the throttle checks that did run').to.be.at.least(2);
        const late = await Promise.allSettled(Array.from({ length: 10 }, () => login(300)));
        for (const r of late)
          expect(r.status === 'rejected' && (r.reason as ServiceError).code).to.equal(Code.DEADLINE_EXCEEDED);
        await lock.release();
        await Promise.all(holders);
        const cancelledLines = () => s.logs.filter((l) => l.includes('"code":"CANCELLED"')).length;
        await until(
          'the 10 abandoned calls logged as CANCELLED',
          async () => cancelledLines() === 10,
          30_000,
        );
        await until(
          'the pool idle',
          async () => s.app.stats().pool.waiting === 0 && s.app.stats().pool.using === 0,
          30_000,
        );
        expect((await throttleChecks()) - before, 'queries run for the 10 abandoned calls').to.equal(0);
      } finally {
        await s.stop();
      }
    });

    it('abandons a call whose deadline passes while it waits for bcrypt: no hash is started for it', async function () {
      this.timeout(60_000);
      // Cost 14: the first login holds the only hashing slot for about a second of CPU (longer on a
      // busy machine: hashing runs at low priority), far past the late calls' 60 ms deadlines. The
      // queue's abort handling itself is also proven without any timing in test/unit/passwords.test.ts.
      const s = await startTestServer({
        BCRYPT_ROUNDS: '14',
        HASH_CONCURRENCY: '1',
        LOGIN_MAX_FAILURES: '100', // six parallel logins of one account: not a guessing attack here
        LOG_LEVEL: 'warn',
      });
      try {
        const acct = newAccount('hash');
        await s.client.auth.register(acct);
        const before = s.app.stats().hashing.started;
        const first = s.client.auth.login(acct, { deadlineMs: 60_000 });
        await until('hashing busy', async () => s.app.stats().hashing.running === 1, 30_000, 5);
        const late = await Promise.allSettled(
          Array.from({ length: 5 }, () => s.client.auth.login(acct, { deadlineMs: 60 })),
        );
        for (const r of late)
          expect(r.status === 'rejected' && (r.reason as ServiceError).code).to.equal(Code.DEADLINE_EXCEEDED);
        await first;
        await until('queue empty', async () => s.app.stats().hashing.waiting === 0);
        expect(s.app.stats().hashing.started - before, 'only the first login hashed').to.equal(1);
      } finally {
        await s.stop();
      }
    });
  });

  describe('crash', () => {
    let db: TestDatabase;
    before(async () => {
      db = await createTestDatabase();
    });
    after(async () => {
      await db?.drop();
    });

    it('leaves no half-written state when killed with SIGKILL during Register and RefreshToken', async function () {
      this.timeout(120_000);
      const env = { DATABASE_URL: db.url };
      const first = await spawnServer(env);
      const client = connect(`127.0.0.1:${first.port}`, { deadlineMs: 5000 });
      const chains = await Promise.all(
        Array.from({ length: 8 }, async () => {
          const reg = await client.auth.register(newAccount('crash'));
          return { token: reg.tokens?.refreshToken ?? '', inFlight: false };
        }),
      );
      const registered: { email: string; password: string }[] = [];
      let refreshed = 0;
      let running = true;
      const registering = Array.from({ length: 4 }, async () => {
        while (running) {
          const acct = newAccount('crash');
          try {
            await client.auth.register(acct);
            registered.push(acct);
          } catch {
            return;
          }
        }
      });
      const refreshing = chains.map(async (chain) => {
        while (running) {
          chain.inFlight = true;
          try {
            const r = await client.auth.refreshToken({ refreshToken: chain.token });
            chain.token = r.tokens?.refreshToken ?? '';
            chain.inFlight = false;
            refreshed++;
          } catch {
            return; // the server died: this chain's last request may or may not have committed
          }
        }
      });
      await until('traffic under way', () => registered.length > 10 && refreshed > 40, 60_000);
      first.child.kill('SIGKILL');
      await first.exited;
      running = false;
      await Promise.all([...registering, ...refreshing]);
      client.close();
      expect(registered.length).to.be.greaterThan(10);

      const check = async (sql: string) => {
        const c = new pg.Client({ connectionString: db.url });
        await c.connect();
        try {
          return (await c.query(sql)).rows;
        } finally {
          await c.end();
        }
      };
      expect(
        await check(
          'SELECT id FROM users u WHERE NOT EXISTS (SELECT 1 FROM sessions s WHERE s.user_id = u.id)',
        ),
        'users without a session',
      ).to.deep.equal([]);
      expect(
        await check(
          'SELECT id FROM sessions s WHERE NOT EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.session_id = s.id)',
        ),
        'sessions without a token',
      ).to.deep.equal([]);
      expect(
        await check(
          'SELECT session_id FROM refresh_tokens WHERE used_at IS NULL GROUP BY session_id HAVING count(*) > 1',
        ),
        'sessions with two live tokens',
      ).to.deep.equal([]);
      expect(
        await check(`SELECT t.token_hash FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
          WHERE t.used_at IS NOT NULL AND s.revoked_at IS NULL
            AND NOT EXISTS (SELECT 1 FROM refresh_tokens c WHERE c.parent_hash = t.token_hash)`),
        'used tokens without a successor',
      ).to.deep.equal([]);

      const second = await spawnServer(env);
      const again = connect(`127.0.0.1:${second.port}`, { deadlineMs: 5000 });
      try {
        for (const acct of registered)
          expect((await again.auth.login(acct)).user?.email).to.equal(acct.email);
        for (const chain of chains) {
          const result = await again.auth.refreshToken({ refreshToken: chain.token }).then(
            () => 'ok',
            (e: ServiceError) => Code[e.code],
          );
          // a chain whose last refresh committed without an answer holds a used token: that is a replay
          if (!chain.inFlight) expect(result).to.equal('ok');
          else expect(result).to.be.oneOf(['ok', 'UNAUTHENTICATED']);
        }
      } finally {
        again.close();
        second.child.kill('SIGTERM');
        await second.exited;
      }
    });
  });
});
