import { expect } from 'chai';
import type { Caller } from '../../src/caller.js';
import { AppError } from '../../src/errors.js';
import { useCases } from './harness.js';

const kindOf = (p: Promise<unknown>) =>
  p.then(
    () => 'OK',
    (e: unknown) => (e instanceof AppError ? e.kind : `not an AppError: ${String(e)}`),
  );

async function world() {
  const uc = useCases();
  const signUp = async (name: string) => {
    const { user, tokens } = await uc.auth.register({
      email: `${name}@example.com`,
      password: `${name} password phrase`,
      displayName: name,
    });
    return { user, caller: uc.callerOf(tokens.accessToken), tokens };
  };
  const admin = async (c: Caller): Promise<Caller> => {
    const stored = uc.stores.state().users.get(c.userId);
    if (stored) stored.roles = ['admin', 'user'];
    return { ...c, roles: ['admin', 'user'] };
  };
  return { ...uc, signUp, admin };
}

describe('user use cases (in-memory stores)', () => {
  it('gets a user by id or email in one read that also proves the caller live', async () => {
    const w = await world();
    const ada = await w.signUp('ada');
    const bob = await w.signUp('bob');
    expect((await w.users.getUser({ by: 'id', id: bob.user.id.toUpperCase() }, ada.caller)).id).to.equal(
      bob.user.id,
    );
    expect((await w.users.getUser({ by: 'email', email: 'BOB@example.com' }, ada.caller)).id).to.equal(
      bob.user.id,
    );
    expect(w.stores.calls.filter((c) => c === 'users.findForCaller')).to.have.length(2);
    expect(
      await kindOf(w.users.getUser({ by: 'id', id: '00000000-0000-4000-8000-000000000000' }, ada.caller)),
    ).to.equal('NOT_FOUND');
    await w.auth.logout(ada.tokens.refreshToken);
    expect(
      await kindOf(w.users.getUser({ by: 'id', id: bob.user.id }, ada.caller)),
      'a dead session learns nothing, not even NOT_FOUND',
    ).to.equal('UNAUTHENTICATED');
    expect(await kindOf(w.users.getUser(undefined, bob.caller))).to.equal('INVALID_ARGUMENT');
  });

  it('batch-gets in request order with duplicates, all or nothing', async () => {
    const w = await world();
    const [a, b] = [await w.signUp('a'), await w.signUp('b')];
    const ids = [b.user.id, a.user.id, b.user.id];
    expect((await w.users.batchGet(ids)).map((u) => u.id)).to.deep.equal(ids);
    const ghost = '00000000-0000-4000-8000-00000000dead';
    const err = await w.users.batchGet([a.user.id, ghost]).catch((e: AppError) => e);
    expect((err as AppError).kind).to.equal('NOT_FOUND');
    expect((err as AppError).message)
      .to.include(ghost)
      .and.not.include(a.user.id);
    expect(await kindOf(w.users.batchGet(Array(101).fill(a.user.id)))).to.equal('INVALID_ARGUMENT');
  });

  it('pages with signed tokens bound to the query', async () => {
    const w = await world();
    for (const n of ['ann', 'anna', 'annie', 'bob']) await w.signUp(n);
    const first = await w.users.list({ pageSize: 2, pageToken: '', query: 'ANN' });
    expect(first.users.map((u) => u.displayName)).to.deep.equal(['ann', 'anna']);
    const second = await w.users.list({ pageSize: 2, pageToken: first.nextPageToken, query: 'ann' });
    expect(second.users.map((u) => u.displayName)).to.deep.equal(['annie']);
    expect(second.nextPageToken).to.equal('');
    expect(
      await kindOf(w.users.list({ pageSize: 2, pageToken: first.nextPageToken, query: 'bob' })),
    ).to.equal('INVALID_ARGUMENT');
  });

  it('lets users change themselves, admins anyone, and only admins change roles', async () => {
    const w = await world();
    const ada = await w.signUp('ada');
    const bob = await w.signUp('bob');
    const input = (id: string, over = {}) => ({ id, displayName: 'New', email: '', roles: [], ...over });
    expect((await w.users.update(ada.caller, input(ada.user.id), ['display_name'])).displayName).to.equal(
      'New',
    );
    expect(await kindOf(w.users.update(ada.caller, input(bob.user.id), ['display_name']))).to.equal(
      'PERMISSION_DENIED',
    );
    expect(
      await kindOf(w.users.update(ada.caller, input(ada.user.id, { roles: ['user', 'admin'] }), ['roles'])),
    ).to.equal('PERMISSION_DENIED');
    const root = await w.admin(ada.caller);
    expect((await w.users.update(root, input(bob.user.id), ['display_name'])).displayName).to.equal('New');
  });

  it("ends a user's sessions in the same transaction when a role is taken away, not when one is given", async () => {
    const w = await world();
    const root = await w.admin((await w.signUp('root')).caller);
    const bob = await w.signUp('bob');
    const roles = (r: string[]) => ({ id: bob.user.id, displayName: '', email: '', roles: r });
    await w.users.update(root, roles(['user', 'admin']), ['roles']);
    expect((await w.auth.validate(bob.tokens.accessToken)).active, 'a grant keeps sessions').to.equal(true);
    await w.users.update(root, roles(['user']), ['roles']);
    expect((await w.auth.validate(bob.tokens.accessToken)).active).to.equal(false);
    const [s] = [...w.stores.state().sessions.values()].filter((x) => x.userId === bob.user.id);
    expect(s?.revokedReason).to.equal('roles reduced');
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
    const ada = await w.signUp('ada');
    expect((await w.users.setRole(' ADA@example.com', 'admin', true)).roles).to.deep.equal(['admin', 'user']);
    expect((await w.users.setRole('ada@example.com', 'admin', false)).roles).to.deep.equal(['user']);
    expect((await w.auth.validate(ada.tokens.accessToken)).active, 'revoking ends sessions').to.equal(false);
    expect(await kindOf(w.users.setRole('nobody@example.com', 'admin', true))).to.equal('NOT_FOUND');
  });
});
