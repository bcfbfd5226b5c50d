/**
 * The security rules, tried as an attacker would, against the real server and PostgreSQL. Every
 * call here comes from 127.0.0.1, which the servers trust as a proxy (TRUSTED_PROXIES), so each
 * test says where a call "comes from" with `x-forwarded-for` (documentation addresses only).
 */
import { Metadata } from '@grpc/grpc-js';
import { expect } from 'chai';
import pg from 'pg';
import {
  Code,
  type ConnectSphereClient,
  connect,
  fieldViolations,
  retryDelaySeconds,
  type ServiceError,
} from '../src/client.js';
import type { User } from '../src/gen/connectsphere/user/v1/user.js';
import { runCli } from './helpers/process.js';
import { expectCode, newAccount, startTestServer, type TestServer } from './helpers/server.js';
import { until } from './helpers/wait.js';

const from = (address: string, metadata = new Metadata()) => {
  const md = metadata.clone();
  md.set('x-forwarded-for', address);
  return { metadata: md };
};
const codeOf = (p: Promise<unknown>) =>
  p.then(
    () => 'OK',
    (e: ServiceError) => Code[e.code] as string,
  );
const count = (codes: string[], code: string) => codes.filter((c) => c === code).length;

describe('security', () => {
  describe('where a call comes from (TRUSTED_PROXIES)', () => {
    let s: TestServer;
    afterEach(async () => {
      await s?.stop();
    });

    it("takes the right-most untrusted x-forwarded-for entry behind a trusted proxy, and ignores an untrusted peer's", async () => {
      s = await startTestServer({ TRUSTED_PROXIES: '127.0.0.1, 10.0.0.0/8' });
      const acct = newAccount('xff');
      await s.client.auth.register(acct);
      const login = await s.client.auth.login(acct, from('198.51.100.23, 203.0.113.4, 10.1.2.3'));
      const me = s.client.withToken(login.tokens?.accessToken ?? '');
      const { sessions } = await me.auth.listSessions({});
      expect(sessions.find((x) => x.current)?.clientAddress).to.equal('203.0.113.4');
      await s.stop();

      s = await startTestServer({ TRUSTED_PROXIES: '' });
      const other = newAccount('xff');
      const reg = await s.client.auth.register(other, from('203.0.113.99'));
      const list = await s.client.withToken(reg.tokens?.accessToken ?? '').auth.listSessions({});
      expect(list.sessions[0]?.clientAddress, 'not trusted: the peer itself').to.equal('127.0.0.1');
    });
  });

  describe('login throttling', () => {
    let s: TestServer;
    before(async () => {
      s = await startTestServer({
        TRUSTED_PROXIES: '127.0.0.1',
        LOGIN_MAX_FAILURES: '5',
        LOGIN_SOURCE_MAX_FAILURES: '20',
        LOGIN_ACCOUNT_MAX_FAILURES: '12',
        LOGIN_LOCKOUT_BASE_S: '60',
        BCRYPT_ROUNDS: '6',
      });
    });
    after(async () => {
      await s?.stop();
    });

    it('evaluates at most LOGIN_MAX_FAILURES of 40 parallel guesses (39 wrong, 1 right) from one address', async () => {
      const acct = newAccount('race');
      await s.client.auth.register(acct, from('198.51.100.1'));
      const attacker = from('203.0.113.10');
      const before = s.app.stats().hashing.started;
      const codes = await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          codeOf(s.client.auth.login(i === 17 ? acct : { ...acct, password: `guess number ${i}` }, attacker)),
        ),
      );
      const evaluated = count(codes, 'UNAUTHENTICATED') + count(codes, 'OK');
      expect(evaluated, JSON.stringify(codes)).to.be.at.most(5);
      expect(count(codes, 'RESOURCE_EXHAUSTED')).to.equal(40 - evaluated);
      expect(s.app.stats().hashing.started - before, 'bcrypt compares run').to.equal(evaluated);
      // the owner, from their own address, is not locked out
      expect((await s.client.auth.login(acct, from('198.51.100.1'))).user?.email).to.equal(acct.email);
    });

    it('refuses a locked pair even with the right password, with google.rpc.RetryInfo and the same message as for an unknown account', async () => {
      const acct = newAccount('lock');
      await s.client.auth.register(acct);
      const ghost = { email: `ghost-${acct.email}`, password: 'whatever it is' };
      const where = from('203.0.113.11');
      for (let i = 0; i < 5; i++) {
        await expectCode(
          s.client.auth.login({ ...acct, password: 'wrong password!' }, where),
          Code.UNAUTHENTICATED,
        );
        await expectCode(s.client.auth.login(ghost, where), Code.UNAUTHENTICATED);
      }
      const known = await expectCode(s.client.auth.login(acct, where), Code.RESOURCE_EXHAUSTED);
      const unknown = await expectCode(s.client.auth.login(ghost, where), Code.RESOURCE_EXHAUSTED);
      expect(known.details)
        .to.equal(unknown.details)
        .and.match(/^too many failed attempts; retry in \d+ s$/);
      expect(retryDelaySeconds(known)).to.be.within(59, 60);
      expect(retryDelaySeconds(unknown)).to.be.within(59, 60);
    });

    it('clears the pair after a success, counted from fresh state', async () => {
      const acct = newAccount('fresh');
      await s.client.auth.register(acct);
      const where = from('203.0.113.12');
      for (let round = 0; round < 2; round++) {
        for (let i = 0; i < 4; i++)
          await expectCode(
            s.client.auth.login({ ...acct, password: 'nope nope!' }, where),
            Code.UNAUTHENTICATED,
          );
        expect((await s.client.auth.login(acct, where)).user?.email, `round ${round}`).to.equal(acct.email);
      }
      const [row] = await s.sql('SELECT count(*)::int AS n FROM login_throttle WHERE key = $1', [
        `pair:${acct.email} 203.0.113.12`,
      ]);
      expect(row?.n, 'no counter left for the pair').to.equal(0);
    });

    it('locks an address spraying many accounts after LOGIN_SOURCE_MAX_FAILURES, and no other address', async () => {
      const sprayer = from('203.0.113.13');
      const codes: string[] = [];
      for (let i = 0; i < 22; i++) {
        codes.push(
          await codeOf(
            s.client.auth.login(
              { email: `spray${i}-${Date.now()}@example.com`, password: 'Summer2026!' },
              sprayer,
            ),
          ),
        );
      }
      expect(count(codes, 'UNAUTHENTICATED')).to.equal(20);
      expect(count(codes, 'RESOURCE_EXHAUSTED')).to.equal(2);
      const acct = newAccount('bystander');
      await s.client.auth.register(acct);
      expect((await s.client.auth.login(acct, from('198.51.100.13'))).user?.email).to.equal(acct.email);
    });

    it('locks an account attacked from many addresses for everyone after LOGIN_ACCOUNT_MAX_FAILURES', async () => {
      const acct = newAccount('botnet');
      await s.client.auth.register(acct);
      for (let i = 0; i < 11; i++) {
        await expectCode(
          s.client.auth.login({ ...acct, password: 'botnet guess' }, from(`203.0.113.${100 + i}`)),
          Code.UNAUTHENTICATED,
        );
      }
      expect(
        (await s.client.auth.login(acct, from('198.51.100.50'))).user?.email,
        '11 of 12: still fine',
      ).to.equal(acct.email);
      for (let i = 0; i < 12; i++) {
        await codeOf(
          s.client.auth.login({ ...acct, password: 'botnet guess' }, from(`203.0.113.${120 + i}`)),
        );
      }
      await expectCode(s.client.auth.login(acct, from('198.51.100.51')), Code.RESOURCE_EXHAUSTED);
    });

    it('keeps its counters in PostgreSQL, so another instance on the same database enforces them', async () => {
      const acct = newAccount('shared');
      await s.client.auth.register(acct);
      const where = from('203.0.113.14');
      for (let i = 0; i < 5; i++)
        await expectCode(
          s.client.auth.login({ ...acct, password: 'nope nope!' }, where),
          Code.UNAUTHENTICATED,
        );
      const other = await startTestServer(
        { TRUSTED_PROXIES: '127.0.0.1' },
        { database: { ...s.db, drop: async () => {} } },
      );
      try {
        await expectCode(other.client.auth.login(acct, where), Code.RESOURCE_EXHAUSTED, /retry in/);
      } finally {
        await other.stop();
      }
    });
  });

  describe('current-password checks', () => {
    let s: TestServer;
    before(async () => {
      s = await startTestServer({ LOGIN_MAX_FAILURES: '3', LOGIN_LOCKOUT_BASE_S: '60' });
    });
    after(async () => {
      await s?.stop();
    });

    it('limits wrong current_password guesses per user (ChangePassword), then refuses even the right one', async () => {
      const acct = newAccount('reauth');
      const reg = await s.client.auth.register(acct);
      const me = s.client.withToken(reg.tokens?.accessToken ?? '');
      const change = (currentPassword: string) =>
        me.auth.changePassword({ currentPassword, newPassword: 'orbit lantern quietly' });
      for (let i = 0; i < 3; i++)
        await expectCode(change(`guess ${i}!`), Code.UNAUTHENTICATED, /current_password is incorrect/);
      const locked = await expectCode(
        change(acct.password),
        Code.RESOURCE_EXHAUSTED,
        /too many failed attempts/,
      );
      expect(retryDelaySeconds(locked)).to.be.greaterThan(0);
      await s.sql("UPDATE login_throttle SET locked_until = now() - interval '1 second' WHERE key = $1", [
        `user:${reg.user?.id}`,
      ]);
      expect((await change(acct.password)).tokens?.accessToken, 'once the lock ends').to.be.a('string');
    });
  });

  describe('the hashing queue is shared fairly', () => {
    it('gives one client address at most HASH_QUEUE_PER_SOURCE places; other addresses still get in', async function () {
      this.timeout(60_000);
      // cost 14: each compare holds the only slot for about a second, far longer than the test's steps
      const s = await startTestServer({
        TRUSTED_PROXIES: '127.0.0.1',
        BCRYPT_ROUNDS: '14',
        HASH_CONCURRENCY: '1',
        HASH_QUEUE_PER_SOURCE: '2',
        LOGIN_MAX_FAILURES: '100',
      });
      const client = s.client;
      try {
        const accounts = await Promise.all(
          [1, 2].map(async () => {
            const acct = { ...newAccount('fair'), password: 'correct horse battery staple' };
            await s.sql(
              `INSERT INTO users (id, email, password_hash, display_name, roles, created_at, updated_at)
             VALUES (gen_random_uuid(), $1, $2, 'Fair', '{user}', now(), now())`,
              [acct.email, '$2b$14$abcdefghijklmnopqrstuuNw2ABtMC8Hm6LgAx8ONdBt1Yq5wgdZO'],
            );
            return acct;
          }),
        );
        const [a, b] = accounts as unknown as [
          { email: string; password: string },
          { email: string; password: string },
        ];
        const flood = [
          client.auth.login(a, from('203.0.113.20')),
          client.auth.login(a, from('203.0.113.20')),
        ].map(codeOf);
        await until('the flooding address holds its 2 places', () => {
          const h = s.app.stats().hashing;
          return h.running + h.waiting === 2;
        });
        await expectCode(
          client.auth.login(a, from('203.0.113.20')),
          Code.RESOURCE_EXHAUSTED,
          /too many password operations/,
        );
        const other = codeOf(client.auth.login(b, from('198.51.100.20')));
        await until('the other address got a place', () => s.app.stats().hashing.waiting === 2);
        expect(await Promise.all([...flood, other]), 'wrong passwords, all evaluated').to.deep.equal([
          'UNAUTHENTICATED',
          'UNAUTHENTICATED',
          'UNAUTHENTICATED',
        ]);
      } finally {
        await s.stop();
      }
    });
  });

  describe('timing of a failed login against an older-cost hash', () => {
    it('pads a failed compare against a lower-cost hash to the current cost, not an unknown or current-cost one', async () => {
      const old = await startTestServer({ BCRYPT_ROUNDS: '4' });
      const acct = newAccount('cost');
      await old.client.auth.register(acct);
      await old.stop({ keepDatabase: true });
      const s = await startTestServer({ BCRYPT_ROUNDS: '6' }, { database: old.db });
      try {
        const padded = () => s.app.stats().hashing.padded;
        await expectCode(
          s.client.auth.login({ ...acct, email: `ghost-${acct.email}` }),
          Code.UNAUTHENTICATED,
        );
        expect(padded(), 'an unknown account (dummy hash at the current cost)').to.equal(0);
        await expectCode(s.client.auth.login({ ...acct, password: 'wrong password!' }), Code.UNAUTHENTICATED);
        expect(padded(), 'a cost-4 hash under BCRYPT_ROUNDS=6').to.equal(1);
        await s.client.auth.login(acct); // rehashed at cost 6
        await expectCode(s.client.auth.login({ ...acct, password: 'wrong password!' }), Code.UNAUTHENTICATED);
        expect(padded(), 'now at the current cost').to.equal(1);
      } finally {
        await s.stop();
      }
    });
  });

  describe('who sees what', () => {
    let s: TestServer;
    const signUp = async (prefix: string, displayName?: string) => {
      const acct = { ...newAccount(prefix), ...(displayName ? { displayName } : {}) };
      const reg = await s.client.auth.register(acct);
      return { acct, user: reg.user as User, client: s.client.withToken(reg.tokens?.accessToken ?? '') };
    };
    const makeAdmin = (id: string) => s.sql("UPDATE users SET roles = '{admin,user}' WHERE id = $1", [id]);
    before(async () => {
      s = await startTestServer();
    });
    after(async () => {
      await s?.stop();
    });

    it('shows others a public profile (id, display_name, create_time), oneself and admins everything', async () => {
      const ada = await signUp('ada');
      const bob = await signUp('bob');
      const byId = (c: ConnectSphereClient, id: string) =>
        c.users.getUser({ lookup: { $case: 'id', value: id } });
      const publicView = await byId(ada.client, bob.user.id);
      expect(publicView).to.deep.equal({
        id: bob.user.id,
        email: '',
        displayName: bob.user.displayName,
        roles: [],
        createTime: bob.user.createTime,
        updateTime: undefined,
      });
      expect(await byId(bob.client, bob.user.id)).to.deep.equal(bob.user);
      const batch = await ada.client.users.batchGetUsers({ ids: [bob.user.id, ada.user.id] });
      expect(batch.users.map((u) => u.email)).to.deep.equal(['', ada.user.email]);
      await makeAdmin(ada.user.id);
      expect((await byId(ada.client, bob.user.id)).email, 'an admin sees every field').to.equal(
        bob.user.email,
      );
    });

    it("answers GetUser by email only for one's own address: another is PERMISSION_DENIED whether or not it exists", async () => {
      const ada = await signUp('ada');
      const bob = await signUp('bob');
      const byEmail = (email: string) =>
        ada.client.users.getUser({ lookup: { $case: 'email', value: email } });
      expect((await byEmail(ada.acct.email.toUpperCase())).id).to.equal(ada.user.id);
      const taken = await expectCode(byEmail(bob.acct.email), Code.PERMISSION_DENIED);
      const free = await expectCode(byEmail(`nobody-${bob.acct.email}`), Code.PERMISSION_DENIED);
      expect(taken.details).to.equal(free.details);
    });

    it('lets non-admins search display names only: query of 3+ characters, at most 50 a page, public profiles', async () => {
      const tag = `srch${Date.now().toString(36)}`;
      const me = await signUp(`qzmail${tag}`, `${tag} Seeker`);
      for (let i = 0; i < 55; i++) await signUp(`${tag}x`, `${tag} Member ${i}`);
      const page = await me.client.users.listUsers({
        pageSize: 1000,
        pageToken: '',
        query: tag.toUpperCase(),
      });
      expect(page.users, 'page_size lowered to 50').to.have.length(50);
      expect(page.users.every((u) => u.email === '' || u.id === me.user.id)).to.equal(true);
      expect(page.users.every((u) => u.roles.length === 0 || u.id === me.user.id)).to.equal(true);
      const byEmail = await me.client.users.listUsers({
        pageSize: 10,
        pageToken: '',
        query: 'qzmail',
      });
      expect(byEmail.users, 'never a search of emails').to.deep.equal([]);
      for (const query of ['', 'ab', '  x ']) {
        const err = await expectCode(
          me.client.users.listUsers({ pageSize: 10, pageToken: '', query }),
          Code.INVALID_ARGUMENT,
        );
        expect(fieldViolations(err)[0]?.field).to.equal('query');
      }
    });

    it('never leaves the system without an admin, even when two admins demote each other at once', async () => {
      {
        // only these two admins exist in their own database
        const fresh = await startTestServer();
        try {
          const reg = async () => {
            const acct = newAccount('adm');
            const r = await fresh.client.auth.register(acct);
            await fresh.sql("UPDATE users SET roles = '{admin,user}' WHERE id = $1", [r.user?.id]);
            return { user: r.user as User, client: fresh.client.withToken(r.tokens?.accessToken ?? '') };
          };
          const [x, y] = [await reg(), await reg()];
          const demote = (by: typeof x, who: typeof x) =>
            codeOf(
              by.client.users.updateUser({
                user: { ...who.user, roles: ['user'] },
                currentPassword: '',
                updateMask: ['roles'],
              }),
            );
          const codes = await Promise.all([demote(x, y), demote(y, x)]);
          expect(codes.sort()).to.deep.equal(['FAILED_PRECONDITION', 'OK']);
          const [{ n } = { n: 0 }] = await fresh.sql(
            "SELECT count(*)::int AS n FROM users WHERE 'admin' = ANY(roles) AND deleted_at IS NULL",
          );
          expect(n).to.equal(1);
          const [last] = await fresh.sql<{ id: string }>("SELECT id FROM users WHERE 'admin' = ANY(roles)");
          const lastAdmin = [x, y].find((a) => a.user.id === last?.id) as typeof x;
          await expectCode(
            lastAdmin.client.users.deleteUser({ id: lastAdmin.user.id }),
            Code.FAILED_PRECONDITION,
            /last admin/,
          );
          const cli = await runCli(['revoke-admin', lastAdmin.user.email], { DATABASE_URL: fresh.db.url });
          expect(cli.code).to.equal(1);
          expect(cli.output).to.match(/last admin/);
        } finally {
          await fresh.stop();
        }
      }
    });

    it('checks permission before any value of a role change, bounds roles, and echoes at most 100 characters', async () => {
      const user = await signUp('roles');
      const huge = Array.from({ length: 100 }, (_, i) => `${'r'.repeat(500)}${i}`);
      await expectCode(
        user.client.users.updateUser({
          user: { ...user.user, roles: huge },
          currentPassword: '',
          updateMask: ['roles'],
        }),
        Code.PERMISSION_DENIED,
        /^only an admin can change roles$/,
      );
      await makeAdmin(user.user.id);
      const tooMany = await expectCode(
        user.client.users.updateUser({
          user: { ...user.user, roles: Array(17).fill('user') },
          currentPassword: '',
          updateMask: ['roles'],
        }),
        Code.INVALID_ARGUMENT,
      );
      expect(tooMany.details).to.match(/at most 16 roles/);
      const unknown = await expectCode(
        user.client.users.updateUser({
          user: { ...user.user, roles: ['user', ...huge.slice(0, 10)] },
          currentPassword: '',
          updateMask: ['roles'],
        }),
        Code.INVALID_ARGUMENT,
        /unknown role/,
      );
      expect(unknown.details.length).to.be.lessThan(220);
    });
  });

  describe('account changes', () => {
    let s: TestServer;
    before(async () => {
      s = await startTestServer();
    });
    after(async () => {
      await s?.stop();
    });

    it("needs current_password to change one's own email, ends every other session, and ValidateToken reports the new email", async () => {
      const acct = newAccount('move');
      const reg = await s.client.auth.register(acct);
      const other = await s.client.auth.login(acct);
      const me = s.client.withToken(reg.tokens?.accessToken ?? '');
      const change = (currentPassword: string, email = `moved-${acct.email}`) =>
        me.users.updateUser({
          user: { ...(reg.user as User), email },
          currentPassword,
          updateMask: ['email'],
        });
      const missing = await expectCode(change(''), Code.INVALID_ARGUMENT);
      expect(fieldViolations(missing)).to.deep.equal([
        { field: 'current_password', description: 'is required' },
      ]);
      await expectCode(change('not my password'), Code.UNAUTHENTICATED, /current_password is incorrect/);
      const moved = await change(acct.password);
      expect(moved.email).to.equal(`moved-${acct.email}`);
      expect(
        (await s.client.auth.validateToken({ accessToken: other.tokens?.accessToken ?? '' })).active,
      ).to.equal(false);
      const mine = await s.client.auth.validateToken({ accessToken: reg.tokens?.accessToken ?? '' });
      expect(mine).to.deep.include({ active: true, email: `moved-${acct.email}` });
      // the old address is free: a newcomer takes it, and no live token reports it for the old owner
      await s.client.auth.register({ ...newAccount('newcomer'), email: acct.email });
      expect(mine.email).to.not.equal(acct.email);
    });

    it('reports current roles in ValidateToken, not those in the token', async () => {
      const reg = await s.client.auth.register(newAccount('roles'));
      await s.sql("UPDATE users SET roles = '{admin,user}' WHERE id = $1", [reg.user?.id]);
      const seen = await s.client.auth.validateToken({ accessToken: reg.tokens?.accessToken ?? '' });
      expect(seen.roles).to.deep.equal(['admin', 'user']);
    });

    it("lists the caller's live sessions newest first with address and user agent, and revokes one; another user's is NOT_FOUND", async () => {
      const acct = newAccount('sess');
      const first = await s.client.auth.register(acct);
      // grpc-js puts its own name after the application's in the user-agent header
      const app = connect(s.address, {
        channelOptions: { 'grpc.primary_user_agent': 'ConnectSphere-iOS/7.1' },
      });
      const second = await app.auth.login(acct);
      app.close();
      const me = s.client.withToken(second.tokens?.accessToken ?? '');
      const { sessions } = await me.auth.listSessions({});
      expect(sessions).to.have.length(2);
      expect(sessions[0]?.current).to.equal(true);
      expect(sessions[0]?.userAgent).to.match(/^ConnectSphere-iOS\/7\.1/);
      expect(sessions[1]?.current).to.equal(false);
      expect(sessions[0]?.createTime?.getTime()).to.be.at.least(sessions[1]?.createTime?.getTime() ?? 0);
      await s.client.auth.refreshToken({ refreshToken: first.tokens?.refreshToken ?? '' });
      const refreshed = (await me.auth.listSessions({})).sessions.find((x) => !x.current);
      expect(refreshed?.lastRefreshTime, 'rotation recorded').to.be.instanceOf(Date);

      const stranger = await s.client.auth.register(newAccount('stranger'));
      const them = s.client.withToken(stranger.tokens?.accessToken ?? '');
      await expectCode(them.auth.revokeSession({ sessionId: sessions[1]?.id ?? '' }), Code.NOT_FOUND);
      await me.auth.revokeSession({ sessionId: sessions[1]?.id ?? '' });
      expect(
        (await s.client.auth.validateToken({ accessToken: first.tokens?.accessToken ?? '' })).active,
      ).to.equal(false);
      expect((await me.auth.listSessions({})).sessions).to.have.length(1);
      await expectCode(me.auth.revokeSession({ sessionId: sessions[1]?.id ?? '' }), Code.NOT_FOUND);
    });

    it('refuses to refresh a session older than SESSION_MAX_LIFETIME_S, however often it rotated', async () => {
      const lifetime = await startTestServer({ SESSION_MAX_LIFETIME_S: '3600' });
      try {
        const reg = await lifetime.client.auth.register(newAccount('old'));
        let refresh = reg.tokens?.refreshToken ?? '';
        for (let i = 0; i < 3; i++)
          refresh =
            (await lifetime.client.auth.refreshToken({ refreshToken: refresh })).tokens?.refreshToken ?? '';
        await lifetime.sql("UPDATE sessions SET created_at = now() - interval '3601 seconds'");
        await expectCode(
          lifetime.client.auth.refreshToken({ refreshToken: refresh }),
          Code.UNAUTHENTICATED,
          /log in again/,
        );
      } finally {
        await lifetime.stop();
      }
    });
  });

  describe('text that cannot impersonate', () => {
    let s: TestServer;
    before(async () => {
      s = await startTestServer();
    });
    after(async () => {
      await s?.stop();
    });
    const register = (over: Partial<{ email: string; password: string; displayName: string }>) =>
      s.client.auth.register({ ...newAccount('text'), ...over });

    it('stores an IDN domain in its ASCII form, so its NFC and NFD spellings are one account', async () => {
      const local = `jose${Date.now().toString(36)}`;
      const nfc = await register({ email: `${local}@bücher.example` });
      expect(nfc.user?.email).to.equal(`${local}@xn--bcher-kva.example`);
      await expectCode(register({ email: `${local}@bu\u0308cher.example` }), Code.ALREADY_EXISTS);
    });

    const badEmails: [string, string][] = [
      ['a non-ASCII local part (josé)', 'jos\u00e9@example.com'],
      ['a Cyrillic look-alike in a Latin domain label', 'ada@p\u0430ypal.com'],
      ['a zero-width space', 'ada\u200b@example.com'],
      ['a bidi override', 'ada@exam\u202eple.com'],
      ['a tag character', 'ada@example.com\u{e0041}'],
    ];
    for (const [what, email] of badEmails) {
      it(`refuses an email with ${what}`, async () => {
        const err = await expectCode(register({ email }), Code.INVALID_ARGUMENT);
        expect(fieldViolations(err).map((v) => v.field)).to.deep.equal(['email']);
      });
    }

    it('NFC-normalises display names and refuses invisible, bidi, private-use and letterless ones', async () => {
      const ok = await register({ displayName: 'Jose\u0301 Lovelace' });
      expect(ok.user?.displayName).to.equal('Jos\u00e9 Lovelace');
      for (const displayName of [
        'Ada\u200b',
        'Ada\u202eecalevol',
        'Ada\ue000',
        '***',
        'x'.repeat(65),
        'tab\tname',
      ]) {
        const err = await expectCode(register({ displayName }), Code.INVALID_ARGUMENT);
        expect(
          fieldViolations(err).map((v) => v.field),
          JSON.stringify(displayName),
        ).to.deep.equal(['display_name']);
      }
    });

    it('refuses common and personal passwords with a helpful message, at Register and ChangePassword', async () => {
      for (const password of ['password', '12345678', 'qwertyuiop']) {
        const err = await expectCode(
          register({ password }),
          Code.INVALID_ARGUMENT,
          /password: is too easy to guess/,
        );
        expect(err.details, 'the value is not echoed').to.not.include(`${password} `);
      }
      const tag = `lovelace${Date.now().toString(36)}`;
      await expectCode(
        register({ email: `${tag}@example.com`, displayName: 'Ada Lovelace', password: `${tag}!2024` }),
        Code.INVALID_ARGUMENT,
        /must not be built from your email address or display name/,
      );
      const acct = newAccount('change');
      const reg = await s.client.auth.register(acct);
      await expectCode(
        s.client
          .withToken(reg.tokens?.accessToken ?? '')
          .auth.changePassword({ currentPassword: acct.password, newPassword: 'iloveyou1' }),
        Code.INVALID_ARGUMENT,
        /new_password: is too easy to guess/,
      );
    });
  });

  describe('housekeeping', () => {
    it('prunes expired and ended sessions, their tokens and stale throttle counters, keeping live ones; one instance at a time', async function () {
      this.timeout(60_000);
      const s = await startTestServer({ PRUNE_AFTER_DAYS: '7', PRUNE_INTERVAL_S: '0' });
      try {
        const live = await s.client.auth.register(newAccount('live'));
        const ended = await s.client.auth.register(newAccount('ended'));
        const expired = await s.client.auth.register(newAccount('expired'));
        await expectCode(
          s.client.auth.login({ email: 'ghost@example.com', password: 'whatever it is' }),
          Code.UNAUTHENTICATED,
        );
        const sid = (t: typeof live) =>
          JSON.parse(Buffer.from((t.tokens?.accessToken ?? '').split('.')[1] ?? '', 'base64url').toString())
            .sid as string;
        await s.sql("UPDATE sessions SET revoked_at = now() - interval '8 days' WHERE id = $1", [sid(ended)]);
        await s.sql("UPDATE sessions SET created_at = now() - interval '30 days' WHERE id = $1", [
          sid(expired),
        ]);
        await s.sql(
          "UPDATE refresh_tokens SET expires_at = now() - interval '8 days' WHERE session_id = $1",
          [sid(expired)],
        );
        await s.sql("UPDATE login_throttle SET last_failure_at = now() - interval '1 day'");

        // another instance holds the job's lock: this one skips
        const blocker = new pg.Client({ connectionString: s.db.url });
        await blocker.connect();
        await blocker.query('BEGIN');
        await blocker.query('SELECT pg_advisory_xact_lock($1)', [0x63737072]);
        const skipped = await runCli(['prune'], { DATABASE_URL: s.db.url });
        await blocker.query('COMMIT');
        await blocker.end();
        expect(skipped.code, skipped.output).to.equal(1);
        expect(skipped.output).to.match(/another instance is pruning/);

        const pruned = await runCli(['prune'], { DATABASE_URL: s.db.url });
        expect(pruned.code, pruned.output).to.equal(0);
        // the failed login left 3 counters: the pair, the address and the account
        expect(pruned.output).to.match(/deleted 2 sessions, \d+ refresh tokens, 3 throttle counters/);
        const left = await s.sql<{ id: string }>('SELECT id FROM sessions');
        expect(left.map((r) => r.id)).to.deep.equal([sid(live)]);
        expect((await s.sql('SELECT count(*)::int AS n FROM refresh_tokens'))[0]?.n).to.equal(1);
        expect(
          (await s.client.auth.validateToken({ accessToken: live.tokens?.accessToken ?? '' })).active,
        ).to.equal(true);
      } finally {
        await s.stop();
      }
    });
  });

  describe('configuration safety', () => {
    it('warns at start, naming SECRET_KEY, when the built-in development key is in use', async () => {
      const s = await startTestServer({ LOG_LEVEL: 'warn' });
      try {
        expect(s.logs.some((l) => l.includes('"level":40') && l.includes('SECRET_KEY'))).to.equal(true);
      } finally {
        await s.stop();
      }
    });
  });
});
