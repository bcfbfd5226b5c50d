/**
 * The read cache (CACHE=on, the default) across instances: two servers on one database, each with
 * its own cache and listener. Entries never expire here (CACHE_TTL_MS of an hour), so whatever a
 * server learns of a change it learns from a notice, or from a change it made itself.
 */
import { expect } from 'chai';
import pg from 'pg';
import { Code, type ConnectSphereClient } from '../src/client.js';
import { freePort } from '../src/db/embedded.js';
import { LISTENER_APPLICATION_NAME } from '../src/db/listener.js';
import type { TokenPair } from '../src/gen/connectsphere/auth/v1/auth.js';
import { scrape, seriesValue } from './helpers/metrics.js';
import { createTestDatabase, type TestDatabase } from './helpers/postgres.js';
import { runCli } from './helpers/process.js';
import { startTestProxy, type TestProxy } from './helpers/proxy.js';
import { expectCode, newAccount, startTestServer, type TestServer } from './helpers/server.js';
import { until } from './helpers/wait.js';

const NEVER_EXPIRES = { CACHE_TTL_MS: '3600000' };
const tokensOf = (t: TokenPair | undefined): TokenPair => {
  if (!t) throw new Error('no tokens in the response');
  return t;
};

describe('read cache: sessions and users served without the database, evicted by PostgreSQL notices', () => {
  let db: TestDatabase;
  let proxy: TestProxy;
  let a: TestServer;
  let b: TestServer;
  let bOps: number;
  before(async () => {
    db = await createTestDatabase();
    proxy = await startTestProxy(db.url);
    bOps = await freePort();
    a = await startTestServer({ ...NEVER_EXPIRES, OPS_PORT: String(await freePort()) }, { database: db });
    // B listens through a proxy the tests can cut (its pool goes straight to the database)
    b = await startTestServer(
      { ...NEVER_EXPIRES, OPS_PORT: String(bOps), CACHE_LISTEN_URL: proxy.url, CACHE_LISTEN_PING_MS: '1000' },
      { database: db },
    );
    await until(
      'both caches listening',
      () => !!a.app.stats().cache?.active && !!b.app.stats().cache?.active,
    );
  });
  after(async () => {
    await b?.stop({ keepDatabase: true });
    await a?.stop({ keepDatabase: true });
    await proxy?.close();
    await db?.drop();
  });

  const signUp = async (on: TestServer = a) => {
    const acct = newAccount('cache');
    const reg = await on.client.auth.register(acct);
    return { acct, userId: reg.user?.id ?? '', tokens: tokensOf(reg.tokens) };
  };
  const validate = (on: TestServer, accessToken: string) => on.client.auth.validateToken({ accessToken });
  const sessionHits = async () =>
    seriesValue(await scrape(bOps), 'cache_requests_total', { kind: 'session', result: 'hit' }) ?? 0;
  /** Makes B hold the token's session in its cache, and proves it does (the second answer is a hit). */
  const cachedOnB = async (accessToken: string) => {
    expect((await validate(b, accessToken)).active).to.equal(true);
    // (a fill is refused when any notice arrived while its read was in flight: then read again)
    await until('a ValidateToken on B served from its cache', async () => {
      const before = await sessionHits();
      expect((await validate(b, accessToken)).active).to.equal(true);
      return (await sessionHits()) === before + 1;
    });
  };
  /** SQL behind every server's back, with no wait for any server (TestServer.sql waits for its own). */
  const behindTheirBack = async (text: string, values: unknown[] = []) => {
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    try {
      return (await c.query(text, values)).rows;
    } finally {
      await c.end();
    }
  };
  const listeners = async () => {
    const rows = await a.sql<{ n: number }>(
      'SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = $2',
      [db.name, LISTENER_APPLICATION_NAME],
    );
    return rows[0]?.n ?? 0;
  };

  it('serves a repeated ValidateToken and GetUser from the cache, counting hits and misses on /metrics', async () => {
    const { tokens, userId } = await signUp();
    const before = await scrape(bOps);
    const me = b.client.withToken(tokens.accessToken);
    for (let i = 0; i < 5; i++)
      expect((await me.users.getUser({ lookup: { $case: 'id', value: userId } })).id).to.equal(userId);
    const after = await scrape(bOps);
    const delta = (labels: Record<string, string>) =>
      (seriesValue(after, 'cache_requests_total', labels) ?? 0) -
      (seriesValue(before, 'cache_requests_total', labels) ?? 0);
    // the first GetUser reads the database (caller and target together), the next four do not
    expect(delta({ kind: 'user', result: 'miss' })).to.equal(1);
    expect(delta({ kind: 'user', result: 'hit' })).to.equal(4);
    expect(seriesValue(after, 'cache_listener_up')).to.equal(1);
    expect(seriesValue(after, 'cache_entries')).to.be.greaterThan(0);
  });

  describe('another instance learns of every kind of change', () => {
    it('logout', async () => {
      const { tokens } = await signUp();
      await cachedOnB(tokens.accessToken);
      await a.client.auth.logout({ refreshToken: tokens.refreshToken });
      await until('B answers inactive', async () => !(await validate(b, tokens.accessToken)).active, 10_000);
    });

    it('a session revoked by its owner', async () => {
      const { acct, tokens } = await signUp();
      const second = tokensOf((await a.client.auth.login(acct)).tokens);
      await cachedOnB(tokens.accessToken);
      const mine = a.client.withToken(second.accessToken);
      const other = (await mine.auth.listSessions({})).sessions.find((x) => !x.current);
      await mine.auth.revokeSession({ sessionId: other?.id ?? '' });
      await until('B answers inactive', async () => !(await validate(b, tokens.accessToken)).active, 10_000);
    });

    it('a replayed refresh token (the session ends)', async () => {
      const { tokens } = await signUp();
      const next = tokensOf((await a.client.auth.refreshToken({ refreshToken: tokens.refreshToken })).tokens);
      await cachedOnB(next.accessToken);
      await expectCode(
        a.client.auth.refreshToken({ refreshToken: tokens.refreshToken }),
        Code.UNAUTHENTICATED,
      );
      await until('B answers inactive', async () => !(await validate(b, next.accessToken)).active, 10_000);
    });

    it('a password change (every other session ends)', async () => {
      const { acct, tokens } = await signUp();
      const other = tokensOf((await a.client.auth.login(acct)).tokens);
      await cachedOnB(other.accessToken);
      await a.client
        .withToken(tokens.accessToken)
        .auth.changePassword({ currentPassword: acct.password, newPassword: 'an entirely new passphrase 9' });
      await until('B answers inactive', async () => !(await validate(b, other.accessToken)).active, 10_000);
    });

    it('an email change (the new email at once, the old one free)', async () => {
      const { acct, userId, tokens } = await signUp();
      await cachedOnB(tokens.accessToken);
      const me = b.client.withToken(tokens.accessToken);
      expect((await me.users.getUser({ lookup: { $case: 'email', value: acct.email } })).id).to.equal(userId);
      const newEmail = `moved-${Date.now()}@example.com`;
      await a.client.withToken(tokens.accessToken).users.updateUser({
        user: { id: userId, email: newEmail, displayName: '', roles: [] },
        currentPassword: acct.password,
        updateMask: ['email'],
      });
      await until(
        'B reports the new email',
        async () => (await validate(b, tokens.accessToken)).email === newEmail,
        10_000,
      );
      expect((await me.users.getUser({ lookup: { $case: 'id', value: userId } })).email).to.equal(newEmail);
      await expectCode(
        me.users.getUser({ lookup: { $case: 'email', value: acct.email } }),
        Code.PERMISSION_DENIED,
      );
    });

    it('a role change by an admin, and one by a hand-written statement', async () => {
      const admin = await signUp();
      await behindTheirBack("UPDATE users SET roles = '{admin,user}' WHERE id = $1", [admin.userId]);
      await until(
        'B sees the admin',
        async () => (await validate(b, admin.tokens.accessToken)).roles.includes('admin'),
        10_000,
      );
      const target = await signUp();
      await cachedOnB(target.tokens.accessToken);
      await a.client.withToken(admin.tokens.accessToken).users.updateUser({
        user: { id: target.userId, email: '', displayName: '', roles: ['user', 'admin'] },
        currentPassword: '',
        updateMask: ['roles'],
      });
      await until(
        'B reports the new roles',
        async () => (await validate(b, target.tokens.accessToken)).roles.includes('admin'),
        10_000,
      );
    });

    it('a deleted user', async () => {
      const { userId, tokens } = await signUp();
      await cachedOnB(tokens.accessToken);
      await a.client.withToken(tokens.accessToken).users.deleteUser({ id: userId });
      await until('B answers inactive', async () => !(await validate(b, tokens.accessToken)).active, 10_000);
    });

    it('a session ended by a hand-written statement (no server was told)', async () => {
      const { tokens, userId } = await signUp();
      await cachedOnB(tokens.accessToken);
      await behindTheirBack(
        "UPDATE sessions SET revoked_at = now(), revoke_reason = 'admin' WHERE user_id = $1",
        [userId],
      );
      await until('B answers inactive', async () => !(await validate(b, tokens.accessToken)).active, 10_000);
    });

    it('a service account deleted by the operator command, or its scopes changed', async () => {
      const cli = (args: string[]) => runCli(['service-account', ...args], { DATABASE_URL: db.url });
      const made = await cli(['create', 'cache-directory', '--scopes', 'users.read']);
      expect(made.code, made.output).to.equal(0);
      const svc = JSON.parse(
        made.output.slice(made.output.indexOf('{'), made.output.lastIndexOf('}') + 1),
      ) as {
        client_id: string;
        client_secret: string;
      };
      const { userId } = await signUp();
      const issued = await b.client.auth.issueServiceToken({
        clientId: svc.client_id,
        clientSecret: svc.client_secret,
      });
      const asService = b.client.withToken(issued.accessToken);
      const read = () => asService.users.getUser({ lookup: { $case: 'id', value: userId } });
      expect((await read()).id).to.equal(userId);
      expect((await read()).id).to.equal(userId); // cached now
      await behindTheirBack(
        "UPDATE service_accounts SET scopes = '{tokens.introspect}' WHERE client_id = $1",
        [svc.client_id],
      );
      await until(
        'B refuses the scope taken away',
        () =>
          read().then(
            () => false,
            (e) => e.code === Code.PERMISSION_DENIED,
          ),
        10_000,
      );
      await behindTheirBack("UPDATE service_accounts SET scopes = '{users.read}' WHERE client_id = $1", [
        svc.client_id,
      ]);
      await until(
        'B allows it again',
        () =>
          read().then(
            () => true,
            () => false,
          ),
        10_000,
      );
      const deleted = await cli(['delete', 'cache-directory']);
      expect(deleted.code, deleted.output).to.equal(0);
      await until(
        'B refuses the deleted account',
        () =>
          read().then(
            () => false,
            (e) => e.code === Code.UNAUTHENTICATED,
          ),
        10_000,
      );
    });
  });

  it('the instance that made a change never answers from a stale entry of it, in any trial', async () => {
    // B hears every notice 300 ms late: what it knows at once of its own changes, it knows by itself
    proxy.delay(300);
    try {
      for (let trial = 0; trial < 25; trial++) {
        const { acct, userId, tokens } = await signUp(b);
        const other = tokensOf((await b.client.auth.login(acct)).tokens);
        const third = tokensOf((await b.client.auth.login(acct)).tokens);
        const me = b.client.withToken(tokens.accessToken);
        const self = () => me.users.getUser({ lookup: { $case: 'id', value: userId } });
        await self();
        await self();
        await me.users.updateUser({
          user: { id: userId, email: '', displayName: `Renamed ${trial}`, roles: [] },
          currentPassword: '',
          updateMask: ['display_name'],
        });
        expect((await self()).displayName, `trial ${trial}: display name`).to.equal(`Renamed ${trial}`);
        // (that change dropped every cached session of the user: cache them again)
        await cachedOnB(tokens.accessToken);
        await cachedOnB(other.accessToken);
        await cachedOnB(third.accessToken);
        await b.client.auth.logout({ refreshToken: other.refreshToken });
        expect((await validate(b, other.accessToken)).active, `trial ${trial}: logout`).to.equal(false);
        const thirdId = (await me.auth.listSessions({})).sessions.find((x) => !x.current && x.id)?.id ?? '';
        await me.auth.revokeSession({ sessionId: thirdId });
        expect((await validate(b, third.accessToken)).active, `trial ${trial}: revoke`).to.equal(false);
        const email = `same-${trial}-${Date.now()}@example.com`;
        await b.client.withToken(tokens.accessToken).users.updateUser({
          user: { id: userId, email, displayName: '', roles: [] },
          currentPassword: acct.password,
          updateMask: ['email'],
        });
        expect((await validate(b, tokens.accessToken)).email, `trial ${trial}: email`).to.equal(email);
        await b.client.withToken(tokens.accessToken).users.deleteUser({ id: userId });
        expect((await validate(b, tokens.accessToken)).active, `trial ${trial}: delete`).to.equal(false);
      }
      expect(b.app.stats().cache?.active, 'B kept listening (the delay is below its ping)').to.equal(true);
    } finally {
      proxy.delay(0);
    }
  });

  it('once another instance has seen a revocation it never answers active again, under concurrent lookups', async () => {
    for (let trial = 0; trial < 10; trial++) {
      const { tokens } = await signUp();
      await cachedOnB(tokens.accessToken);
      // each answer notes whether its request was sent after B had already answered inactive once
      const answers: { active: boolean; sentAfterInactive: boolean }[] = [];
      let sawInactive = false;
      let done = false;
      const poll = async () => {
        while (!done) {
          const sentAfterInactive = sawInactive;
          const { active } = await validate(b, tokens.accessToken);
          if (!active) sawInactive = true;
          answers.push({ active, sentAfterInactive });
        }
      };
      const pollers = Array.from({ length: 4 }, poll);
      await a.client.auth.logout({ refreshToken: tokens.refreshToken });
      await until('B answers inactive', () => sawInactive, 10_000);
      await until(
        'many answers after it',
        () => answers.filter((x) => x.sentAfterInactive).length > 40,
        10_000,
      );
      done = true;
      await Promise.all(pollers);
      // (a request sent before that may still have been answered from before the notice: in flight)
      expect(
        answers.filter((x) => x.sentAfterInactive && x.active),
        `trial ${trial}`,
      ).to.deep.equal([]);
    }
  });

  it('while its listener is cut off the cache is bypassed and empty: a revocation made meanwhile is never missed', async () => {
    const { tokens } = await signUp();
    const other = await signUp();
    await cachedOnB(tokens.accessToken);
    await cachedOnB(other.tokens.accessToken);
    expect(await listeners()).to.equal(2);
    // traffic on B throughout
    let done = false;
    const answers: { active: boolean; afterLogout: boolean }[] = [];
    let loggedOut = false;
    const poll = async () => {
      while (!done) {
        const after = loggedOut;
        answers.push({ active: (await validate(b, tokens.accessToken)).active, afterLogout: after });
      }
    };
    const pollers = [poll(), poll()];
    proxy.refuse(true); // B cannot listen again until the test says so
    await a.sql(
      'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = $2',
      [db.name, LISTENER_APPLICATION_NAME],
    );
    await until('B bypasses its cache', () => b.app.stats().cache?.active === false, 10_000);
    expect(b.app.stats().cache?.entries, 'emptied').to.equal(0);
    await a.client.auth.logout({ refreshToken: tokens.refreshToken }); // B hears no notice of this
    loggedOut = true;
    expect((await validate(b, tokens.accessToken)).active).to.equal(false);
    const bypasses = await scrape(bOps);
    expect(seriesValue(bypasses, 'cache_listener_up')).to.equal(0);
    expect(
      seriesValue(bypasses, 'cache_requests_total', { kind: 'session', result: 'bypass' }),
    ).to.be.greaterThan(0);
    expect(b.app.stats().cache?.active, 'B was still cut off through all of this').to.equal(false);
    proxy.refuse(false);
    await until('B listens again', () => b.app.stats().cache?.active === true, 20_000);
    await until('A listens again', () => a.app.stats().cache?.active === true, 20_000);
    expect(
      (await validate(b, tokens.accessToken)).active,
      'not from a cache entry of before the cut',
    ).to.equal(false);
    done = true;
    await Promise.all(pollers);
    expect(answers.filter((x) => x.afterLogout && x.active)).to.deep.equal([]);
    // and caching resumed
    await cachedOnB(other.tokens.accessToken);
    expect(seriesValue(await scrape(bOps), 'cache_bypass_seconds_total')).to.be.greaterThan(0);
  });

  it('gives up a listening connection that stops answering (half-open) and bypasses until it listens again', async () => {
    const { tokens } = await signUp();
    await cachedOnB(tokens.accessToken);
    proxy.silence(true); // no FIN, no RST: the notices just stop coming
    await until(
      'B notices the silence (a ping unanswered)',
      () => b.app.stats().cache?.active === false,
      10_000,
    );
    await a.client.auth.logout({ refreshToken: tokens.refreshToken });
    expect((await validate(b, tokens.accessToken)).active).to.equal(false);
    proxy.silence(false);
    await until('B listens again', () => b.app.stats().cache?.active === true, 20_000);
    expect((await validate(b, tokens.accessToken)).active).to.equal(false);
  });
});

describe('read cache: bounds, and CACHE=off', () => {
  let s: TestServer | undefined;
  afterEach(async () => {
    await s?.stop();
    s = undefined;
  });
  const countListeners = async (server: TestServer) =>
    (
      await server.sql<{ n: number }>(
        'SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = $2',
        [server.db.name, LISTENER_APPLICATION_NAME],
      )
    )[0]?.n;

  it('holds at most CACHE_MAX_ENTRIES entries however many sessions it sees', async () => {
    s = await startTestServer({ CACHE_MAX_ENTRIES: '20', ...NEVER_EXPIRES });
    const server = s;
    await until('listening', () => server.app.stats().cache?.active === true);
    const client: ConnectSphereClient = server.client;
    for (let i = 0; i < 60; i++) {
      const reg = await client.auth.register(newAccount('bound'));
      const token = reg.tokens?.accessToken ?? '';
      expect((await client.auth.validateToken({ accessToken: token })).active).to.equal(true);
      expect((await client.auth.validateToken({ accessToken: token })).active).to.equal(true);
      expect(server.app.stats().cache?.entries).to.be.at.most(20);
    }
    expect(server.app.stats().cache?.entries).to.equal(20);
  });

  it('CACHE=off: no cache, no listener, and a change made behind the server’s back counts at once', async () => {
    s = await startTestServer({ CACHE: 'off' });
    const server = s;
    expect(server.app.stats().cache).to.equal(undefined);
    expect(await countListeners(server)).to.equal(0);
    const reg = await server.client.auth.register(newAccount('off'));
    const token = reg.tokens?.accessToken ?? '';
    expect((await server.client.auth.validateToken({ accessToken: token })).active).to.equal(true);
    expect((await server.client.auth.validateToken({ accessToken: token })).active).to.equal(true);
    await server.sql("UPDATE sessions SET revoked_at = now(), revoke_reason = 'admin' WHERE user_id = $1", [
      reg.user?.id,
    ]);
    expect((await server.client.auth.validateToken({ accessToken: token })).active).to.equal(false);
  });

  it('listens on one connection of its own, outside the pool', async () => {
    s = await startTestServer({ DB_POOL_MAX: '3', DB_POOL_MIN: '3' });
    const server = s;
    await until('listening', () => server.app.stats().cache?.active === true);
    expect(await countListeners(server)).to.equal(1);
    const pooled = await server.sql<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = 'connectsphere-identity'",
      [server.db.name],
    );
    expect(pooled[0]?.n).to.equal(server.app.stats().pool.size);
  });
});
