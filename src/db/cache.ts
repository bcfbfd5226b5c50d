/**
 * The read cache of the hot path (CACHE=on), per process: a login session's liveness with its
 * user's current email and roles, users by id and by email, service accounts by id. Bounded
 * (CACHE_MAX_ENTRIES, least recently used out) and aged (CACHE_TTL_MS at most), in one lru-cache.
 *
 * Correctness rests on three rules:
 * - **Invalidation.** `evict` drops what a change names: `s:<session>`, `u:<user>` (the user's
 *   records and every cached session of that user, which carry its email and roles) or
 *   `a:<service account>`. PostgreSQL sends these names with pg_notify from triggers, in the
 *   changing transaction (so exactly when it commits) to every instance; the instance that made the
 *   change also evicts right after its commit, before it answers.
 * - **No stale fill.** A read takes a ticket (the generation) before it asks the database and may
 *   fill only if no eviction, bypass or resume happened since: a revocation that lands while a
 *   miss is in flight is never undone by the miss's late answer.
 * - **Fail safe.** Until the notice listener is listening, and whenever it is not, the cache is
 *   bypassed and empty: every read asks PostgreSQL.
 * Only positive answers are kept (a live session, an existing user): a revoked session or a missing
 * user is always asked again.
 */
import { LRUCache } from 'lru-cache';
import type { ServiceAccount, UserRecord } from '../ports.js';

/** A live session and its user's current email and roles. */
export interface CachedSession {
  userId: string;
  email: string;
  roles: readonly string[];
}

export type CacheKind = 'session' | 'user' | 'service_account';
export type EvictionCause = 'notice' | 'local' | 'expired' | 'size' | 'bypass';

/** Told what the cache does (the metrics: src/ops/metrics.ts). */
export interface CacheObserver {
  lookup(kind: CacheKind, result: 'hit' | 'miss' | 'bypass'): void;
  evicted(cause: EvictionCause, entries: number): void;
  /** Seconds spent bypassed, reported when a bypass ends (and at each scrape, see `bypassedFor`). */
  bypassEnded(seconds: number): void;
}

type Entry =
  | { kind: 'session'; value: CachedSession }
  | { kind: 'user'; value: UserRecord }
  | { kind: 'email'; userId: string }
  | { kind: 'service_account'; value: ServiceAccount };

export interface ReadCache {
  /** False while bypassed (listener down or not yet listening). */
  readonly active: boolean;
  /** The generation to fill with: take it before asking the database. */
  ticket(): number;
  session(id: string): CachedSession | undefined;
  user(id: string): UserRecord | undefined;
  userByEmail(email: string): UserRecord | undefined;
  serviceAccount(id: string): ServiceAccount | undefined;
  putSession(ticket: number, id: string, session: CachedSession): void;
  putUser(ticket: number, user: UserRecord): void;
  putServiceAccount(ticket: number, account: ServiceAccount): void;
  /** Drops what a notice names (`s:…`, `u:…`, `a:…`); unknown names empty the cache (fail safe). */
  evict(name: string, cause: 'notice' | 'local'): void;
  /** The listener is down: bypass and empty the cache until `resume`. */
  bypass(): void;
  /** The listener is listening (again): caching may start. */
  resume(): void;
  size(): number;
  /** Seconds of the current bypass so far (0 when active). */
  bypassedFor(): number;
}

export function createReadCache(
  options: {
    maxEntries: number;
    ttlMs: number /** The clock (milliseconds), for tests. */;
    now?: () => number;
  },
  observer?: CacheObserver,
): ReadCache {
  let generation = 0;
  let active = false; // bypassed until the listener says it listens
  const now = options.now ?? (() => performance.now());
  let bypassedAt: number | undefined = now();
  let clearing = false;
  /** The cached sessions of each user, so a change of the user drops them. */
  // (one session id as a plain string, a Set only for a user with several: most have one)
  const sessionsOf = new Map<string, string | Set<string>>();
  const forget = (userId: string, sessionId: string) => {
    const held = sessionsOf.get(userId);
    if (held === sessionId) sessionsOf.delete(userId);
    else if (typeof held === 'object') {
      held.delete(sessionId);
      if (held.size === 0) sessionsOf.delete(userId);
    }
  };

  const lru = new LRUCache<string, Entry>({
    max: options.maxEntries,
    ttl: options.ttlMs,
    ttlAutopurge: false,
    updateAgeOnGet: false,
    ...(options.now ? { perf: { now: options.now }, ttlResolution: 0 } : {}),
    dispose(entry, key, reason) {
      if (entry.kind === 'session') {
        forget(entry.value.userId, key.slice(2));
      }
      if (clearing) return;
      if (reason === 'evict') observer?.evicted('size', 1);
      else if (reason === 'expire') observer?.evicted('expired', 1);
    },
  });

  const get = (key: string, kind: CacheKind) => {
    if (!active) {
      observer?.lookup(kind, 'bypass');
      return undefined;
    }
    const entry = lru.get(key);
    observer?.lookup(kind, entry ? 'hit' : 'miss');
    return entry;
  };
  const mayFill = (ticket: number) => active && ticket === generation;
  const drop = (key: string) => (lru.delete(key) ? 1 : 0);
  const clear = () => {
    const n = lru.size;
    clearing = true;
    lru.clear();
    clearing = false;
    sessionsOf.clear();
    return n;
  };

  return {
    get active() {
      return active;
    },
    ticket: () => generation,
    session(id) {
      const e = get(`s:${id}`, 'session');
      return e?.kind === 'session' ? e.value : undefined;
    },
    user(id) {
      const e = get(`u:${id}`, 'user');
      return e?.kind === 'user' ? e.value : undefined;
    },
    userByEmail(email) {
      if (!active) {
        observer?.lookup('user', 'bypass');
        return undefined;
      }
      const e = lru.get(`e:${email}`);
      const u = e?.kind === 'email' ? lru.get(`u:${e.userId}`) : undefined;
      const user = u?.kind === 'user' && u.value.email === email ? u.value : undefined;
      observer?.lookup('user', user ? 'hit' : 'miss');
      return user;
    },
    serviceAccount(id) {
      const e = get(`a:${id}`, 'service_account');
      return e?.kind === 'service_account' ? e.value : undefined;
    },
    putSession(ticket, id, session) {
      if (!mayFill(ticket)) return;
      lru.set(`s:${id}`, { kind: 'session', value: session });
      const held = sessionsOf.get(session.userId);
      if (held === undefined || held === id) sessionsOf.set(session.userId, id);
      else if (typeof held === 'string') sessionsOf.set(session.userId, new Set([held, id]));
      else held.add(id);
    },
    putUser(ticket, user) {
      if (!mayFill(ticket)) return;
      lru.set(`u:${user.id}`, { kind: 'user', value: user });
      lru.set(`e:${user.email}`, { kind: 'email', userId: user.id });
    },
    putServiceAccount(ticket, account) {
      if (!mayFill(ticket)) return;
      lru.set(`a:${account.id}`, { kind: 'service_account', value: account });
    },
    evict(name, cause) {
      generation++;
      const id = name.slice(2);
      let n = 0;
      if (name.startsWith('s:')) n = drop(name);
      else if (name.startsWith('a:')) n = drop(name);
      else if (name.startsWith('u:')) {
        const user = lru.peek(name);
        if (user?.kind === 'user') n += drop(`e:${user.value.email}`);
        n += drop(name);
        const held = sessionsOf.get(id);
        for (const sessionId of typeof held === 'string' ? [held] : [...(held ?? [])])
          n += drop(`s:${sessionId}`);
      } else n = clear(); // a name we do not know: assume the worst
      if (n) observer?.evicted(cause, n);
    },
    bypass() {
      generation++;
      if (active) {
        active = false;
        bypassedAt = now();
      }
      const n = clear();
      if (n) observer?.evicted('bypass', n);
    },
    resume() {
      generation++;
      if (!active && bypassedAt !== undefined) observer?.bypassEnded((now() - bypassedAt) / 1000);
      active = true;
      bypassedAt = undefined;
    },
    size: () => lru.size,
    bypassedFor: () => (bypassedAt === undefined ? 0 : (now() - bypassedAt) / 1000),
  };
}
