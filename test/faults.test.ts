import { expect } from 'chai';
import pg from 'pg';
import { Code, connect, type ServiceError } from '../src/client.js';
import { type EmbeddedPostgres, freePort, startEmbeddedPostgres, tempDataDir } from '../src/db/embedded.js';
import { HealthCheckResponse_ServingStatus as Serving } from '../src/gen/health/v1/health.js';
import { createLogger } from '../src/logger.js';
import { createTestDatabase, type TestDatabase } from './helpers/postgres.js';
import { spawnServer } from './helpers/process.js';
import { expectCode, healthOf, newAccount, startTestServer, type TestServer } from './helpers/server.js';

const until = async (what: string, check: () => Promise<boolean>, timeoutMs: number, everyMs = 50) => {
  const started = Date.now();
  for (;;) {
    if (await check().catch(() => false)) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
};

/** A transaction on the server's database holding an exclusive lock on users: every query on it waits. */
async function lockUsers(url: string) {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  await c.query('BEGIN');
  await c.query('LOCK TABLE users IN ACCESS EXCLUSIVE MODE');
  return { release: async () => void (await c.query('COMMIT').finally(() => c.end())) };
}

describe('database faults', () => {
  describe('outage of the database', () => {
    let dataDir: string;
    let port: number;
    let pgServer: EmbeddedPostgres;
    let s: TestServer;
    const logger = createLogger('warn');
    before(async function () {
      this.timeout(60_000);
      dataDir = tempDataDir('cs-outage-');
      port = await freePort();
      pgServer = await startEmbeddedPostgres({ dataDir, port, logger });
      const database: TestDatabase = { url: pgServer.url, name: 'connectsphere', drop: async () => {} };
      s = await startTestServer(
        {
          DB_HEALTH_INTERVAL_MS: '200',
          DB_POOL_ACQUIRE_MS: '3000',
          DB_CONNECT_TIMEOUT_MS: '1000',
          LOG_LEVEL: 'warn',
        },
        { database },
      );
    });
    after(async () => {
      await s?.stop();
      await pgServer?.stop();
    });

    it('fails calls fast with UNAVAILABLE, turns NOT_SERVING, and recovers within 5 s without a restart', async function () {
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
      await until('traffic', async () => outcomes.length > 50, 10_000);
      await pgServer.stop();
      const downAt = Date.now();
      await until(
        'NOT_SERVING',
        async () => (await health.check({ service: '' })).status === Serving.NOT_SERVING,
        3000,
      );
      const err = await expectCode(get(), Code.UNAVAILABLE, /database/);
      expect(err.details).to.not.match(/ECONNREFUSED|127\.0\.0\.1|select|stack/i);
      await new Promise((r) => setTimeout(r, 1000));

      pgServer = await startEmbeddedPostgres({ dataDir, port, logger });
      const upAt = Date.now();
      const recoveredMs = await until(
        'a call succeeds again',
        async () => (await get()).email === acct.email,
        5000,
      );
      await until(
        'SERVING',
        async () => (await health.check({ service: '' })).status === Serving.SERVING,
        5000,
      );
      running = false;
      await Promise.all(loops);
      me.close();

      const duringOutage = outcomes.filter((o) => o.code !== Code.OK);
      expect(duringOutage.length, 'some calls failed while the database was down').to.be.greaterThan(0);
      expect([...new Set(duringOutage.map((o) => Code[o.code]))]).to.deep.equal(['UNAVAILABLE']);
      const slowest = Math.max(...duringOutage.map((o) => o.ms));
      expect(
        slowest,
        'no call hangs: each fails within min(deadline 2000 ms, acquire 3000 ms)',
      ).to.be.lessThan(2000);
      console.log(
        `      outage: ${duringOutage.length} calls failed UNAVAILABLE (slowest ${slowest} ms) over ${upAt - downAt} ms; ` +
          `first success ${recoveredMs} ms after the database came back`,
      );
    });
  });

  describe('pool exhaustion', () => {
    it('queues 200 concurrent calls on a pool of 5 and serves them all', async () => {
      const s = await startTestServer({ DB_POOL_MAX: '5', DB_POOL_MIN: '1', LOG_LEVEL: 'warn' });
      try {
        const reg = await s.client.auth.register(newAccount('pool'));
        const me = s.client.withToken(reg.tokens?.accessToken ?? '');
        let maxSize = 0;
        const sampler = setInterval(() => {
          maxSize = Math.max(maxSize, s.app.stats().pool.size);
        }, 2);
        const results = await Promise.allSettled(
          Array.from({ length: 200 }, () =>
            me.users.getUser({ lookup: { $case: 'id', value: reg.user?.id ?? '' } }),
          ),
        );
        clearInterval(sampler);
        expect(results.filter((r) => r.status === 'fulfilled')).to.have.length(200);
        expect(maxSize).to.be.at.most(5);
      } finally {
        await s.stop();
      }
    });

    it('fails the excess fast with RESOURCE_EXHAUSTED when connections stay busy, then shrinks back to its minimum', async function () {
      this.timeout(60_000);
      const s = await startTestServer({
        DB_POOL_MAX: '5',
        DB_POOL_MIN: '1',
        DB_POOL_ACQUIRE_MS: '300',
        DB_POOL_IDLE_MS: '300',
        DB_POOL_EVICT_MS: '100',
        LOG_LEVEL: 'warn',
      });
      try {
        const reg = await s.client.auth.register(newAccount('pool'));
        const me = connect(s.address, { token: reg.tokens?.accessToken, deadlineMs: 20_000 });
        const lock = await lockUsers(s.db.url); // every query on users now waits: connections stay busy
        const started = Date.now();
        const calls = Array.from({ length: 40 }, () =>
          me.users.getUser({ lookup: { $case: 'id', value: reg.user?.id ?? '' } }).then(
            () => ({ code: Code.OK, ms: Date.now() - started, details: '' }),
            (e: ServiceError) => ({ code: e.code, ms: Date.now() - started, details: e.details }),
          ),
        );
        await new Promise((r) => setTimeout(r, 800)); // well past DB_POOL_ACQUIRE_MS
        await lock.release();
        const results = await Promise.all(calls);
        const exhausted = results.filter((r) => r.code === Code.RESOURCE_EXHAUSTED);
        const ok = results.filter((r) => r.code === Code.OK);
        expect(exhausted.length + ok.length, 'only OK or RESOURCE_EXHAUSTED').to.equal(40);
        expect(exhausted.length).to.be.greaterThan(20);
        expect(ok.length, 'the calls holding connections finish once the lock goes').to.be.greaterThan(0);
        expect(exhausted[0]?.details).to.match(
          /no database connection became free within 300 ms; retry later/,
        );
        expect(
          Math.max(...exhausted.map((r) => r.ms)),
          'the excess fails fast, not at its deadline',
        ).to.be.lessThan(800);
        const shrinkMs = await until(
          'the pool back at its minimum',
          async () => s.app.stats().pool.size === 1,
          5000,
        );
        console.log(
          `      pool: ${exhausted.length} of 40 failed fast (≤ ${Math.max(...exhausted.map((r) => r.ms))} ms); back to 1 connection ${shrinkMs} ms after the load`,
        );
        me.close();
      } finally {
        await s.stop();
      }
    });
  });

  describe('deadlines', () => {
    it('abandons a call whose deadline passes while it waits for a connection: it never runs its query', async function () {
      this.timeout(30_000);
      const s = await startTestServer({
        DB_POOL_MAX: '2',
        DB_POOL_MIN: '0',
        DB_ECHO: 'true',
        LOG_LEVEL: 'info',
      });
      try {
        const reg = await s.client.auth.register(newAccount('deadline'));
        const me = connect(s.address, { token: reg.tokens?.accessToken, deadlineMs: 20_000 });
        const get = (deadlineMs?: number) =>
          me.users.getUser({ lookup: { $case: 'id', value: reg.user?.id ?? '' } }, { deadlineMs });
        const lock = await lockUsers(s.db.url);
        const holders = [get(), get()]; // take both connections, wait on the lock
        await until('both connections busy', async () => s.app.stats().pool.using === 2, 5000, 10);
        // the first query of every GetUser is the session check; the abandoned calls must never run it
        const sessionChecks = () =>
          s.logs.filter((l) => l.includes('"msg":"sql"') && l.includes('FROM sessions s JOIN users u'))
            .length;
        const sqlBefore = sessionChecks();
        const late = await Promise.allSettled(Array.from({ length: 10 }, () => get(300)));
        for (const r of late)
          expect(r.status === 'rejected' && (r.reason as ServiceError).code).to.equal(Code.DEADLINE_EXCEEDED);
        await lock.release();
        await Promise.all(holders);
        await until(
          'the waiters to be handed connections and give them back',
          async () => s.app.stats().pool.waiting === 0,
          5000,
        );
        await new Promise((r) => setTimeout(r, 200));
        expect(sessionChecks() - sqlBefore, 'no query ran for the 10 abandoned calls').to.equal(0);
        expect(s.logs.filter((l) => l.includes('"code":"CANCELLED"')).length).to.be.at.least(10);
        me.close();
      } finally {
        await s.stop();
      }
    });

    it('abandons a call whose deadline passes while it waits for bcrypt: no hash is started for it', async function () {
      this.timeout(30_000);
      const s = await startTestServer({ BCRYPT_ROUNDS: '12', HASH_CONCURRENCY: '1', LOG_LEVEL: 'warn' });
      try {
        const acct = newAccount('hash');
        await s.client.auth.register(acct);
        const before = s.app.stats().hashing.started;
        const first = s.client.auth.login(acct); // holds the only hashing slot for ~0.25 s
        await until('hashing busy', async () => s.app.stats().hashing.running === 1, 5000, 5);
        const late = await Promise.allSettled(
          Array.from({ length: 5 }, () => s.client.auth.login(acct, { deadlineMs: 60 })),
        );
        for (const r of late)
          expect(r.status === 'rejected' && (r.reason as ServiceError).code).to.equal(Code.DEADLINE_EXCEEDED);
        await first;
        await until('queue empty', async () => s.app.stats().hashing.waiting === 0, 5000);
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
          } catch {
            return; // the server died: this chain's last request may or may not have committed
          }
        }
      });
      await new Promise((r) => setTimeout(r, 1500));
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
