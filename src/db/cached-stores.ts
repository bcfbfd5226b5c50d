/**
 * The stores with the read cache (src/db/cache.ts) in front of the hot-path reads: a caller's
 * session (authentication, ValidateToken), GetUser's combined read of the caller and the target,
 * users by id or email for service accounts, service accounts by id. Every other method goes
 * straight to the store; those that end a session or change a user or a service account also
 * evict what they changed once their transaction commits, so this instance never answers from a
 * stale entry of its own change (other instances learn it from the database's notice).
 */
import type { UserCaller } from '../caller.js';
import type { ServiceAccountStore, SessionStore, Tx, UserStore } from '../ports.js';
import type { ReadCache } from './cache.js';
import type { Database } from './database.js';

export function cachedStores(
  db: Pick<Database, 'afterCommit'>,
  cache: ReadCache,
  stores: { users: UserStore; sessions: SessionStore; serviceAccounts: ServiceAccountStore },
): { users: UserStore; sessions: SessionStore; serviceAccounts: ServiceAccountStore } {
  const { users, sessions, serviceAccounts } = stores;
  const entryOf = (live: UserCaller) => ({ userId: live.userId, email: live.email, roles: live.roles });
  const evictAfter = (tx: Tx | undefined, ...names: string[]) =>
    db.afterCommit(tx, () => {
      for (const name of names) cache.evict(name, 'local');
    });

  const cachedSessions: SessionStore = {
    ...sessions,
    async liveCaller(caller, signal) {
      const hit = cache.session(caller.sessionId);
      if (hit) return hit.userId === caller.userId ? { ...caller, email: hit.email, roles: hit.roles } : null;
      const ticket = cache.ticket();
      const live = await sessions.liveCaller(caller, signal);
      if (live) cache.putSession(ticket, caller.sessionId, entryOf(live));
      return live;
    },
    async end(sessionId, userId, reason, tx) {
      const ended = await sessions.end(sessionId, userId, reason, tx);
      if (ended) evictAfter(tx, `s:${sessionId}`);
      return ended;
    },
    async endAllForUser(userId, reason, tx, exceptSessionId) {
      await sessions.endAllForUser(userId, reason, tx, exceptSessionId);
      evictAfter(tx, `u:${userId}`);
    },
    async rotate(presentedHash, next, rules, tx) {
      const result = await sessions.rotate(presentedHash, next, rules, tx);
      if (result.outcome === 'replay') evictAfter(tx, `s:${result.sessionId}`);
      return result;
    },
    async endByRefreshToken(hash, tx) {
      const ended = await sessions.endByRefreshToken(hash, tx);
      if (ended) evictAfter(tx, `s:${ended.sessionId}`);
      return ended;
    },
  };

  const cachedUsers: UserStore = {
    ...users,
    async findForCaller(lookup, caller, signal) {
      const session = cache.session(caller.sessionId);
      const target = 'id' in lookup ? cache.user(lookup.id) : cache.userByEmail(lookup.email);
      if (session && target) {
        return {
          caller:
            session.userId === caller.userId
              ? { ...caller, email: session.email, roles: session.roles }
              : null,
          user: target,
        };
      }
      const ticket = cache.ticket();
      const found = await users.findForCaller(lookup, caller, signal);
      if (found.caller) cache.putSession(ticket, caller.sessionId, entryOf(found.caller));
      if (found.user) cache.putUser(ticket, found.user);
      return found;
    },
    async findById(id) {
      const hit = cache.user(id);
      if (hit) return hit;
      const ticket = cache.ticket();
      const user = await users.findById(id);
      if (user) cache.putUser(ticket, user);
      return user;
    },
    async findByEmail(email) {
      const hit = cache.userByEmail(email);
      if (hit) return hit;
      const ticket = cache.ticket();
      const user = await users.findByEmail(email);
      if (user) cache.putUser(ticket, user);
      return user;
    },
    async update(id, patch, tx) {
      const updated = await users.update(id, patch, tx);
      evictAfter(tx, `u:${id}`);
      return updated;
    },
    async softDelete(id, tx) {
      const deleted = await users.softDelete(id, tx);
      evictAfter(tx, `u:${id}`);
      return deleted;
    },
    async changePasswordHash(id, expected, next, tx) {
      const changed = await users.changePasswordHash(id, expected, next, tx);
      evictAfter(tx, `u:${id}`);
      return changed;
    },
  };

  const cachedServiceAccounts: ServiceAccountStore = {
    ...serviceAccounts,
    async findActive(id, signal) {
      const hit = cache.serviceAccount(id);
      if (hit) return hit;
      const ticket = cache.ticket();
      const account = await serviceAccounts.findActive(id, signal);
      if (account) cache.putServiceAccount(ticket, account);
      return account;
    },
    async rotate(name, secretHash, overlapS, tx) {
      const account = await serviceAccounts.rotate(name, secretHash, overlapS, tx);
      if (account) evictAfter(tx, `a:${account.id}`);
      return account;
    },
    async revokeSecret(name, secretHash, tx) {
      const account = await serviceAccounts.revokeSecret(name, secretHash, tx);
      if (account) evictAfter(tx, `a:${account.id}`);
      return account;
    },
    async revokeTokens(name, tx) {
      const account = await serviceAccounts.revokeTokens(name, tx);
      if (account) evictAfter(tx, `a:${account.id}`);
      return account;
    },
    async remove(name, tx) {
      const account = await serviceAccounts.remove(name, tx);
      if (account) evictAfter(tx, `a:${account.id}`);
      return account;
    },
  };

  return { users: cachedUsers, sessions: cachedSessions, serviceAccounts: cachedServiceAccounts };
}
