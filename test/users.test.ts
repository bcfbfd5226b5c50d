import { expect } from 'chai';
import { Code, type ConnectSphereClient, fieldViolations } from '../src/client.js';
import { listStatement } from '../src/db/user.store.js';
import type { User } from '../src/gen/connectsphere/user/v1/user.js';
import { runCli } from './helpers/process.js';
import { expectCode, newAccount, startTestServer, type TestServer } from './helpers/server.js';

describe('UserService: batch get, list, update, delete, roles', () => {
  let s: TestServer;
  before(async () => {
    // DB_ECHO: every SQL statement is logged, so tests can count the queries of a call
    s = await startTestServer({ DB_ECHO: 'true' });
  });
  after(async () => {
    await s?.stop();
  });

  const signUp = async (prefix = 'u') => {
    const acct = newAccount(prefix);
    const reg = await s.client.auth.register(acct);
    return { acct, user: reg.user as User, client: s.client.withToken(reg.tokens?.accessToken ?? '') };
  };
  const makeAdmin = (id: string) => s.sql("UPDATE users SET roles = '{admin,user}' WHERE id = $1", [id]);
  const sqlLinesDuring = async (work: () => Promise<unknown>) => {
    const before = s.logs.length;
    await work();
    // (the health watchdog's `SELECT 1` pings are not the call's)
    return s.logs.slice(before).filter((l) => l.includes('"msg":"sql"') && !l.includes('"sql":"SELECT 1"'));
  };

  describe('BatchGetUsers', () => {
    it('returns users in request order, duplicates included, with one query', async () => {
      const a = await signUp();
      const b = await signUp();
      const c = await signUp();
      const ids = [c.user.id, a.user.id, b.user.id, a.user.id];
      let users: User[] = [];
      const sql = await sqlLinesDuring(async () => {
        users = (await a.client.users.batchGetUsers({ ids })).users;
      });
      expect(users.map((u) => u.id)).to.deep.equal(ids);
      expect(
        sql.filter((l) => l.includes('FROM users WHERE id = ANY($1::uuid[])')),
        'one query for all ids',
      ).to.have.length(1);
      expect(sql, 'the session check and the batch query, nothing per id').to.have.length(2);
    });

    it('fails the whole call with NOT_FOUND naming every unknown id', async () => {
      const a = await signUp();
      const ghost = '00000000-0000-4000-8000-00000000dead';
      const err = await expectCode(a.client.users.batchGetUsers({ ids: [a.user.id, ghost] }), Code.NOT_FOUND);
      expect(err.details).to.include(ghost).and.not.include(a.user.id);
    });

    it('refuses more than 100 ids and bad ids with INVALID_ARGUMENT', async () => {
      const a = await signUp();
      const many = Array.from({ length: 101 }, () => a.user.id);
      await expectCode(a.client.users.batchGetUsers({ ids: many }), Code.INVALID_ARGUMENT, /at most 100/);
      const bad = await expectCode(
        a.client.users.batchGetUsers({ ids: [a.user.id, 'nope', ''] }),
        Code.INVALID_ARGUMENT,
      );
      expect(fieldViolations(bad).map((v) => v.field)).to.deep.equal(['ids[1]', 'ids[2]']);
      expect((await a.client.users.batchGetUsers({ ids: Array(100).fill(a.user.id) })).users).to.have.length(
        100,
      );
    });
  });

  describe('ListUsers', () => {
    it('pages a few hundred users without repeating or skipping any while others register', async function () {
      this.timeout(120_000);
      const tag = `pg${Date.now().toString(36)}`;
      const first = await s.client.auth.register({ ...newAccount(tag), displayName: `${tag} first` });
      const me = s.client.withToken(first.tokens?.accessToken ?? '');
      const original = [first.user?.id];
      for (let i = 0; i < 240; i += 20) {
        const batch = await Promise.all(
          Array.from({ length: 20 }, () =>
            s.client.auth.register({ ...newAccount(tag), displayName: `${tag} user` }),
          ),
        );
        original.push(...batch.map((r) => r.user?.id));
      }
      const seen: string[] = [];
      let pageToken = '';
      let pages = 0;
      const addedMeanwhile: string[] = [];
      do {
        const page = await me.users.listUsers({ pageSize: 37, pageToken, query: tag.toUpperCase() });
        expect(page.users.length).to.be.at.most(37);
        seen.push(...page.users.map((u) => u.id));
        pageToken = page.nextPageToken;
        pages++;
        // others register between pages
        const late = await s.client.auth.register({ ...newAccount(tag), displayName: `${tag} late` });
        if (pages <= 3) addedMeanwhile.push(late.user?.id ?? '');
      } while (pageToken && pages < 100);
      expect(new Set(seen).size, 'no user repeated').to.equal(seen.length);
      expect(seen).to.include.members(original as string[]);
      expect(seen, 'users who registered while paging show up at the end').to.include.members(addedMeanwhile);
    });

    it('lets an admin filter by a case-insensitive prefix of email or display name; others by display name only', async () => {
      const tag = `zq${Date.now().toString(36)}`;
      const byName = await s.client.auth.register({
        ...newAccount('x'),
        displayName: `${tag.toUpperCase()} Lovelace`,
      });
      const byEmail = await s.client.auth.register({ ...newAccount(tag), displayName: 'Someone' });
      await s.client.auth.register({ ...newAccount('other'), displayName: `not ${tag}` });
      const me = s.client.withToken(byName.tokens?.accessToken ?? '');
      const mine = await me.users.listUsers({ pageSize: 0, pageToken: '', query: ` ${tag} ` });
      expect(
        mine.users.map((u) => u.id),
        'a user: names only',
      ).to.deep.equal([byName.user?.id]);
      await makeAdmin(byName.user?.id ?? '');
      const page = await me.users.listUsers({ pageSize: 0, pageToken: '', query: ` ${tag} ` });
      expect(page.users.map((u) => u.id)).to.have.members([byName.user?.id, byEmail.user?.id]);
      expect(page.nextPageToken).to.equal('');
      // wildcards are literal
      expect((await me.users.listUsers({ pageSize: 10, pageToken: '', query: '%' })).users).to.deep.equal([]);
      expect(
        (await me.users.listUsers({ pageSize: 10, pageToken: '', query: "'; DROP TABLE users; --" })).users,
      ).to.deep.equal([]);
    });

    it("runs the store's own ListUsers statements on indexes (EXPLAIN over 5000 users)", async () => {
      const big = await startTestServer();
      try {
        await big.sql(`INSERT INTO users (id, email, password_hash, display_name, roles, created_at, updated_at)
          SELECT gen_random_uuid(), 'bulk' || g || '@example.com', 'x', 'Bulk ' || g, '{user}', now(), now()
          FROM generate_series(1, 5000) g; ANALYZE users;`);
        const explain = async (query: Parameters<typeof listStatement>[0]) => {
          // exactly the text and parameters the store sends (bound, as its prepared statement is)
          const { text, values } = listStatement(query);
          const rows = await big.sql<{ 'QUERY PLAN': string }>(`EXPLAIN ${text}`, values);
          return rows.map((r) => r['QUERY PLAN']).join('\n');
        };
        const search = await explain({ prefix: { text: 'ada', of: 'email-or-name' }, limit: 51 });
        expect(search).to.include('users_email_prefix_idx').and.include('users_display_name_prefix_idx');
        expect(search).to.not.include('Seq Scan');
        const byName = await explain({ prefix: { text: 'ada', of: 'name' }, limit: 51 });
        expect(byName).to.include('users_display_name_prefix_idx').and.not.include('users_email_prefix_idx');
        expect(byName).to.not.include('Seq Scan');
        const [middle] = await big.sql<{ id: string }>(
          'SELECT id FROM users ORDER BY created_at, id OFFSET 2500 LIMIT 1',
        );
        const page = await explain({ afterId: middle?.id, limit: 51 });
        expect(page).to.include('users_created_id_idx').and.not.include('Seq Scan');
      } finally {
        await big.stop();
      }
    });

    it('caps page_size at 1000 for admins (50 for others), defaults it to 50, and refuses a negative one', async () => {
      const { client, user } = await signUp();
      await makeAdmin(user.id);
      const total = (await s.sql('SELECT count(*)::int AS n FROM users WHERE deleted_at IS NULL'))[0]
        ?.n as number;
      expect((await client.users.listUsers({ pageSize: 0, pageToken: '', query: '' })).users).to.have.length(
        Math.min(50, total),
      );
      expect(
        (await client.users.listUsers({ pageSize: 5000, pageToken: '', query: '' })).users,
      ).to.have.length(Math.min(1000, total));
      await expectCode(
        client.users.listUsers({ pageSize: -1, pageToken: '', query: '' }),
        Code.INVALID_ARGUMENT,
        /page_size/,
      );
    });

    it('refuses a tampered page token, or one made for another query, with INVALID_ARGUMENT', async () => {
      const { client, user } = await signUp();
      await makeAdmin(user.id);
      const { nextPageToken } = await client.users.listUsers({ pageSize: 1, pageToken: '', query: '' });
      expect(nextPageToken).to.not.equal('');
      const [body, sig] = nextPageToken.split('.') as [string, string];
      const forged = Buffer.from(
        JSON.stringify({ a: '00000000-0000-4000-8000-000000000000', q: '' }),
      ).toString('base64url');
      for (const bad of [
        `${forged}.${sig}`,
        // the first character carries six whole bits of the MAC (the last one's low bits are ignored
        // by base64url decoding, so an edit there can leave the MAC unchanged)
        `${body}.${sig.startsWith('A') ? 'B' : 'A'}${sig.slice(1)}`,
        'garbage',
        `${nextPageToken}.x`,
      ]) {
        const err = await expectCode(
          client.users.listUsers({ pageSize: 1, pageToken: bad, query: '' }),
          Code.INVALID_ARGUMENT,
        );
        expect(fieldViolations(err)[0]?.field).to.equal('page_token');
      }
      await expectCode(
        client.users.listUsers({ pageSize: 1, pageToken: nextPageToken, query: 'other' }),
        Code.INVALID_ARGUMENT,
        /another query/,
      );
    });
  });

  describe('UpdateUser', () => {
    it('changes only the masked fields', async () => {
      const { acct, user, client } = await signUp();
      const updated = await client.users.updateUser({
        user: { ...user, displayName: 'New Name', email: 'ignored@example.com' },
        currentPassword: '',
        updateMask: ['display_name'],
      });
      expect(updated.displayName).to.equal('New Name');
      expect(updated.email).to.equal(user.email);
      expect(updated.updateTime?.getTime()).to.be.greaterThan(user.updateTime?.getTime() ?? 0);
      const email = `  Renamed-${Date.now()}@Example.com `;
      const renamed = await client.users.updateUser({
        user: { ...user, email, displayName: '' },
        currentPassword: acct.password,
        updateMask: ['email'],
      });
      expect(renamed.email).to.equal(email.trim().toLowerCase());
      expect(renamed.displayName).to.equal('New Name');
    });

    it('with an empty mask, changes every non-empty field given', async () => {
      const { user, client } = await signUp();
      const updated = await client.users.updateUser({
        user: {
          id: user.id,
          email: '',
          displayName: 'Only Name',
          roles: [],
          createTime: undefined,
          updateTime: undefined,
        },
        currentPassword: '',
        updateMask: [],
      });
      expect(updated).to.deep.include({ displayName: 'Only Name', email: user.email });
    });

    it('refuses unknown and immutable paths, and bad values, with INVALID_ARGUMENT', async () => {
      const { user, client } = await signUp();
      const err = await expectCode(
        client.users.updateUser({ user, currentPassword: '', updateMask: ['nickname', 'create_time', 'id'] }),
        Code.INVALID_ARGUMENT,
      );
      expect(err.details)
        .to.include('unknown field "nickname"')
        .and.include('"create_time" cannot be changed');
      const bad = await expectCode(
        client.users.updateUser({
          user: { ...user, email: 'nope', displayName: ' ' },
          currentPassword: '',
          updateMask: ['email', 'display_name'],
        }),
        Code.INVALID_ARGUMENT,
      );
      expect(fieldViolations(bad).map((v) => v.field)).to.have.members(['user.email', 'user.display_name']);
      // an id that is not the caller's own is a question of permission first ...
      await expectCode(
        client.users.updateUser({
          user: { ...user, id: '' },
          currentPassword: '',
          updateMask: ['display_name'],
        }),
        Code.PERMISSION_DENIED,
      );
      // ... and for an admin, of a bad value
      await makeAdmin(user.id);
      await expectCode(
        client.users.updateUser({
          user: { ...user, id: '' },
          currentPassword: '',
          updateMask: ['display_name'],
        }),
        Code.INVALID_ARGUMENT,
        /user\.id/,
      );
    });

    it('refuses to change someone else (PERMISSION_DENIED) unless the caller is an admin', async () => {
      const alice = await signUp();
      const bob = await signUp();
      await expectCode(
        alice.client.users.updateUser({
          user: { ...bob.user, displayName: 'hacked' },
          currentPassword: '',
          updateMask: ['display_name'],
        }),
        Code.PERMISSION_DENIED,
      );
      await expectCode(alice.client.users.deleteUser({ id: bob.user.id }), Code.PERMISSION_DENIED);
      await makeAdmin(alice.user.id); // takes effect at once: roles are read fresh on every call
      const changed = await alice.client.users.updateUser({
        user: { ...bob.user, displayName: 'by admin' },
        currentPassword: '',
        updateMask: ['display_name'],
      });
      expect(changed.displayName).to.equal('by admin');
      await expectCode(
        alice.client.users.updateUser({
          user: { ...bob.user, id: '00000000-0000-4000-8000-000000000000' },
          currentPassword: '',
          updateMask: ['display_name'],
        }),
        Code.NOT_FOUND,
      );
    });

    it("lets only an admin change roles; taking a role away ends that user's sessions", async () => {
      const alice = await signUp();
      const bob = await signUp();
      await expectCode(
        bob.client.users.updateUser({
          user: { ...bob.user, roles: ['user', 'admin'] },
          currentPassword: '',
          updateMask: ['roles'],
        }),
        Code.PERMISSION_DENIED,
        /only an admin/,
      );
      await makeAdmin(alice.user.id);
      const promoted = await alice.client.users.updateUser({
        user: { ...bob.user, roles: ['admin', 'user'] },
        currentPassword: '',
        updateMask: ['roles'],
      });
      expect(promoted.roles).to.deep.equal(['admin', 'user']);
      await expectCode(
        alice.client.users.updateUser({
          user: { ...bob.user, roles: ['admin'] },
          currentPassword: '',
          updateMask: ['roles'],
        }),
        Code.INVALID_ARGUMENT,
        /must include "user"/,
      );
      await expectCode(
        alice.client.users.updateUser({
          user: { ...bob.user, roles: ['user', 'root'] },
          currentPassword: '',
          updateMask: ['roles'],
        }),
        Code.INVALID_ARGUMENT,
        /unknown role/,
      );
      const demoted = await alice.client.users.updateUser({
        user: { ...bob.user, roles: ['user'] },
        currentPassword: '',
        updateMask: ['roles'],
      });
      expect(demoted.roles).to.deep.equal(['user']);
      await expectCode(
        bob.client.users.getUser({ lookup: { $case: 'id', value: bob.user.id } }),
        Code.UNAUTHENTICATED,
      );
    });

    it('refuses an email taken by another user with ALREADY_EXISTS', async () => {
      const alice = await signUp();
      const bob = await signUp();
      await expectCode(
        bob.client.users.updateUser({
          user: { ...bob.user, email: alice.user.email.toUpperCase() },
          currentPassword: bob.acct.password,
          updateMask: ['email'],
        }),
        Code.ALREADY_EXISTS,
      );
    });
  });

  describe('DeleteUser', () => {
    it('soft-deletes: gone from Get/BatchGet/List, cannot log in, sessions end, the address is free again', async () => {
      const { acct, user, client } = await signUp('del');
      const watcher = await signUp('watch');
      await makeAdmin(watcher.user.id); // sees every field and may look up any email
      const second = await s.client.auth.login(acct);
      await client.users.deleteUser({ id: user.id });
      await expectCode(
        watcher.client.users.getUser({ lookup: { $case: 'id', value: user.id } }),
        Code.NOT_FOUND,
      );
      await expectCode(
        watcher.client.users.getUser({ lookup: { $case: 'email', value: acct.email } }),
        Code.NOT_FOUND,
      );
      await expectCode(watcher.client.users.batchGetUsers({ ids: [user.id] }), Code.NOT_FOUND);
      const listed = await watcher.client.users.listUsers({
        pageSize: 1000,
        pageToken: '',
        query: acct.email,
      });
      expect(listed.users).to.deep.equal([]);
      await expectCode(s.client.auth.login(acct), Code.UNAUTHENTICATED, /invalid email or password/);
      expect(
        (await s.client.auth.validateToken({ accessToken: second.tokens?.accessToken ?? '' })).active,
      ).to.equal(false);
      await expectCode(
        s.client.auth.refreshToken({ refreshToken: second.tokens?.refreshToken ?? '' }),
        Code.UNAUTHENTICATED,
      );
      await expectCode(client.users.deleteUser({ id: user.id }), Code.UNAUTHENTICATED);

      const again = await s.client.auth.register(acct);
      expect(again.user?.id).to.not.equal(user.id);
      expect(
        (await s.sql('SELECT count(*)::int AS n FROM users WHERE email = $1', [acct.email]))[0]?.n,
      ).to.equal(2);
    });

    it('lets an admin delete another user; NOT_FOUND for an unknown one', async () => {
      const admin = await signUp();
      const victim = await signUp();
      await makeAdmin(admin.user.id);
      await admin.client.users.deleteUser({ id: victim.user.id });
      await expectCode(admin.client.users.deleteUser({ id: victim.user.id }), Code.NOT_FOUND);
      await expectCode(
        admin.client.users.deleteUser({ id: 'nope' }),
        Code.INVALID_ARGUMENT,
        /id: must be a UUID/,
      );
    });
  });

  describe('operator command', () => {
    it('grants and revokes admin by email (npm run cli)', async function () {
      this.timeout(60_000);
      const { acct, user, client } = await signUp('op');
      const granted = await runCli(['grant-admin', acct.email.toUpperCase()], { DATABASE_URL: s.db.url });
      expect(granted.code, granted.output).to.equal(0);
      expect(granted.output).to.include('admin, user');
      const other = await signUp();
      const changed = await client.users.updateUser({
        user: { ...other.user, displayName: 'ok' },
        currentPassword: '',
        updateMask: ['display_name'],
      });
      expect(changed.displayName).to.equal('ok');

      const revoked = await runCli(['revoke-admin', acct.email], { DATABASE_URL: s.db.url });
      expect(revoked.code, revoked.output).to.equal(0);
      expect((await s.sql('SELECT roles FROM users WHERE id = $1', [user.id]))[0]?.roles).to.deep.equal([
        'user',
      ]);
      await expectCode(
        client.users.getUser({ lookup: { $case: 'id', value: user.id } }),
        Code.UNAUTHENTICATED,
      );

      const unknown = await runCli(['grant-admin', 'nobody@example.com'], { DATABASE_URL: s.db.url });
      expect(unknown.code).to.equal(1);
      expect(unknown.output).to.include('no user with email');
      const usage = await runCli(['make-me-admin'], { DATABASE_URL: s.db.url });
      expect(usage.code).to.equal(64);
      expect(usage.output).to.include('usage');
    });
  });
});

describe('typed client for other services', () => {
  it('connects in three lines and attaches the bearer token', async () => {
    const s = await startTestServer();
    try {
      const acct = newAccount('client');
      await s.client.auth.register(acct);
      // the README example:
      const { connect } = await import('../src/client.js');
      const cs: ConnectSphereClient = connect(s.address);
      const { tokens } = await cs.auth.login({ email: acct.email, password: acct.password });
      const me = await cs
        .withToken(tokens?.accessToken ?? '')
        .users.getUser({ lookup: { $case: 'email', value: acct.email } });
      expect(me.email).to.equal(acct.email);
      await expectCode(
        cs.users.getUser({ lookup: { $case: 'email', value: acct.email } }),
        Code.UNAUTHENTICATED,
      );
      await expectCode(cs.auth.login(acct, { deadlineMs: 0 }), Code.DEADLINE_EXCEEDED);
      cs.close();
    } finally {
      await s.stop();
    }
  });
});
