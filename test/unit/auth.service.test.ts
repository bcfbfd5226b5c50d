import { expect } from 'chai';
import { AppError } from '../../src/errors.js';
import type { Bcrypt } from '../../src/security/passwords.js';
import { fastBcrypt, LOGIN_LIMITS, ORIGIN, useCases } from './harness.js';

const kindOf = (p: Promise<unknown>) =>
  p.then(
    () => 'OK',
    (e: unknown) => (e instanceof AppError ? e.kind : `not an AppError: ${String(e)}`),
  );
const ada = { email: ' Ada@Example.com ', password: 'correct horse battery', displayName: 'Ada' };
const from = (clientAddress: string) => ({ ...ORIGIN, clientAddress, source: clientAddress });

describe('auth use cases (in-memory stores)', () => {
  it('registers: the user and its first session in one transaction, email normalised, origin recorded', async () => {
    const { auth, stores, callerOf } = await useCases();
    const { user, tokens } = await auth.register(ada, ORIGIN);
    expect(user.email).to.equal('ada@example.com');
    expect(stores.calls.slice(0, 4)).to.deep.equal([
      'throttle.reserve',
      'transaction',
      'users.insert',
      'sessions.create',
    ]);
    const caller = await callerOf(tokens.accessToken);
    expect(caller).to.include({ userId: user.id, email: 'ada@example.com' });
    expect(stores.state().sessions.get(caller.sessionId)).to.include({
      userId: user.id,
      clientAddress: ORIGIN.clientAddress,
      userAgent: ORIGIN.userAgent,
    });
  });

  it('leaves nothing behind when the address is taken (ALREADY_EXISTS, session rolled back)', async () => {
    const { auth, stores } = await useCases();
    await auth.register(ada, ORIGIN);
    expect(await kindOf(auth.register({ ...ada, email: 'ADA@example.com' }, ORIGIN))).to.equal(
      'ALREADY_EXISTS',
    );
    expect(stores.state().users.size).to.equal(1);
    expect(stores.state().sessions.size).to.equal(1);
  });

  it('refuses bad input, and weak or personal passwords, before any storage or hashing work', async () => {
    const { auth, stores, hasher } = await useCases();
    expect(await kindOf(auth.register({ email: 'x', password: 'short', displayName: '' }, ORIGIN))).to.equal(
      'INVALID_ARGUMENT',
    );
    const weak = await auth
      .register({ ...ada, password: 'password' }, ORIGIN)
      .catch((e: AppError) => e.message);
    expect(weak).to.match(/^password: is too easy to guess/);
    const personal = await auth
      .register(
        { email: 'ada.lovelace@example.com', password: 'AdaLovelace1815', displayName: 'Ada Lovelace' },
        ORIGIN,
      )
      .catch((e: AppError) => e.message);
    expect(personal).to.match(/must not be built from your email address or display name/);
    expect(stores.calls, 'only the attempts counted (REGISTER_SOURCE_MAX_FAILURES)').to.deep.equal([
      'throttle.reserve',
      'throttle.settle',
      'throttle.reserve',
      'throttle.settle',
    ]);
    expect(hasher.stats().started).to.equal(0);
  });

  it('logs in with the right password; a wrong one and an unknown email get the same UNAUTHENTICATED after one compare each', async () => {
    const { auth, hasher } = await useCases();
    await auth.register(ada, ORIGIN);
    expect((await auth.login(ada, ORIGIN)).user.email).to.equal('ada@example.com');
    const before = hasher.stats().started;
    const wrong = await auth
      .login({ ...ada, password: 'wrong password' }, ORIGIN)
      .catch((e: AppError) => e.message);
    const ghost = await auth
      .login({ ...ada, email: 'ghost@example.com' }, from('198.51.100.8'))
      .catch((e: AppError) => e.message);
    expect(wrong).to.equal(ghost).and.equal('invalid email or password');
    expect(hasher.stats().started - before).to.equal(2);
  });

  it('evaluates at most LOGIN_MAX_FAILURES of many parallel guesses for one account from one address', async () => {
    const { auth, hasher } = await useCases();
    await auth.register(ada, ORIGIN);
    const before = hasher.stats().started;
    const guesses = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        kindOf(auth.login({ ...ada, password: `wrong guess ${i}` }, ORIGIN)),
      ),
    );
    expect(guesses.filter((k) => k === 'UNAUTHENTICATED')).to.have.length(LOGIN_LIMITS.pair);
    expect(guesses.filter((k) => k === 'RESOURCE_EXHAUSTED')).to.have.length(12 - LOGIN_LIMITS.pair);
    expect(hasher.stats().started - before, 'compares run').to.equal(LOGIN_LIMITS.pair);
  });

  it('refuses a locked pair even with the right password, with the wait, until the lock ends; a success clears it', async () => {
    const { auth, hasher, advance } = await useCases();
    await auth.register(ada, ORIGIN);
    for (let i = 0; i < LOGIN_LIMITS.pair; i++)
      await kindOf(auth.login({ ...ada, password: 'wrong password' }, ORIGIN));
    const before = hasher.stats().started;
    const locked = (await auth.login(ada, ORIGIN).catch((e: unknown) => e)) as AppError;
    expect(locked.kind).to.equal('RESOURCE_EXHAUSTED');
    expect(locked.retryAfterS).to.equal(30);
    expect(locked.message).to.equal('too many failed attempts; retry in 30 s');
    expect(hasher.stats().started, 'no hashing while locked').to.equal(before);
    advance(31_000);
    expect(await kindOf(auth.login(ada, ORIGIN)), 'the lock ends').to.equal('OK');
    expect(
      await kindOf(auth.login({ ...ada, password: 'wrong password' }, ORIGIN)),
      'a success resets',
    ).to.equal('UNAUTHENTICATED');
    expect(await kindOf(auth.login(ada, ORIGIN))).to.equal('OK');
  });

  it('does not lock the owner out from another address when one address hammers the account', async () => {
    const { auth } = await useCases();
    await auth.register(ada, ORIGIN);
    const attacker = from('203.0.113.66');
    for (let i = 0; i < LOGIN_LIMITS.pair + 2; i++)
      await kindOf(auth.login({ ...ada, password: 'guess!!!' }, attacker));
    expect(await kindOf(auth.login(ada, attacker)), 'the attacker is locked').to.equal('RESOURCE_EXHAUSTED');
    expect(await kindOf(auth.login(ada, ORIGIN)), 'the owner, elsewhere, is not').to.equal('OK');
  });

  it('locks an address that sprays many accounts after LOGIN_SOURCE_MAX_FAILURES, and only that address', async () => {
    const { auth } = await useCases();
    await auth.register(ada, ORIGIN);
    const sprayer = from('203.0.113.9');
    for (let i = 0; i < LOGIN_LIMITS.source; i++) {
      expect(
        await kindOf(auth.login({ email: `victim${i}@example.com`, password: 'Summer2026!' }, sprayer)),
      ).to.equal('UNAUTHENTICATED');
    }
    expect(await kindOf(auth.login({ email: 'another@example.com', password: 'x' }, sprayer))).to.equal(
      'RESOURCE_EXHAUSTED',
    );
    expect(await kindOf(auth.login(ada, ORIGIN))).to.equal('OK');
  });

  it('locks an account attacked from many addresses for everyone only after LOGIN_ACCOUNT_MAX_FAILURES', async () => {
    const { auth } = await useCases();
    await auth.register(ada, ORIGIN);
    for (let i = 0; i < LOGIN_LIMITS.account - 1; i++) {
      await kindOf(auth.login({ ...ada, password: 'botnet guess' }, from(`203.0.113.${i + 10}`)));
    }
    expect(await kindOf(auth.login(ada, ORIGIN)), 'one short of the limit').to.equal('OK');
    for (let i = 0; i < LOGIN_LIMITS.account; i++) {
      await kindOf(auth.login({ ...ada, password: 'botnet guess' }, from(`203.0.113.${i + 10}`)));
    }
    expect(await kindOf(auth.login(ada, from('198.51.100.200')))).to.equal('RESOURCE_EXHAUSTED');
  });

  it('counts successes against nothing: many users logging in from one address never lock it', async () => {
    const { auth } = await useCases();
    for (let i = 0; i < LOGIN_LIMITS.source + 2; i++) {
      const acct = {
        email: `office${i}@example.com`,
        password: 'correct horse battery',
        displayName: `Office ${i}`,
      };
      await auth.register(acct, ORIGIN);
      expect(await kindOf(auth.login(acct, ORIGIN)), `login ${i}`).to.equal('OK');
    }
  });

  it('gives a refused-for-capacity login its attempt back, and does no storage work for it', async () => {
    // one hashing slot, no queue, and a compare that never finishes: the slot stays busy
    const { auth, stores } = await useCases({
      hashQueueMax: 0,
      bcrypt: { ...fastBcrypt, compare: (() => new Promise(() => {})) as Bcrypt['compare'] },
    });
    await auth.register(ada, ORIGIN);
    void auth.login(ada, from('198.51.100.1'));
    await new Promise((r) => setImmediate(r));
    const before = stores.calls.length;
    expect(await kindOf(auth.login(ada, ORIGIN))).to.equal('RESOURCE_EXHAUSTED');
    expect(await kindOf(auth.register({ ...ada, email: 'other@example.com' }, ORIGIN))).to.equal(
      'RESOURCE_EXHAUSTED',
    );
    expect(stores.calls.length, 'no store call for the refused calls').to.equal(before);
  });

  it('rehashes a password made at another cost on a successful login, never on a failed one', async () => {
    const { auth, stores } = await useCases();
    const { user } = await auth.register(ada, ORIGIN);
    const stored = stores.state().users.get(user.id);
    if (stored) stored.passwordHash = `$2b$08$${ada.password}`;
    await kindOf(auth.login({ ...ada, password: 'wrong password' }, ORIGIN));
    expect(stores.state().users.get(user.id)?.passwordHash).to.equal(`$2b$08$${ada.password}`);
    await auth.login(ada, ORIGIN);
    expect(stores.state().users.get(user.id)?.passwordHash).to.equal(`$2b$10$${ada.password}`);
  });

  it('rotates a refresh token once; a second use is a replay that ends the session', async () => {
    const { auth, callerOf } = await useCases();
    const { tokens } = await auth.register(ada, ORIGIN);
    const next = await auth.refresh(tokens.refreshToken, ORIGIN);
    expect((await callerOf(next.accessToken)).sessionId).to.equal(
      (await callerOf(tokens.accessToken)).sessionId,
    );
    const replay = await auth.refresh(tokens.refreshToken, ORIGIN).catch((e: AppError) => e.message);
    expect(replay).to.match(/already used: the session has been ended/);
    expect(await kindOf(auth.refresh(next.refreshToken, ORIGIN)), 'the session is over').to.equal(
      'UNAUTHENTICATED',
    );
    expect(await auth.validate(next.accessToken)).to.deep.equal({ active: false });
  });

  it('never refreshes a session older than SESSION_MAX_LIFETIME_S, however often it rotated', async () => {
    const { auth, advance } = await useCases({ sessionMaxLifetimeS: 60 });
    let { tokens } = await auth.register(ada, ORIGIN);
    for (let i = 0; i < 5; i++) {
      advance(10_000);
      tokens = await auth.refresh(tokens.refreshToken, ORIGIN);
    }
    advance(11_000);
    expect(await kindOf(auth.refresh(tokens.refreshToken, ORIGIN))).to.equal('UNAUTHENTICATED');
  });

  it('answers a malformed refresh token without asking storage', async () => {
    const { auth, stores } = await useCases();
    expect(await kindOf(auth.refresh('not-a-token', ORIGIN))).to.equal('UNAUTHENTICATED');
    expect(await kindOf(auth.refresh('', ORIGIN))).to.equal('INVALID_ARGUMENT');
    await auth.logout('not-a-token', ORIGIN);
    expect(stores.calls).to.deep.equal([]);
  });

  it("logs out (idempotent) and introspects with the user's current email and roles, only active:false after", async () => {
    const { auth, stores } = await useCases();
    const { user, tokens } = await auth.register(ada, ORIGIN);
    const stored = stores.state().users.get(user.id);
    if (stored) Object.assign(stored, { email: 'ada.new@example.com', roles: ['admin', 'user'] });
    const live = await auth.validate(tokens.accessToken);
    expect(live).to.deep.include({
      active: true,
      userId: user.id,
      email: 'ada.new@example.com',
      roles: ['admin', 'user'],
    });
    await auth.logout(tokens.refreshToken, ORIGIN);
    await auth.logout(tokens.refreshToken, ORIGIN);
    expect(await auth.validate(tokens.accessToken)).to.deep.equal({ active: false });
    expect(await auth.validate('garbage')).to.deep.equal({ active: false });
  });

  it('changes the password: the right current one, every session ended, a new one opened, atomically', async () => {
    const { auth, callerOf, stores } = await useCases();
    const first = await auth.register(ada, ORIGIN);
    const second = await auth.login(ada, ORIGIN);
    const caller = await callerOf(first.tokens.accessToken);
    const change = (currentPassword: string) =>
      auth.changePassword(caller, { currentPassword, newPassword: 'battery staple orbit' }, ORIGIN);
    expect(await kindOf(change('wrong one'))).to.equal('UNAUTHENTICATED');
    const fresh = await change(ada.password);
    for (const old of [first, second])
      expect((await auth.validate(old.tokens.accessToken)).active).to.equal(false);
    expect((await auth.validate(fresh.accessToken)).active).to.equal(true);
    const reasons = [...stores.state().sessions.values()].map((s) => s.revokedReason ?? 'live');
    expect(reasons.sort()).to.deep.equal(['live', 'password change', 'password change']);
    expect(await kindOf(auth.login(ada, ORIGIN))).to.equal('UNAUTHENTICATED');
    expect(await kindOf(auth.login({ ...ada, password: 'battery staple orbit' }, ORIGIN))).to.equal('OK');
  });

  it('limits wrong current passwords per user, and then refuses even the right one until the lock ends', async () => {
    const { auth, callerOf, advance } = await useCases();
    const { tokens } = await auth.register(ada, ORIGIN);
    const caller = await callerOf(tokens.accessToken);
    const change = (currentPassword: string) =>
      kindOf(auth.changePassword(caller, { currentPassword, newPassword: 'battery staple orbit' }, ORIGIN));
    for (let i = 0; i < LOGIN_LIMITS.pair; i++)
      expect(await change(`guess ${i}`)).to.equal('UNAUTHENTICATED');
    expect(await change(ada.password)).to.equal('RESOURCE_EXHAUSTED');
    advance(31_000);
    expect(await change(ada.password)).to.equal('OK');
  });

  it('refuses a weak or personal new password with INVALID_ARGUMENT naming new_password', async () => {
    const { auth, callerOf } = await useCases();
    const { tokens } = await auth.register(ada, ORIGIN);
    const err = await auth
      .changePassword(
        await callerOf(tokens.accessToken),
        { currentPassword: ada.password, newPassword: '12345678' },
        ORIGIN,
      )
      .catch((e: AppError) => e.message);
    expect(err).to.match(/^new_password: is too easy to guess/);
  });

  it("lists the caller's live sessions newest first, marking the current one, and revokes one of them", async () => {
    const { auth, callerOf, advance } = await useCases();
    const first = await auth.register(ada, ORIGIN);
    advance(1000);
    const second = await auth.login(ada, from('198.51.100.99'));
    const me = await callerOf(second.tokens.accessToken);
    const list = await auth.listSessions(me);
    expect(list.map((s) => [s.clientAddress, s.current])).to.deep.equal([
      ['198.51.100.99', true],
      [ORIGIN.clientAddress, false],
    ]);
    await auth.revokeSession(me, (await callerOf(first.tokens.accessToken)).sessionId, ORIGIN);
    expect((await auth.validate(first.tokens.accessToken)).active).to.equal(false);
    expect(await auth.listSessions(me)).to.have.length(1);
  });

  it("answers NOT_FOUND for another user's session, an ended one, or an unknown one", async () => {
    const { auth, callerOf } = await useCases();
    const a = await auth.register(ada, ORIGIN);
    const b = await auth.register({ ...ada, email: 'bob@example.com', displayName: 'Bob' }, ORIGIN);
    const bob = await callerOf(b.tokens.accessToken);
    expect(
      await kindOf(auth.revokeSession(bob, (await callerOf(a.tokens.accessToken)).sessionId, ORIGIN)),
    ).to.equal('NOT_FOUND');
    expect((await auth.validate(a.tokens.accessToken)).active, "ada's session untouched").to.equal(true);
    expect(await kindOf(auth.revokeSession(bob, '00000000-0000-4000-8000-000000000000', ORIGIN))).to.equal(
      'NOT_FOUND',
    );
    expect(await kindOf(auth.revokeSession(bob, 'nope', ORIGIN))).to.equal('INVALID_ARGUMENT');
  });
});

describe('auth use cases: security outcomes counted for the metrics', () => {
  it('counts each login by outcome; a malformed request is no attempt', async () => {
    const { auth, counted } = await useCases();
    await auth.register(ada, ORIGIN);
    await auth.login(ada, ORIGIN);
    await kindOf(auth.login({ ...ada, password: 'wrong password' }, ORIGIN));
    await kindOf(auth.login({ ...ada, email: 'nobody@example.com' }, ORIGIN));
    await kindOf(auth.login({ ...ada, email: 'not an email' }, ORIGIN));
    for (let i = 0; i < LOGIN_LIMITS.pair; i++)
      await kindOf(auth.login({ ...ada, password: 'wrong' }, from('203.0.113.9')));
    expect(await kindOf(auth.login(ada, from('203.0.113.9')))).to.equal('RESOURCE_EXHAUSTED');
    expect(counted).to.deep.equal([
      'login:success',
      'login:bad_credentials',
      'login:bad_credentials',
      ...Array(LOGIN_LIMITS.pair).fill('login:bad_credentials'),
      'login:throttled',
    ]);
  });

  it('counts a login refused for capacity as refused, not as a failure of the account', async () => {
    const { auth, counted } = await useCases({
      hashQueueMax: 0,
      bcrypt: { ...fastBcrypt, compare: (() => new Promise(() => {})) as Bcrypt['compare'] },
    });
    await auth.register(ada, ORIGIN);
    void auth.login(ada, from('198.51.100.1'));
    await new Promise((r) => setImmediate(r));
    expect(await kindOf(auth.login(ada, ORIGIN))).to.equal('RESOURCE_EXHAUSTED');
    expect(counted).to.deep.equal(['login:refused']);
  });

  it('counts refreshes: rotated, grace, replay, invalid', async () => {
    const { auth, counted } = await useCases({ graceS: 30 });
    const { tokens } = await auth.register(ada, ORIGIN);
    const next = await auth.refresh(tokens.refreshToken, ORIGIN);
    await auth.refresh(tokens.refreshToken, ORIGIN); // the lost answer, retried within the grace
    await kindOf(auth.refresh('x'.repeat(43), ORIGIN));
    await kindOf(auth.refresh('not-a-token', ORIGIN));
    await kindOf(auth.refresh(next.refreshToken, ORIGIN)); // superseded by the grace pair: a replay
    expect(counted).to.deep.equal([
      'refresh:rotated',
      'refresh:grace',
      'refresh:invalid',
      'refresh:invalid',
      'refresh:replay',
    ]);
  });
});

describe('auth use cases: Register throttling (REGISTER_SOURCE_MAX_FAILURES)', () => {
  it('counts failed Registers per source before any hash, refuses a source over its limit, and a success gives its attempt back', async () => {
    const { auth, hasher } = await useCases(); // registerLimit 4
    const here = from('203.0.113.40');
    await auth.register(ada, here);
    for (let i = 0; i < 3; i++)
      await auth.register({ ...ada, displayName: `Ada ${i}` }, here).catch(() => {});
    await auth.register({ ...ada, email: 'grace@example.com' }, here); // a success: no attempt kept
    expect(await kindOf(auth.register({ ...ada, displayName: 'Ada 4' }, here))).to.equal('ALREADY_EXISTS');
    const hashes = hasher.stats().started;
    expect(await kindOf(auth.register({ ...ada, email: 'hedy@example.com' }, here))).to.equal(
      'RESOURCE_EXHAUSTED',
    );
    expect(hasher.stats().started, 'no hash for a refused source').to.equal(hashes);
    expect(
      await kindOf(auth.register({ ...ada, email: 'hedy@example.com' }, from('198.51.100.41'))),
    ).to.equal('OK');
  });
});
