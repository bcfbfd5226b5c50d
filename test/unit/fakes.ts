/**
 * Small in-memory implementations of the storage ports (src/ports.ts), for testing the use cases
 * without a database. They keep the contract's observable rules (unique active email, one winner of
 * a rotation, replay ends the session, a transaction that throws leaves nothing behind) and record
 * every call, so a test can also assert what was NOT asked of storage.
 */
import type { UserCaller } from '../../src/caller.js';
import { alreadyExists, throwIfAborted } from '../../src/errors.js';
import type {
  AttemptThrottle,
  AuditLog,
  AuditRecord,
  NewSession,
  RevokeReason,
  RotateResult,
  ServiceAccount,
  ServiceAccountStore,
  SessionStore,
  Transactions,
  Tx,
  UserCredentials,
  UserRecord,
  UserStore,
} from '../../src/ports.js';
import { decide, grant, settle, type ThrottlePolicy, type ThrottleRow } from '../../src/throttle.js';

interface StoredUser extends UserCredentials {
  deleted: boolean;
}
interface StoredSession {
  id: string;
  userId: string;
  createdAt: number;
  lastRefreshAt?: number;
  clientAddress: string;
  userAgent: string;
  revokedReason?: RevokeReason;
}
interface StoredToken {
  hash: string;
  sessionId: string;
  parentHash: string | null;
  expiresAt: Date;
  usedAt?: Date;
}
export interface MemoryState {
  users: Map<string, StoredUser>;
  sessions: Map<string, StoredSession>;
  tokens: Map<string, StoredToken>;
  throttle: Map<string, ThrottleRow>;
  /** The audit trail, oldest first (rolled back with a failed transaction, like the rest). */
  audit: AuditRecord[];
}

export const THROTTLE_POLICY: ThrottlePolicy = { baseS: 30, maxS: 3600, windowS: 900 };

export function createMemoryStores(clock: () => number = Date.now) {
  let state: MemoryState = {
    users: new Map(),
    sessions: new Map(),
    tokens: new Map(),
    throttle: new Map(),
    audit: [],
  };
  const calls: string[] = [];
  const record = (name: string) => calls.push(name);
  const TX = { tx: true } as unknown as Tx;
  let open = 0;

  const transactions: Transactions = {
    async run(work) {
      record('transaction');
      const snapshot = structuredClone(state);
      open++;
      try {
        return await work(TX);
      } catch (err) {
        state = snapshot; // rolled back
        throw err;
      } finally {
        open--;
      }
    },
  };
  const inTx = (tx: Tx | undefined, what: string) => {
    if (tx !== undefined && (tx !== TX || open === 0)) throw new Error(`${what}: not a live transaction`);
  };
  const publicRecord = ({ passwordHash: _, deleted: __, ...u }: StoredUser): UserRecord => ({
    ...u,
    roles: [...u.roles],
  });
  const active = (pred: (u: StoredUser) => boolean) =>
    [...state.users.values()].find((u) => !u.deleted && pred(u));
  const credentials = (u: StoredUser | undefined): UserCredentials | null =>
    u ? { ...publicRecord(u), passwordHash: u.passwordHash } : null;

  const users: UserStore = {
    async insert(user, tx) {
      record('users.insert');
      inTx(tx, 'users.insert');
      if (active((u) => u.email === user.email))
        throw alreadyExists('an account with this email already exists');
      const now = new Date(clock());
      const stored: StoredUser = {
        ...user,
        roles: ['user'],
        createTime: now,
        updateTime: now,
        deleted: false,
      };
      state.users.set(user.id, stored);
      return publicRecord(stored);
    },
    async findById(id) {
      record('users.findById');
      const u = active((x) => x.id === id);
      return u ? publicRecord(u) : null;
    },
    async findByEmail(email) {
      record('users.findByEmail');
      const u = active((x) => x.email === email);
      return u ? publicRecord(u) : null;
    },
    async findCredentialsByEmail(email) {
      record('users.findCredentialsByEmail');
      return credentials(active((x) => x.email === email));
    },
    async findCredentialsById(id) {
      record('users.findCredentialsById');
      return credentials(active((x) => x.id === id));
    },
    async findForCaller(lookup, caller: UserCaller) {
      record('users.findForCaller');
      const s = state.sessions.get(caller.sessionId);
      const me = active((u) => u.id === caller.userId);
      const live = !!s && s.userId === caller.userId && !s.revokedReason && !!me;
      const u = active((x) => ('id' in lookup ? x.id === lookup.id : x.email === lookup.email));
      return {
        caller: live && me ? { ...caller, email: me.email, roles: [...me.roles] } : null,
        user: u ? publicRecord(u) : null,
      };
    },
    async findManyByIds(ids) {
      record('users.findManyByIds');
      return ids.flatMap((id) => {
        const u = active((x) => x.id === id);
        return u ? [publicRecord(u)] : [];
      });
    },
    async list({ afterId, prefix, limit }) {
      record('users.list');
      const all = [...state.users.values()].filter((u) => !u.deleted);
      const start = afterId ? all.findIndex((u) => u.id === afterId) + 1 : 0;
      return all
        .slice(start)
        .filter(
          (u) =>
            !prefix ||
            u.displayName.toLowerCase().startsWith(prefix.text) ||
            (prefix.of === 'email-or-name' && u.email.startsWith(prefix.text)),
        )
        .slice(0, limit)
        .map(publicRecord);
    },
    async upgradePasswordHash(id, expected, next) {
      record('users.upgradePasswordHash');
      const u = active((x) => x.id === id && x.passwordHash === expected);
      if (u) u.passwordHash = next;
      return !!u;
    },
    async changePasswordHash(id, expected, next, tx) {
      record('users.changePasswordHash');
      inTx(tx, 'users.changePasswordHash');
      const u = active((x) => x.id === id && x.passwordHash === expected);
      if (u) {
        u.passwordHash = next;
        u.updateTime = new Date(clock());
      }
      return !!u;
    },
    async update(id, patch, tx) {
      record('users.update');
      inTx(tx, 'users.update');
      const u = active((x) => x.id === id);
      if (!u) return null;
      if (patch.email !== undefined && active((x) => x.email === patch.email && x.id !== id)) {
        throw alreadyExists('an account with this email already exists');
      }
      Object.assign(u, {
        ...(patch.email !== undefined ? { email: patch.email } : {}),
        ...(patch.displayName !== undefined ? { displayName: patch.displayName } : {}),
        ...(patch.roles !== undefined ? { roles: [...patch.roles] } : {}),
        updateTime: new Date(clock()),
      });
      return publicRecord(u);
    },
    async lockAdmins(tx) {
      record('users.lockAdmins');
      inTx(tx, 'users.lockAdmins');
      return [...state.users.values()]
        .filter((u) => !u.deleted && u.roles.includes('admin'))
        .map((u) => u.id);
    },
    async softDelete(id, tx) {
      record('users.softDelete');
      inTx(tx, 'users.softDelete');
      const u = active((x) => x.id === id);
      if (u) u.deleted = true;
      return !!u;
    },
  };

  const end = (s: StoredSession | undefined, reason: RevokeReason) => {
    if (s && !s.revokedReason) s.revokedReason = reason;
  };
  const sessions: SessionStore = {
    async create(userId, session: NewSession, tx) {
      record('sessions.create');
      inTx(tx, 'sessions.create');
      state.sessions.set(session.sessionId, {
        id: session.sessionId,
        userId,
        createdAt: clock(),
        clientAddress: session.clientAddress,
        userAgent: session.userAgent,
      });
      state.tokens.set(session.refreshTokenHash, {
        hash: session.refreshTokenHash,
        sessionId: session.sessionId,
        parentHash: null,
        expiresAt: session.refreshExpiresAt,
      });
    },
    async endAllForUser(userId, reason, tx, exceptSessionId) {
      record('sessions.endAllForUser');
      inTx(tx, 'sessions.endAllForUser');
      for (const s of state.sessions.values())
        if (s.userId === userId && s.id !== exceptSessionId) end(s, reason);
    },
    async end(sessionId, userId, reason, tx) {
      record('sessions.end');
      inTx(tx, 'sessions.end');
      const s = state.sessions.get(sessionId);
      if (!s || s.userId !== userId || s.revokedReason) return false;
      end(s, reason);
      return true;
    },
    async listLive(userId) {
      record('sessions.listLive');
      return [...state.sessions.values()]
        .filter((s) => s.userId === userId && !s.revokedReason)
        .sort((a, b) => b.createdAt - a.createdAt)
        .map((s) => ({
          id: s.id,
          createTime: new Date(s.createdAt),
          lastRefreshTime: s.lastRefreshAt === undefined ? undefined : new Date(s.lastRefreshAt),
          clientAddress: s.clientAddress,
          userAgent: s.userAgent,
        }));
    },
    async liveCaller(caller) {
      record('sessions.liveCaller');
      const s = state.sessions.get(caller.sessionId);
      const u = active((x) => x.id === caller.userId);
      if (!s || s.userId !== caller.userId || s.revokedReason || !u) return null;
      return { ...caller, email: u.email, roles: [...u.roles] };
    },
    async rotate(presentedHash, next, { graceS, maxLifetimeS }, tx): Promise<RotateResult> {
      record('sessions.rotate');
      inTx(tx, 'sessions.rotate');
      const t = state.tokens.get(presentedHash);
      const s = t && state.sessions.get(t.sessionId);
      const u =
        s && s.createdAt > clock() - maxLifetimeS * 1000 ? active((x) => x.id === s.userId) : undefined;
      if (!t || !s || s.revokedReason) return { outcome: 'invalid' };
      const issue = (outcome: 'rotated' | 'grace', parent: StoredToken) => {
        parent.usedAt = new Date(clock());
        s.lastRefreshAt = clock();
        state.tokens.set(next.hash, { sessionId: s.id, parentHash: presentedHash, ...next });
        return { outcome, sessionId: s.id, user: publicRecord(u as StoredUser) };
      };
      if (!t.usedAt) {
        if (t.expiresAt.getTime() <= clock() || !u) return { outcome: 'invalid' };
        return issue('rotated', t);
      }
      if (graceS > 0 && clock() - t.usedAt.getTime() < graceS * 1000 && u) {
        const successor = [...state.tokens.values()].find((x) => x.parentHash === presentedHash && !x.usedAt);
        if (successor) return issue('grace', successor);
      }
      end(s, 'refresh token reuse');
      return { outcome: 'replay', sessionId: s.id, userId: s.userId };
    },
    async endByRefreshToken(hash, tx) {
      record('sessions.endByRefreshToken');
      inTx(tx, 'sessions.endByRefreshToken');
      const t = state.tokens.get(hash);
      const s = t && state.sessions.get(t.sessionId);
      if (!s || s.revokedReason) return null;
      end(s, 'logout');
      return { sessionId: s.id, userId: s.userId };
    },
  };

  const throttle: AttemptThrottle = {
    async reserve(keys, signal) {
      record('throttle.reserve');
      for (;;) {
        const rows = keys.flatMap((k) => state.throttle.get(k.key) ?? []);
        const decision = decide(keys, rows, clock(), THROTTLE_POLICY);
        if (decision.kind === 'locked') return { granted: false, waitS: decision.waitS };
        if (decision.kind === 'grant') {
          const { ticket, next } = grant(keys, rows, clock());
          for (const row of next) state.throttle.set(row.key, row);
          return { granted: true, ticket };
        }
        await new Promise((r) => setImmediate(r)); // others in flight: wait for them to settle
        throwIfAborted(signal);
      }
    },
    async settle(ticket, how) {
      record('throttle.settle');
      const rows = ticket.keys.flatMap((k) => state.throttle.get(k.key) ?? []);
      const { next, drop, locks } = settle(ticket, rows, clock(), THROTTLE_POLICY, how);
      for (const row of next) state.throttle.set(row.key, row);
      for (const key of drop) state.throttle.delete(key);
      return { locks };
    },
  };

  const accounts = new Map<
    string,
    ServiceAccount & { secretHash: string; previous?: { hash: string; until: number }; deleted: boolean }
  >();
  const live = () => [...accounts.values()].filter((a) => !a.deleted);
  const serviceAccounts: ServiceAccountStore = {
    async insert(a) {
      record('serviceAccounts.insert');
      if (live().some((x) => x.name === a.name))
        throw alreadyExists(`a service account named ${a.name} exists`);
      const stored = {
        ...a,
        createTime: new Date(clock()),
        rotateTime: undefined as Date | undefined,
        deleted: false,
        previous: undefined as { hash: string; until: number } | undefined,
      };
      accounts.set(a.id, stored);
      const { secretHash: _, deleted: __, previous: ___, ...out } = stored;
      return out;
    },
    list: async () => live().map(({ secretHash: _, deleted: __, previous: ___, ...a }) => a),
    async rotate(name, secretHash, overlapS) {
      const a = live().find((x) => x.name === name);
      if (!a) return null;
      a.previous = { hash: a.secretHash, until: clock() + overlapS * 1000 };
      a.secretHash = secretHash;
      a.rotateTime = new Date(clock());
      const { secretHash: _, deleted: __, previous: ___, ...out } = a;
      return out;
    },
    async revokeSecret(name, secretHash) {
      const a = live().find((x) => x.name === name);
      if (!a) return null;
      a.previous = undefined;
      a.secretHash = secretHash;
      a.rotateTime = new Date(clock());
      const { secretHash: _, deleted: __, previous: ___, ...out } = a;
      return out;
    },
    async revokeTokens(name) {
      const a = live().find((x) => x.name === name);
      if (!a) return null;
      a.tokensValidAfter = Math.floor(clock() / 1000);
      const { secretHash: _, deleted: __, previous: ___, ...out } = a;
      return out;
    },
    async remove(name) {
      const a = live().find((x) => x.name === name);
      if (!a) return null;
      a.deleted = true;
      const { secretHash: _, deleted: __, previous: ___, ...out } = a;
      return out;
    },
    async findByClientId(clientId) {
      record('serviceAccounts.findByClientId');
      const a = live().find((x) => x.clientId === clientId);
      if (!a) return null;
      const { secretHash, deleted: _, previous, ...account } = a;
      return {
        account,
        secretHashes: [secretHash, ...(previous && previous.until > clock() ? [previous.hash] : [])],
      };
    },
    async findActive(id) {
      record('serviceAccounts.findActive');
      const a = live().find((x) => x.id === id);
      if (!a) return null;
      const { secretHash: _, deleted: __, previous: ___, ...out } = a;
      return out;
    },
    async findByCertificateNames(names) {
      return live()
        .filter(
          (x) => names.includes(`${x.name}.service`) || (x.certName !== null && names.includes(x.certName)),
        )
        .slice(0, 2)
        .map(({ secretHash: _, deleted: __, previous: ___, ...out }) => out);
    },
  };

  const audit: AuditLog = {
    async record(event, tx) {
      record(`audit.${event.type}`);
      inTx(tx, 'audit.record');
      state.audit.push({ ...event, id: String(state.audit.length + 1), time: new Date(clock()) });
    },
    async list(q) {
      record('audit.list');
      return [...state.audit]
        .reverse()
        .filter(
          (e) =>
            (!q.subjectUserId || e.subjectUserId === q.subjectUserId) &&
            (!q.types?.length || q.types.includes(e.type)) &&
            (!q.from || e.time >= q.from) &&
            (!q.to || e.time < q.to) &&
            (!q.beforeId || Number(e.id) < Number(q.beforeId)),
        )
        .slice(0, q.limit);
    },
  };

  return {
    transactions,
    users,
    sessions,
    throttle,
    serviceAccounts,
    audit,
    /** Every store call so far, by name (`users.insert`, `transaction`, ...). */
    calls,
    state: () => state,
  };
}

export type MemoryStores = ReturnType<typeof createMemoryStores>;
