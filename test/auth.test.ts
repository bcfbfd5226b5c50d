import bcrypt from 'bcrypt';
import { expect } from 'chai';
import { Code, fieldViolations } from '../src/client.js';
import { expectCode, newAccount, startTestServer, type TestServer } from './helpers/server.js';

describe('AuthService: Register and Login, UserService: GetUser', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer();
  });
  after(async () => {
    await s?.stop();
  });

  it('registers, logs in, and fetches the user by email and by id with the access token', async () => {
    const acct = newAccount('ada');
    const reg = await s.client.auth.register({ ...acct, email: `  ${acct.email.toUpperCase()} ` });
    expect(reg.user?.email).to.equal(acct.email);
    expect(reg.user?.displayName).to.equal(acct.displayName);
    expect(reg.user?.roles).to.deep.equal(['user']);
    expect(reg.user?.id).to.match(/^[0-9a-f-]{36}$/);
    expect(reg.user?.createTime).to.be.instanceOf(Date);
    expect(reg.tokens?.tokenType).to.equal('Bearer');
    expect(reg.tokens?.expiresIn).to.equal(30 * 60);
    expect(reg.tokens?.refreshExpiresIn).to.equal(14 * 86_400);
    expect(reg.tokens?.refreshToken).to.have.length.greaterThanOrEqual(43);

    const login = await s.client.auth.login({ email: acct.email.toUpperCase(), password: acct.password });
    expect(login.user?.id).to.equal(reg.user?.id);
    const me = s.client.withToken(login.tokens?.accessToken ?? '');
    const byEmail = await me.users.getUser({
      lookup: { $case: 'email', value: ` ${acct.email.toUpperCase()}` },
    });
    expect(byEmail).to.deep.include({ id: reg.user?.id, email: acct.email, displayName: acct.displayName });
    const byId = await me.users.getUser({ lookup: { $case: 'id', value: reg.user?.id ?? '' } });
    expect(byId.email).to.equal(acct.email);
    expect(byId.createTime?.getTime()).to.equal(reg.user?.createTime?.getTime());
  });

  it('stores the password and the refresh token only as hashes', async () => {
    const acct = newAccount();
    const reg = await s.client.auth.register(acct);
    const [row] = await s.sql('SELECT password_hash FROM users WHERE id = $1', [reg.user?.id]);
    expect(row?.password_hash).to.match(/^\$2[aby]\$04\$/);
    expect(await bcrypt.compare(acct.password, row?.password_hash)).to.equal(true);
    const tokens = await s.sql(
      'SELECT rt.token_hash FROM refresh_tokens rt JOIN sessions se ON se.id = rt.session_id WHERE se.user_id = $1',
      [reg.user?.id],
    );
    expect(tokens).to.have.length(1);
    expect(tokens[0]?.token_hash).to.match(/^[0-9a-f]{64}$/);
    expect(tokens[0]?.token_hash).to.not.equal(reg.tokens?.refreshToken);
    const dump = JSON.stringify(await s.sql('SELECT * FROM refresh_tokens'));
    expect(dump).to.not.include(reg.tokens?.refreshToken);
  });

  it('refuses a second account for the same address (any case) with ALREADY_EXISTS', async () => {
    const acct = newAccount();
    await s.client.auth.register(acct);
    await expectCode(
      s.client.auth.register({ ...acct, email: acct.email.toUpperCase() }),
      Code.ALREADY_EXISTS,
      /already exists/,
    );
  });

  it('gives exactly one success and the rest ALREADY_EXISTS for concurrent registrations of one address', async () => {
    const acct = newAccount('race');
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) => s.client.auth.register({ ...acct, displayName: `racer ${i}` })),
    );
    const ok = results.filter((r) => r.status === 'fulfilled');
    const failed = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
    expect(ok).to.have.length(1);
    expect(failed.map((r) => r.reason.code)).to.deep.equal(Array(7).fill(Code.ALREADY_EXISTS));
    const rows = await s.sql('SELECT count(*)::int AS n FROM users WHERE email = $1', [acct.email]);
    expect(rows[0]?.n).to.equal(1);
  });

  it('answers a wrong password and an unknown email with the same UNAUTHENTICATED message', async () => {
    const acct = newAccount();
    await s.client.auth.register(acct);
    const wrong = await expectCode(
      s.client.auth.login({ email: acct.email, password: 'not the password' }),
      Code.UNAUTHENTICATED,
    );
    const unknown = await expectCode(
      s.client.auth.login({ email: `nobody-${acct.email}`, password: acct.password }),
      Code.UNAUTHENTICATED,
    );
    expect(wrong.details).to.equal('invalid email or password');
    expect(unknown.details).to.equal(wrong.details);
  });

  it('rejects bad input with INVALID_ARGUMENT naming every bad field in BadRequest details', async () => {
    const err = await expectCode(
      s.client.auth.register({ email: 'not-an-email', password: 'short', displayName: '  ' }),
      Code.INVALID_ARGUMENT,
    );
    const fields = fieldViolations(err).map((v) => v.field);
    expect(fields).to.have.members(['email', 'password', 'display_name']);
    expect(err.details).to.include('email').and.include('password').and.include('display_name');

    const tooLong = await expectCode(
      s.client.auth.register({ ...newAccount(), password: 'é'.repeat(37) }), // 74 bytes
      Code.INVALID_ARGUMENT,
      /password: must be at most 72 bytes/,
    );
    expect(fieldViolations(tooLong)).to.deep.equal([
      { field: 'password', description: 'must be at most 72 bytes of UTF-8' },
    ]);
    await expectCode(
      s.client.auth.register({ ...newAccount(), displayName: 'x'.repeat(101) }),
      Code.INVALID_ARGUMENT,
      /display_name/,
    );
    await expectCode(
      s.client.auth.register({ ...newAccount(), email: `${'a'.repeat(250)}@example.com` }),
      Code.INVALID_ARGUMENT,
      /email: must be at most 254/,
    );
    await expectCode(
      s.client.auth.login({ email: '', password: '' }),
      Code.INVALID_ARGUMENT,
      /email.*password/,
    );
  });

  it('rejects a GetUser without a lookup, with a bad id, or for an unknown user', async () => {
    const reg = await s.client.auth.register(newAccount());
    const me = s.client.withToken(reg.tokens?.accessToken ?? '');
    const noLookup = await expectCode(
      me.users.getUser({ lookup: undefined }),
      Code.INVALID_ARGUMENT,
      /lookup/,
    );
    expect(fieldViolations(noLookup)[0]?.field).to.equal('lookup');
    await expectCode(
      me.users.getUser({ lookup: { $case: 'id', value: "1' OR '1'='1" } }),
      Code.INVALID_ARGUMENT,
      /id: must be a UUID/,
    );
    await expectCode(
      me.users.getUser({ lookup: { $case: 'id', value: '00000000-0000-4000-8000-000000000000' } }),
      Code.NOT_FOUND,
    );
    // another address says nothing, not even whether it exists
    await expectCode(
      me.users.getUser({ lookup: { $case: 'email', value: 'ghost@example.com' } }),
      Code.PERMISSION_DENIED,
      /only your own email address/,
    );
  });

  it('never returns or logs the password or its hash', async () => {
    const acct = newAccount('secret');
    const reg = await s.client.auth.register(acct);
    await s.client.auth.login(acct);
    const [row] = await s.sql('SELECT password_hash FROM users WHERE id = $1', [reg.user?.id]);
    const everything = JSON.stringify(reg) + s.logs.join('\n');
    expect(everything).to.not.include(acct.password);
    expect(everything).to.not.include(row?.password_hash);
    expect(s.logs.some((l) => l.includes('"method":"/connectsphere.auth.v1.AuthService/Login"'))).to.equal(
      true,
    );
  });
});

describe('password re-hashing at a new cost', () => {
  it('re-hashes a password made at another cost on the next successful login', async () => {
    const first = await startTestServer({ BCRYPT_ROUNDS: '4' });
    const acct = newAccount('rehash');
    try {
      await first.client.auth.register(acct);
    } finally {
      await first.stop({ keepDatabase: true });
    }
    const second = await startTestServer({ BCRYPT_ROUNDS: '5' }, { database: first.db });
    try {
      const cost = async () =>
        bcrypt.getRounds(
          (await second.sql('SELECT password_hash FROM users WHERE email = $1', [acct.email]))[0]
            ?.password_hash,
        );
      expect(await cost()).to.equal(4);
      await expectCode(
        second.client.auth.login({ ...acct, password: 'wrong password' }),
        Code.UNAUTHENTICATED,
      );
      expect(await cost(), 'a failed login changes nothing').to.equal(4);
      await second.client.auth.login(acct);
      expect(await cost()).to.equal(5);
      await second.client.auth.login(acct);
    } finally {
      await second.stop();
    }
  });
});

describe('login cost for unknown accounts', () => {
  // How long each takes is a number: `npm run bench` reports both medians and their ratio.
  it('runs exactly one bcrypt compare for an unknown email, as for a wrong password', async () => {
    const s = await startTestServer({ LOGIN_MAX_FAILURES: '1000' });
    try {
      const acct = newAccount('cost');
      await s.client.auth.register(acct);
      const hashesFor = async (email: string) => {
        const before = s.app.stats().hashing.started;
        await expectCode(s.client.auth.login({ email, password: 'wrong password!' }), Code.UNAUTHENTICATED);
        return s.app.stats().hashing.started - before;
      };
      expect(await hashesFor(acct.email), 'wrong password').to.equal(1);
      expect(await hashesFor(`ghost-${acct.email}`), 'unknown email').to.equal(1);
    } finally {
      await s.stop();
    }
  });
});
