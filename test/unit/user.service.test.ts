import { expect } from 'chai';
import type { UserCaller } from '../../src/caller.js';
import { AppError } from '../../src/errors.js';
import { ORIGIN, useCases } from './harness.js';

const kindOf = (p: Promise<unknown>) =>
  p.then(
    () => 'OK',
    (e: unknown) => (e instanceof AppError ? e.kind : `not an AppError: ${String(e)}`),
  );
const messageOf = (p: Promise<unknown>) =>
  p.then(
    () => 'OK',
    (e: Error) => e.message,
  );

async function world() {
  const uc = await useCases();
  const signUp = async (name: string) => {
    const password = `${name} quiet orbit lantern`;
    const { user, tokens } = await uc.auth.register(
      { email: `${name}@example.com`, password, displayName: `${name} Person` },
      ORIGIN,
    );
    return { user, caller: await uc.callerOf(tokens.accessToken), tokens, password };
  };
  const admin = (c: UserCaller): UserCaller => {
    const stored = uc.stores.state().users.get(c.userId);
    if (stored) stored.roles = ['admin', 'user'];
    return { ...c, roles: ['admin', 'user'] };
  };
  const input = (id: string, over: Record<string, unknown> = {}) => ({
    id,
    displayName: '',
    email: '',
    roles: [] as string[],
    currentPassword: '',
    ...over,
  });
  return { ...uc, signUp, admin, input };
}

describe('user use cases (in-memory stores)', () => {
  it('gets a user by id in one read that also proves the caller live: the full record for oneself, a public profile of others', async () => {
    const w = await world();
    const ada = await w.signUp('ada');
    const bob = await w.signUp('bob');
    expect(await w.users.getUser({ by: 'id', id: ada.user.id }, ada.caller)).to.deep.equal(ada.user);
    expect(await w.users.getUser({ by: 'id', id: bob.user.id.toUpperCase() }, ada.caller)).to.deep.equal({
      id: bob.user.id,
      displayName: 'bob Person',
      createTime: bob.user.createTime,
    });
    expect(w.stores.calls.filter((c) => c === 'users.findForCaller')).to.have.length(2);
    await w.auth.logout(ada.tokens.refreshToken, ORIGIN);
    expect(
      await kindOf(w.users.getUser({ by: 'id', id: bob.user.id }, ada.caller)),
      'a dead session learns nothing, not even NOT_FOUND',
    ).to.equal('UNAUTHENTICATED');
    expect(await kindOf(w.users.getUser(undefined, bob.caller))).to.equal('INVALID_ARGUMENT');
  });

  it("answers GetUser by email only for the caller's own address, PERMISSION_DENIED for any other whether or not it exists", async () => {
    const w = await world();
    const ada = await w.signUp('ada');
    await w.signUp('bob');
    expect((await w.users.getUser({ by: 'email', email: 'ADA@example.com' }, ada.caller)).id).to.equal(
      ada.user.id,
    );
    const taken = await messageOf(w.users.getUser({ by: 'email', email: 'bob@example.com' }, ada.caller));
    const free = await messageOf(w.users.getUser({ by: 'email', email: 'nobody@example.com' }, ada.caller));
    expect(taken).to.equal(free).and.equal('you can look up only your own email address');
    const root = w.admin(ada.caller);
    expect('email' in (await w.users.getUser({ by: 'email', email: 'bob@example.com' }, root))).to.equal(
      true,
    );
    expect(await kindOf(w.users.getUser({ by: 'email', email: 'nobody@example.com' }, root))).to.equal(
      'NOT_FOUND',
    );
  });

  it('uses the roles stored now, not those in the token, to decide what a caller sees', async () => {
    const w = await world();
    const ada = await w.signUp('ada');
    const bob = await w.signUp('bob');
    w.admin(ada.caller); // promoted after the token was issued
    expect('email' in (await w.users.getUser({ by: 'id', id: bob.user.id }, ada.caller))).to.equal(true);
  });

  it('batch-gets in request order with duplicates, all or nothing, public profiles of others', async () => {
    const w = await world();
    const [a, b] = [await w.signUp('a1'), await w.signUp('b1')];
    const ids = [b.user.id, a.user.id, b.user.id];
    const users = await w.users.batchGet(a.caller, ids);
    expect(users.map((u) => u.id)).to.deep.equal(ids);
    expect(users.map((u) => 'email' in u)).to.deep.equal([false, true, false]);
    const ghost = '00000000-0000-4000-8000-00000000dead';
    const err = (await w.users.batchGet(a.caller, [a.user.id, ghost]).catch((e: unknown) => e)) as AppError;
    expect(err.kind).to.equal('NOT_FOUND');
    expect(err.message).to.include(ghost).and.not.include(a.user.id);
    expect(await kindOf(w.users.batchGet(a.caller, Array(101).fill(a.user.id)))).to.equal('INVALID_ARGUMENT');
  });

  it('lets non-admins search display names only (query of 3+ characters, 50 a page), admins page everything', async () => {
    const w = await world();
    const me = await w.signUp('zed');
    for (const n of ['ann', 'anna', 'annie', 'bob']) await w.signUp(n);
    const page = (query: string, pageSize = 2, pageToken = '') =>
      w.users.list(me.caller, { pageSize, pageToken, query });
    const first = await page('ANN');
    expect(first.users.map((u) => u.displayName)).to.deep.equal(['ann Person', 'anna Person']);
    expect(
      first.users.every((u) => !('email' in u)),
      'public profiles',
    ).to.equal(true);
    const second = await page('ann', 2, first.nextPageToken);
    expect(second.users.map((u) => u.displayName)).to.deep.equal(['annie Person']);
    expect(second.nextPageToken).to.equal('');
    expect((await page('bob@')).users, 'never a search of emails').to.deep.equal([]);
    for (const q of ['', 'an']) expect(await kindOf(page(q)), JSON.stringify(q)).to.equal('INVALID_ARGUMENT');
    expect(await kindOf(page('bob', 2, first.nextPageToken)), 'the token keeps its query').to.equal(
      'INVALID_ARGUMENT',
    );
    const root = w.admin(me.caller);
    const all = await w.users.list(root, { pageSize: 100, pageToken: '', query: '' });
    expect(all.users).to.have.length(5);
    expect(all.users.every((u) => 'email' in u)).to.equal(true);
    expect((await w.users.list(root, { pageSize: 10, pageToken: '', query: 'bob@' })).users).to.have.length(
      1,
    );
  });

  it('lets users change themselves, admins anyone, and only admins change roles: permission before any value', async () => {
    const w = await world();
    const ada = await w.signUp('ada');
    const bob = await w.signUp('bob');
    expect(
      (
        (await w.users.update(ada.caller, w.input(ada.user.id, { displayName: 'New' }), [
          'display_name',
        ])) as { displayName: string }
      ).displayName,
    ).to.equal('New');
    expect(
      await kindOf(w.users.update(ada.caller, w.input(bob.user.id, { displayName: 'x' }), ['display_name'])),
    ).to.equal('PERMISSION_DENIED');
    // the values are nonsense: the answer is still about permission
    const bogus = w.input(ada.user.id, { roles: Array(500).fill('x'.repeat(10_000)) });
    const denied = await messageOf(w.users.update(ada.caller, bogus, ['roles']));
    expect(denied).to.equal('only an admin can change roles');
    const root = w.admin(ada.caller);
    expect(
      await kindOf(w.users.update(root, w.input(bob.user.id, { displayName: 'By Admin' }), ['display_name'])),
    ).to.equal('OK');
  });

  it('bounds roles (16, known ones) and never echoes more than 64 characters of a value', async () => {
    const w = await world();
    const root = w.admin((await w.signUp('root')).caller);
    const bob = await w.signUp('bob');
    const many = await messageOf(
      w.users.update(root, w.input(bob.user.id, { roles: Array(17).fill('user') }), ['roles']),
    );
    expect(many).to.match(/at most 16 roles/);
    const long = 'r'.repeat(5000);
    const unknown = await messageOf(
      w.users.update(root, w.input(bob.user.id, { roles: ['user', long, `${long}2`, `${long}3`] }), [
        'roles',
      ]),
    );
    expect(unknown).to.match(/unknown role/);
    expect(unknown.length).to.be.lessThan(200);
    expect(unknown).to.not.include('r'.repeat(65));
  });

  it("needs current_password for a change of one's own email, counts wrong ones, and ends every other session", async () => {
    const w = await world();
    const ada = await w.signUp('ada');
    const other = await w.auth.login({ email: 'ada@example.com', password: ada.password }, ORIGIN);
    const change = (currentPassword: string, email = 'ada.new@example.com') =>
      w.users.update(ada.caller, w.input(ada.user.id, { email, currentPassword }), ['email']);
    const missing = await messageOf(change(''));
    expect(missing).to.equal('current_password: is required');
    expect(await kindOf(change('not it'))).to.equal('UNAUTHENTICATED');
    const changed = await change(ada.password);
    expect('email' in changed && changed.email).to.equal('ada.new@example.com');
    expect((await w.auth.validate(other.tokens.accessToken)).active, 'the other session ended').to.equal(
      false,
    );
    expect((await w.auth.validate(ada.tokens.accessToken)).active, 'the calling one lives').to.equal(true);
    expect((await w.auth.validate(ada.tokens.accessToken)).email, 'and reports the new email').to.equal(
      'ada.new@example.com',
    );
  });

  it('locks email changes after LOGIN_MAX_FAILURES wrong current passwords', async () => {
    const w = await world();
    const ada = await w.signUp('ada');
    const change = (currentPassword: string) =>
      kindOf(
        w.users.update(ada.caller, w.input(ada.user.id, { email: 'x@example.com', currentPassword }), [
          'email',
        ]),
      );
    for (let i = 0; i < 3; i++) expect(await change(`wrong ${i}`)).to.equal('UNAUTHENTICATED');
    expect(await change(ada.password)).to.equal('RESOURCE_EXHAUSTED');
  });

  it("ends a user's sessions in the same transaction when a role is taken away, not when one is given", async () => {
    const w = await world();
    const root = w.admin((await w.signUp('root')).caller);
    const bob = await w.signUp('bob');
    await w.users.update(root, w.input(bob.user.id, { roles: ['user', 'admin'] }), ['roles']);
    expect((await w.auth.validate(bob.tokens.accessToken)).active, 'a grant keeps sessions').to.equal(true);
    await w.users.update(root, w.input(bob.user.id, { roles: ['user'] }), ['roles']);
    expect((await w.auth.validate(bob.tokens.accessToken)).active).to.equal(false);
    const [s] = [...w.stores.state().sessions.values()].filter((x) => x.userId === bob.user.id);
    expect(s?.revokedReason).to.equal('roles reduced');
  });

  it('never leaves the system without an admin: the last one can neither lose the role nor be deleted', async () => {
    const w = await world();
    const ada = await w.signUp('ada');
    const root = w.admin(ada.caller);
    expect(await kindOf(w.users.update(root, w.input(ada.user.id, { roles: ['user'] }), ['roles']))).to.equal(
      'FAILED_PRECONDITION',
    );
    expect(await kindOf(w.users.remove(root, ada.user.id))).to.equal('FAILED_PRECONDITION');
    expect(await kindOf(w.users.setRole('ada@example.com', 'admin', false, 'cli:unit'))).to.equal(
      'FAILED_PRECONDITION',
    );
    const bob = await w.signUp('bob');
    await w.users.update(root, w.input(bob.user.id, { roles: ['admin', 'user'] }), ['roles']);
    expect(await kindOf(w.users.remove(root, ada.user.id)), 'with another admin, fine').to.equal('OK');
  });

  it('soft-deletes (self or admin): sessions end, the address is free again', async () => {
    const w = await world();
    const ada = await w.signUp('ada');
    const bob = await w.signUp('bob');
    expect(await kindOf(w.users.remove(ada.caller, bob.user.id))).to.equal('PERMISSION_DENIED');
    await w.users.remove(bob.caller, bob.user.id);
    expect((await w.auth.validate(bob.tokens.accessToken)).active).to.equal(false);
    expect(await kindOf(w.users.remove(bob.caller, bob.user.id))).to.equal('NOT_FOUND');
    expect(await kindOf(w.signUp('bob')), 'the address can be registered again').to.equal('OK');
  });

  it('grants and revokes a role by email for the operator command', async () => {
    const w = await world();
    await w.signUp('root').then((r) => w.admin(r.caller));
    const ada = await w.signUp('ada');
    expect((await w.users.setRole(' ADA@example.com', 'admin', true, 'cli:unit')).roles).to.deep.equal([
      'admin',
      'user',
    ]);
    expect((await w.users.setRole('ada@example.com', 'admin', false, 'cli:unit')).roles).to.deep.equal([
      'user',
    ]);
    expect((await w.auth.validate(ada.tokens.accessToken)).active, 'revoking ends sessions').to.equal(false);
    expect(await kindOf(w.users.setRole('nobody@example.com', 'admin', true, 'cli:unit'))).to.equal(
      'NOT_FOUND',
    );
  });
});
