import { expect } from 'chai';
import { AppError } from '../../src/errors.js';
import type { Bcrypt } from '../../src/security/passwords.js';
import { fastBcrypt, LOGIN_POLICY, useCases } from './harness.js';

const kindOf = (p: Promise<unknown>) =>
  p.then(
    () => 'OK',
    (e: unknown) => (e instanceof AppError ? e.kind : `not an AppError: ${String(e)}`),
  );
const ada = { email: ' Ada@Example.com ', password: 'correct horse battery', displayName: 'Ada' };

describe('auth use cases (in-memory stores)', () => {
  it('registers: the user and its first session in one transaction, email normalised', async () => {
    const { auth, stores, callerOf } = useCases();
    const { user, tokens } = await auth.register(ada);
    expect(user.email).to.equal('ada@example.com');
    expect(stores.calls.slice(0, 3)).to.deep.equal(['transaction', 'users.insert', 'sessions.create']);
    const caller = callerOf(tokens.accessToken);
    expect(caller).to.include({ userId: user.id, email: 'ada@example.com' });
    expect(stores.state().sessions.get(caller.sessionId)?.userId).to.equal(user.id);
  });

  it('leaves nothing behind when the address is taken (ALREADY_EXISTS, session rolled back)', async () => {
    const { auth, stores } = useCases();
    await auth.register(ada);
    expect(await kindOf(auth.register({ ...ada, email: 'ADA@example.com' }))).to.equal('ALREADY_EXISTS');
    expect(stores.state().users.size).to.equal(1);
    expect(stores.state().sessions.size).to.equal(1);
  });

  it('refuses bad input before any storage or hashing work', async () => {
    const { auth, stores, hasher } = useCases();
    expect(await kindOf(auth.register({ email: 'x', password: 'short', displayName: '' }))).to.equal(
      'INVALID_ARGUMENT',
    );
    expect(stores.calls).to.deep.equal([]);
    expect(hasher.stats().started).to.equal(0);
  });

  it('logs in with the right password; a wrong one and an unknown email get the same UNAUTHENTICATED after one compare each', async () => {
    const { auth, hasher } = useCases();
    await auth.register(ada);
    expect((await auth.login(ada)).user.email).to.equal('ada@example.com');
    const before = hasher.stats().started;
    const wrong = await auth.login({ ...ada, password: 'wrong password' }).catch((e: AppError) => e.message);
    const ghost = await auth.login({ ...ada, email: 'ghost@example.com' }).catch((e: AppError) => e.message);
    expect(wrong).to.equal(ghost).and.equal('invalid email or password');
    expect(hasher.stats().started - before).to.equal(2);
  });

  it('checks the throttle before hashing and locks after LOGIN_MAX_FAILURES, even for the right password', async () => {
    const { auth, hasher, advance } = useCases();
    await auth.register(ada);
    for (let i = 0; i < LOGIN_POLICY.maxFailures; i++) {
      expect(await kindOf(auth.login({ ...ada, password: 'wrong password' }))).to.equal('UNAUTHENTICATED');
    }
    const before = hasher.stats().started;
    const locked = await auth.login(ada).catch((e: AppError) => e);
    expect((locked as AppError).kind).to.equal('RESOURCE_EXHAUSTED');
    expect((locked as AppError).message).to.match(/retry in 30 s/);
    expect(hasher.stats().started, 'no hashing while locked').to.equal(before);
    advance(31_000);
    expect(await kindOf(auth.login(ada)), 'the lock ends').to.equal('OK');
    expect(await kindOf(auth.login({ ...ada, password: 'wrong password' })), 'a success resets').to.equal(
      'UNAUTHENTICATED',
    );
    expect(await kindOf(auth.login(ada))).to.equal('OK');
  });

  it('refuses a login flood at the hashing limit before any storage work', async () => {
    // one hashing slot, no queue, and a compare that never finishes: the slot stays busy
    const { auth, stores } = useCases({
      hashQueueMax: 0,
      bcrypt: { ...fastBcrypt, compare: (() => new Promise(() => {})) as Bcrypt['compare'] },
    });
    await auth.register(ada);
    void auth.login(ada);
    await new Promise((r) => setImmediate(r));
    const before = stores.calls.length;
    expect(await kindOf(auth.login(ada))).to.equal('RESOURCE_EXHAUSTED');
    expect(await kindOf(auth.register({ ...ada, email: 'other@example.com' }))).to.equal(
      'RESOURCE_EXHAUSTED',
    );
    expect(stores.calls.length, 'no store call for the refused calls').to.equal(before);
  });

  it('rehashes a password made at another cost on a successful login, never on a failed one', async () => {
    const { auth, stores } = useCases();
    const { user } = await auth.register(ada);
    const stored = stores.state().users.get(user.id);
    if (stored) stored.passwordHash = `$2b$08$${ada.password}`;
    await kindOf(auth.login({ ...ada, password: 'wrong password' }));
    expect(stores.state().users.get(user.id)?.passwordHash).to.equal(`$2b$08$${ada.password}`);
    await auth.login(ada);
    expect(stores.state().users.get(user.id)?.passwordHash).to.equal(`$2b$10$${ada.password}`);
  });

  it('rotates a refresh token once; a second use is a replay that ends the session', async () => {
    const { auth, callerOf } = useCases();
    const { tokens } = await auth.register(ada);
    const next = await auth.refresh(tokens.refreshToken);
    expect(callerOf(next.accessToken).sessionId).to.equal(callerOf(tokens.accessToken).sessionId);
    const replay = await auth.refresh(tokens.refreshToken).catch((e: AppError) => e.message);
    expect(replay).to.match(/already used: the session has been ended/);
    expect(await kindOf(auth.refresh(next.refreshToken)), 'the session is over').to.equal('UNAUTHENTICATED');
    expect(await auth.validate(next.accessToken)).to.deep.equal({ active: false });
  });

  it('answers a malformed refresh token without asking storage', async () => {
    const { auth, stores } = useCases();
    expect(await kindOf(auth.refresh('not-a-token'))).to.equal('UNAUTHENTICATED');
    expect(await kindOf(auth.refresh(''))).to.equal('INVALID_ARGUMENT');
    await auth.logout('not-a-token');
    expect(stores.calls).to.deep.equal([]);
  });

  it('logs out (idempotent) and introspects: active with claims while live, only active:false after', async () => {
    const { auth } = useCases();
    const { user, tokens } = await auth.register(ada);
    const live = await auth.validate(tokens.accessToken);
    expect(live).to.include({ active: true, userId: user.id, email: 'ada@example.com' });
    await auth.logout(tokens.refreshToken);
    await auth.logout(tokens.refreshToken);
    expect(await auth.validate(tokens.accessToken)).to.deep.equal({ active: false });
    expect(await auth.validate('garbage')).to.deep.equal({ active: false });
  });

  it('changes the password: the right current one, every session ended, a new one opened, atomically', async () => {
    const { auth, callerOf, stores } = useCases();
    const first = await auth.register(ada);
    const second = await auth.login(ada);
    const caller = callerOf(first.tokens.accessToken);
    expect(
      await kindOf(
        auth.changePassword(caller, { currentPassword: 'wrong one', newPassword: 'battery staple' }),
      ),
    ).to.equal('UNAUTHENTICATED');
    const fresh = await auth.changePassword(caller, {
      currentPassword: ada.password,
      newPassword: 'battery staple',
    });
    for (const old of [first, second])
      expect((await auth.validate(old.tokens.accessToken)).active).to.equal(false);
    expect((await auth.validate(fresh.accessToken)).active).to.equal(true);
    const reasons = [...stores.state().sessions.values()].map((s) => s.revokedReason ?? 'live');
    expect(reasons.sort()).to.deep.equal(['live', 'password change', 'password change']);
    expect(await kindOf(auth.login(ada))).to.equal('UNAUTHENTICATED');
    expect(await kindOf(auth.login({ ...ada, password: 'battery staple' }))).to.equal('OK');
  });
});
