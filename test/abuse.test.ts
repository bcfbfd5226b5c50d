import { expect } from 'chai';
import { Code, connect, retryDelaySeconds, type ServiceError } from '../src/client.js';
import { createTestDatabase } from './helpers/postgres.js';
import { spawnServer } from './helpers/process.js';
import { expectCode, newAccount, seedAccounts, startTestServer, type TestServer } from './helpers/server.js';
import { until } from './helpers/wait.js';

describe('abuse', () => {
  describe('login throttling', () => {
    let s: TestServer;
    before(async () => {
      s = await startTestServer({
        LOGIN_MAX_FAILURES: '5',
        LOGIN_LOCKOUT_BASE_S: '1',
        LOGIN_LOCKOUT_MAX_S: '60',
      });
    });
    after(async () => {
      await s?.stop();
    });

    it('refuses an account for a growing delay after 5 failures, even with the right password; success resets', async function () {
      this.timeout(30_000);
      const acct = newAccount('throttle');
      await s.client.auth.register(acct);
      const wrong = { email: acct.email, password: 'wrong password' };
      const lockPassed = () =>
        until('the lock to pass', async () => {
          const [row] = await s.sql(
            'SELECT locked_until <= now() AS over FROM login_throttle WHERE key = $1',
            [`pair:${acct.email} 127.0.0.1`],
          );
          return row?.over === true;
        });
      for (let i = 0; i < 5; i++) await expectCode(s.client.auth.login(wrong), Code.UNAUTHENTICATED);
      const locked = await expectCode(s.client.auth.login(acct), Code.RESOURCE_EXHAUSTED, /retry in 1 s/);
      expect(locked.details).to.equal('too many failed attempts; retry in 1 s');
      expect(retryDelaySeconds(locked), 'google.rpc.RetryInfo').to.equal(1);
      await lockPassed();
      await expectCode(s.client.auth.login(wrong), Code.UNAUTHENTICATED); // 6th failure: 2 s
      await expectCode(s.client.auth.login(acct), Code.RESOURCE_EXHAUSTED, /retry in 2 s/);
      await lockPassed();
      expect(
        (await s.client.auth.login(acct)).user?.email,
        'the right password once the delay has passed',
      ).to.equal(acct.email);
      for (let i = 0; i < 4; i++) await expectCode(s.client.auth.login(wrong), Code.UNAUTHENTICATED);
      expect((await s.client.auth.login(acct)).user?.email, 'the count restarted after the success').to.equal(
        acct.email,
      );
    });

    it('keeps its state in PostgreSQL, so another server instance on the same database enforces it', async () => {
      const acct = newAccount('throttle');
      await s.client.auth.register(acct);
      for (let i = 0; i < 5; i++)
        await expectCode(s.client.auth.login({ ...acct, password: 'nope nope' }), Code.UNAUTHENTICATED);
      const other = await startTestServer(
        { LOGIN_MAX_FAILURES: '5' },
        { database: { ...s.db, drop: async () => {} } },
      );
      try {
        await expectCode(other.client.auth.login(acct), Code.RESOURCE_EXHAUSTED, /retry in/);
      } finally {
        await other.stop();
      }
    });

    it('throttles an unknown email the same way (no hint whether the account exists)', async () => {
      const ghost = { email: `ghost-${Date.now()}@example.com`, password: 'whatever1' };
      for (let i = 0; i < 5; i++)
        await expectCode(s.client.auth.login(ghost), Code.UNAUTHENTICATED, /invalid email or password/);
      const known = newAccount('throttle');
      await s.client.auth.register(known);
      for (let i = 0; i < 5; i++)
        await expectCode(s.client.auth.login({ ...known, password: 'nope nope' }), Code.UNAUTHENTICATED);
      const ghostAnswer = await expectCode(s.client.auth.login(ghost), Code.RESOURCE_EXHAUSTED);
      const knownAnswer = await expectCode(s.client.auth.login(known), Code.RESOURCE_EXHAUSTED);
      expect(ghostAnswer.details)
        .to.equal(knownAnswer.details)
        .and.equal('too many failed attempts; retry in 1 s');
    });
  });

  describe('hashing flood', () => {
    // GetUser's latency during a flood is a number, so it is measured by `npm run bench` (GetUser p99
    // with and without a Login flood); here, what the flood must not do.
    it('refuses hashing work beyond the queue with RESOURCE_EXHAUSTED, and GetUser keeps answering during a login flood', async function () {
      this.timeout(120_000);
      const s = await startTestServer({ BCRYPT_ROUNDS: '10', HASH_QUEUE_MAX: '4', LOG_LEVEL: 'warn' });
      const flooder = connect(s.address, { deadlineMs: 60_000 });
      try {
        const acct = newAccount('flood');
        const reg = await s.client.auth.register(acct);
        const me = connect(s.address, { token: reg.tokens?.accessToken, deadlineMs: 60_000 });
        const codes: Record<string, number> = {};
        const refusals: string[] = [];
        let flooding = true;
        // 32 concurrent logins of 32 accounts: far more than the hashing slots (one per core) plus a
        // queue of 4 (of one account, all but LOGIN_MAX_FAILURES would wait for those in flight)
        const accounts = await seedAccounts(s, 32, 'flood');
        const flood = accounts.map(async (account) => {
          while (flooding) {
            const code = await flooder.auth.login(account).then(
              () => 'OK',
              (e: ServiceError) => {
                if (e.code === Code.RESOURCE_EXHAUSTED) refusals.push(e.details);
                return Code[e.code] as string;
              },
            );
            codes[code] = (codes[code] ?? 0) + 1;
            if (code === 'RESOURCE_EXHAUSTED') await new Promise((r) => setImmediate(r));
          }
        });
        let gets = 0;
        const getUserCodes = new Set<string>();
        const reads = Array.from({ length: 4 }, async () => {
          while (flooding) {
            getUserCodes.add(
              await me.users.getUser({ lookup: { $case: 'id', value: reg.user?.id ?? '' } }).then(
                () => 'OK',
                (e: ServiceError) => Code[e.code] as string,
              ),
            );
            gets++;
          }
        });
        await until('the queue full', () => s.app.stats().hashing.waiting === 4);
        await until(
          'the flood refused and served, GetUser answered meanwhile',
          () => {
            return (codes.RESOURCE_EXHAUSTED ?? 0) > 20 && (codes.OK ?? 0) > 10 && gets > 100;
          },
          90_000,
        );
        flooding = false;
        await Promise.all([...flood, ...reads]);
        me.close();
        expect(Object.keys(codes), 'the flood got answers or refusals, nothing else').to.have.members([
          'OK',
          'RESOURCE_EXHAUSTED',
        ]);
        expect([...new Set(refusals)]).to.include(
          'too many password operations in progress; retry in a few seconds',
        );
        for (const r of refusals)
          expect(r).to.equal('too many password operations in progress; retry in a few seconds');
        expect([...getUserCodes], 'every GetUser during the flood succeeded').to.deep.equal(['OK']);
        console.log(`      flood logins: ${JSON.stringify(codes)}; ${gets} GetUser calls meanwhile, all OK`);
      } finally {
        flooder.close();
        await s.stop();
      }
    });
  });

  describe('secrets never reach the logs', () => {
    it('with LOG_LEVEL=debug and DB_ECHO=true: no password, hash, access or refresh token; with DB_ECHO=false: no SQL', async function () {
      this.timeout(120_000);
      const db = await createTestDatabase();
      try {
        const run = async (echo: boolean) => {
          const proc = await spawnServer({ DATABASE_URL: db.url, LOG_LEVEL: 'debug', DB_ECHO: String(echo) });
          const { connect } = await import('../src/client.js');
          const c = connect(`127.0.0.1:${proc.port}`);
          const acct = newAccount('secret');
          const secrets: string[] = [acct.password];
          try {
            const reg = await c.auth.register(acct);
            await expectCode(c.auth.register(acct), Code.ALREADY_EXISTS);
            await expectCode(c.auth.login({ ...acct, password: 'wrong-password-x' }), Code.UNAUTHENTICATED);
            const login = await c.auth.login(acct);
            const refreshed = await c.auth.refreshToken({ refreshToken: login.tokens?.refreshToken ?? '' });
            await expectCode(
              c.auth.refreshToken({ refreshToken: login.tokens?.refreshToken ?? '' }),
              Code.UNAUTHENTICATED,
            );
            const newPassword = `new-${acct.password}`;
            const me = c.withToken(reg.tokens?.accessToken ?? '');
            const changed = await me.auth.changePassword({ currentPassword: acct.password, newPassword });
            await c.auth.validateToken({ accessToken: changed.tokens?.accessToken ?? '' });
            await c.auth.logout({ refreshToken: changed.tokens?.refreshToken ?? '' });
            secrets.push(newPassword, 'wrong-password-x');
            for (const t of [reg.tokens, login.tokens, refreshed.tokens, changed.tokens]) {
              secrets.push(t?.accessToken ?? 'missing', t?.refreshToken ?? 'missing');
              // the signature alone is enough to matter
              secrets.push((t?.accessToken ?? '').split('.')[2] ?? 'missing');
            }
            const pgc = new (await import('pg')).default.Client({ connectionString: db.url });
            await pgc.connect();
            const rows = await pgc.query('SELECT password_hash FROM users WHERE email = $1', [acct.email]);
            const tokenRows = await pgc.query('SELECT token_hash FROM refresh_tokens');
            await pgc.end();
            secrets.push(
              ...rows.rows.map((r) => r.password_hash as string),
              ...tokenRows.rows.map((r) => r.token_hash as string),
            );
          } finally {
            c.close();
            proc.child.kill('SIGTERM');
            await proc.exited;
          }
          return { logs: proc.output.join('\n'), secrets };
        };

        const echo = await run(true);
        expect(echo.logs).to.match(/"msg":"sql"/);
        expect(echo.logs).to.match(/INSERT INTO users/);
        for (const secret of echo.secrets)
          expect(echo.logs.includes(secret), `a secret in the logs: ${secret.slice(0, 12)}…`).to.equal(false);

        const quiet = await run(false);
        expect(quiet.logs).to.match(/"level":20/); // debug lines are there
        expect(quiet.logs).to.not.match(/\b(SELECT|INSERT INTO|UPDATE \w+ SET|DELETE FROM)\b/);
        for (const secret of quiet.secrets) expect(quiet.logs.includes(secret)).to.equal(false);
      } finally {
        await db.drop();
      }
    });
  });
});
