import { expect } from 'chai';
import type { UserCaller } from '../../src/caller.js';
import { type CacheObserver, createReadCache } from '../../src/db/cache.js';
import { cachedStores } from '../../src/db/cached-stores.js';
import type { Tx, UserRecord } from '../../src/ports.js';
import { createMemoryStores } from './fakes.js';

const user = (id: string, email = `${id}@example.com`): UserRecord => ({
  id,
  email,
  displayName: id,
  roles: ['user'],
  createTime: new Date(0),
  updateTime: new Date(0),
});
const session = (userId: string, email = `${userId}@example.com`) => ({ userId, email, roles: ['user'] });

function counting(): CacheObserver & {
  lookups: string[];
  evictions: Record<string, number>;
  bypassed: number[];
} {
  const lookups: string[] = [];
  const evictions: Record<string, number> = {};
  const bypassed: number[] = [];
  return {
    lookups,
    evictions,
    bypassed,
    lookup: (kind, result) => lookups.push(`${kind}:${result}`),
    evicted: (cause, n) => {
      evictions[cause] = (evictions[cause] ?? 0) + n;
    },
    bypassEnded: (s) => bypassed.push(s),
  };
}

function activeCache(options: Partial<Parameters<typeof createReadCache>[0]> = {}, observer?: CacheObserver) {
  const cache = createReadCache({ maxEntries: 1000, ttlMs: 5000, ...options }, observer);
  cache.resume();
  return cache;
}

describe('read cache', () => {
  it('starts bypassed: nothing is served or kept until the listener listens', () => {
    const seen = counting();
    const cache = createReadCache({ maxEntries: 10, ttlMs: 5000 }, seen);
    expect(cache.active).to.equal(false);
    cache.putUser(cache.ticket(), user('a'));
    expect(cache.size()).to.equal(0);
    expect(cache.user('a')).to.equal(undefined);
    expect(seen.lookups).to.deep.equal(['user:bypass']);
    cache.resume();
    cache.putUser(cache.ticket(), user('a'));
    expect(cache.user('a')?.id).to.equal('a');
    expect(seen.lookups.at(-1)).to.equal('user:hit');
  });

  it('never fills from a read that began before an eviction (of any key): a late answer cannot undo a revocation', () => {
    const cache = activeCache();
    const ticket = cache.ticket(); // the read starts and asks the database
    cache.evict('s:s1', 'notice'); // meanwhile the session is ended somewhere
    cache.putSession(ticket, 's1', session('u1')); // the read's answer (from before the end) arrives
    expect(cache.session('s1')).to.equal(undefined);
    // a read that starts after the notice may fill
    cache.putSession(cache.ticket(), 's1', session('u1'));
    expect(cache.session('s1')?.userId).to.equal('u1');
  });

  it('never fills from a read that began before a bypass or before caching resumed', () => {
    const cache = activeCache();
    const before = cache.ticket();
    cache.bypass();
    cache.putUser(before, user('a'));
    const during = cache.ticket();
    cache.resume();
    cache.putUser(before, user('a'));
    cache.putUser(during, user('a'));
    expect(cache.size()).to.equal(0);
  });

  it('empties itself when bypassed and serves nothing until it resumes', () => {
    const seen = counting();
    const cache = activeCache({}, seen);
    cache.putUser(cache.ticket(), user('a'));
    cache.putSession(cache.ticket(), 's1', session('a'));
    expect(cache.size()).to.equal(3); // user, email, session
    cache.bypass();
    expect(cache.size()).to.equal(0);
    expect(cache.active).to.equal(false);
    expect(cache.session('s1')).to.equal(undefined);
    expect(seen.evictions.bypass).to.equal(3);
    cache.resume();
    expect(cache.session('s1')).to.equal(undefined); // emptied, not hidden
    expect(seen.bypassed, 'the start-up bypass and this one').to.have.length(2);
  });

  it('evicts a user with its email key and every cached session of that user, and nothing of others', () => {
    const cache = activeCache();
    const t = cache.ticket();
    cache.putUser(t, user('a'));
    cache.putUser(t, user('b'));
    cache.putSession(t, 'a1', session('a'));
    cache.putSession(t, 'a2', session('a'));
    cache.putSession(t, 'b1', session('b'));
    cache.evict('u:a', 'notice');
    expect(cache.user('a')).to.equal(undefined);
    expect(cache.userByEmail('a@example.com')).to.equal(undefined);
    expect(cache.session('a1')).to.equal(undefined);
    expect(cache.session('a2')).to.equal(undefined);
    expect(cache.user('b')?.id).to.equal('b');
    expect(cache.session('b1')?.userId).to.equal('b');
    expect(cache.size()).to.equal(3);
  });

  it('evicts a session or a service account by name, and empties everything for a name it does not know', () => {
    const cache = activeCache();
    const t = cache.ticket();
    cache.putSession(t, 's1', session('a'));
    cache.putSession(t, 's2', session('a'));
    cache.putServiceAccount(t, { id: 'sa', name: 'x', clientId: 'c', scopes: [], certName: null } as never);
    cache.evict('s:s1', 'notice');
    expect(cache.session('s1')).to.equal(undefined);
    expect(cache.session('s2')?.userId).to.equal('a');
    cache.evict('a:sa', 'local');
    expect(cache.serviceAccount('sa')).to.equal(undefined);
    cache.evict('x:what', 'notice');
    expect(cache.size()).to.equal(0);
  });

  it('answers by email only while the cached user still has that email', () => {
    const cache = activeCache();
    cache.putUser(cache.ticket(), user('a', 'old@example.com'));
    cache.putUser(cache.ticket(), user('a', 'new@example.com'));
    expect(cache.userByEmail('old@example.com')).to.equal(undefined);
    expect(cache.userByEmail('new@example.com')?.id).to.equal('a');
  });

  it('holds at most CACHE_MAX_ENTRIES, least recently used out', () => {
    const seen = counting();
    const cache = activeCache({ maxEntries: 100 }, seen);
    for (let i = 0; i < 1000; i++) cache.putSession(cache.ticket(), `s${i}`, session(`u${i % 7}`));
    expect(cache.size()).to.equal(100);
    expect(seen.evictions.size).to.equal(900);
    expect(cache.session('s999')?.userId).to.equal(`u${999 % 7}`);
    expect(cache.session('s0')).to.equal(undefined);
    // the per-user session index shrinks with the cache (no leak past the bound)
    cache.evict('u:u1', 'notice');
    expect(cache.size()).to.be.below(100);
  });

  it('serves no entry older than CACHE_TTL_MS', () => {
    let now = 1_000;
    const seen = counting();
    const cache = activeCache({ ttlMs: 5000, now: () => now }, seen);
    cache.putSession(cache.ticket(), 's1', session('a'));
    now += 4_999;
    expect(cache.session('s1')?.userId).to.equal('a');
    now += 2;
    expect(cache.session('s1')).to.equal(undefined);
    expect(seen.evictions.expired).to.equal(1);
  });
});

describe('cached stores', () => {
  /** The memory stores behind the cache, with commits the test makes happen. */
  function setup() {
    const m = createMemoryStores();
    const pending: (() => void)[] = [];
    const db = {
      afterCommit: (tx: Tx | undefined, fn: () => void) => (tx ? pending.push(fn) : fn()),
    };
    const cache = activeCache();
    const stores = cachedStores(db, cache, m);
    const commit = () => {
      for (const fn of pending.splice(0)) fn();
    };
    return { m, cache, stores, commit };
  }
  async function seeded() {
    const s = setup();
    const sessionId = 'session-1';
    const u = await s.m.transactions.run(async (tx) => {
      const inserted = await s.m.users.insert(
        { id: 'user-1', email: 'a@example.com', passwordHash: 'h', displayName: 'A' } as never,
        tx,
      );
      await s.m.sessions.create(
        inserted.id,
        {
          sessionId,
          refreshTokenHash: 'r',
          refreshExpiresAt: new Date(Date.now() + 60_000),
          clientAddress: '',
          userAgent: '',
        },
        tx,
      );
      return inserted;
    });
    const caller: UserCaller = { kind: 'user', userId: u.id, sessionId, email: u.email, roles: ['user'] };
    return { ...s, u, caller };
  }
  const count = (calls: string[], name: string) => calls.filter((c) => c === name).length;

  it('answers a repeated liveness check from the cache, and asks again once the session is ended here', async () => {
    const { m, stores, caller, commit } = await seeded();
    expect(await stores.sessions.liveCaller(caller)).to.include({ userId: caller.userId });
    expect(await stores.sessions.liveCaller(caller)).to.include({ userId: caller.userId });
    expect(count(m.calls, 'sessions.liveCaller')).to.equal(1);
    await m.transactions.run(async (tx) => {
      expect(await stores.sessions.end(caller.sessionId, caller.userId, 'logout', tx)).to.equal(true);
    });
    commit();
    expect(await stores.sessions.liveCaller(caller)).to.equal(null);
    expect(count(m.calls, 'sessions.liveCaller')).to.equal(2);
    // a negative answer is never kept
    expect(await stores.sessions.liveCaller(caller)).to.equal(null);
    expect(count(m.calls, 'sessions.liveCaller')).to.equal(3);
  });

  it('does not keep the answer of a miss that a notice overtook', async () => {
    const { m, cache, caller } = await seeded();
    const real = m.sessions.liveCaller;
    let release: () => void = () => {};
    m.sessions.liveCaller = async (c, signal) => {
      const answer = await real(c, signal);
      await new Promise<void>((r) => {
        release = r;
      });
      return answer;
    };
    const slow = cachedStores({ afterCommit: (_t, fn) => fn() }, cache, m);
    const read = slow.sessions.liveCaller(caller); // reads "live"...
    await new Promise((r) => setImmediate(r));
    cache.evict(`s:${caller.sessionId}`, 'notice'); // ...the session ends elsewhere...
    release(); // ...and the stale answer arrives after the notice
    expect(await read).to.not.equal(null);
    m.sessions.liveCaller = real;
    expect(cache.session(caller.sessionId)).to.equal(undefined);
  });

  it('evicts the user and its sessions when the user changes, once the transaction commits', async () => {
    const { m, cache, stores, caller, u, commit } = await seeded();
    await stores.sessions.liveCaller(caller);
    await stores.users.findById(u.id);
    expect(cache.size()).to.equal(3);
    await m.transactions.run(async (tx) => {
      await stores.users.update(u.id, { displayName: 'B' } as never, tx);
      expect(cache.size(), 'not before the commit').to.equal(3);
    });
    commit();
    expect(cache.size()).to.equal(0);
    expect((await stores.users.findById(u.id))?.displayName).to.equal('B');
    expect(count(m.calls, 'users.findById')).to.equal(2);
  });

  it('answers GetUser from the cache only when both the caller and the target are cached', async () => {
    const { m, stores, caller, u } = await seeded();
    const first = await stores.users.findForCaller({ id: u.id }, caller);
    const second = await stores.users.findForCaller({ id: u.id }, caller);
    expect(second).to.deep.equal(first);
    expect(count(m.calls, 'users.findForCaller')).to.equal(1);
    const other = { ...caller, userId: 'someone-else' };
    expect(
      (await stores.users.findForCaller({ id: u.id }, other)).caller,
      'a session is its owner’s only',
    ).to.equal(null);
  });
});
