/**
 * Auth use cases: register, login, refresh-token rotation, logout, token introspection, password
 * change, and the caller's own sessions. No gRPC and no SQL here: storage, hashing, throttling and
 * token signing come in as dependencies (wired in src/app.ts).
 */
import { randomUUID } from 'node:crypto';
import type { UserCaller } from '../../src/caller.js';
import {
  AppError,
  InvalidArgumentError,
  notFound,
  throttled,
  throwIfAborted,
  unauthenticated,
  Violations,
} from '../../src/errors.js';
import type {
  AttemptThrottle,
  AuditEvent,
  AuditLog,
  IssuedTokens,
  LoginOutcome,
  NewSession,
  SecurityCounters,
  ServiceAccountStore,
  SessionInfo,
  SessionStore,
  Transactions,
  UserRecord,
  UserStore,
} from '../../src/ports.js';
import { serviceTokenRevoked } from '../../src/ports.js';
import type { PasswordStrength } from '../../src/security/password-strength.js';
import type { PasswordHasher } from '../../src/security/passwords.js';
import type { CurrentPasswordCheck } from '../../src/security/reauth.js';
import type { TokenService } from '../../src/security/tokens.js';
import { attemptSignal, loginKeys } from '../../src/throttle.js';
import {
  checkDisplayName,
  checkEmail,
  checkEmailLookup,
  checkGivenPassword,
  checkNewPassword,
  checkUuid,
  hasUnsafeText,
} from '../../src/validation.js';

/** Where a call comes from, as the transport saw it. */
export interface Origin {
  /** The client address (see TRUSTED_PROXIES). */
  clientAddress: string;
  /** What per-address limits count by: the client address, or its IPv6 network (THROTTLE_IPV6_PREFIX). */
  source: string;
  /** The caller's user-agent metadata, already cut to a safe length. */
  userAgent: string;
  /** The call's request id, for the audit trail. */
  requestId?: string;
  signal?: AbortSignal;
}

export interface AuthDeps {
  transactions: Transactions;
  users: UserStore;
  sessions: SessionStore;
  serviceAccounts: ServiceAccountStore;
  hasher: PasswordHasher;
  strength: PasswordStrength;
  tokens: TokenService;
  throttle: AttemptThrottle;
  checkCurrentPassword: CurrentPasswordCheck;
  policy: AuthPolicy;
  counters: SecurityCounters;
  audit: AuditLog;
  /** Keyed hash of an email, for a failed login's audit event. */
  fingerprint: (email: string) => string;
}

export interface AuthPolicy {
  /** REFRESH_REUSE_GRACE_SECONDS */
  refreshReuseGraceS: number;
  /** SESSION_MAX_LIFETIME_S */
  sessionMaxLifetimeS: number;
  /** LOGIN_MAX_FAILURES (account from one address), LOGIN_SOURCE_MAX_FAILURES, LOGIN_ACCOUNT_MAX_FAILURES */
  loginLimits: { pair: number; source: number; account: number };
  /** REGISTER_SOURCE_MAX_FAILURES: failed registrations from one source before it is refused for a while */
  registerLimit: number;
}

export interface SignedIn {
  user: UserRecord;
  tokens: IssuedTokens;
}

export interface Introspection {
  active: boolean;
  tokenUse?: 'user' | 'service';
  serviceAccount?: string;
  scopes?: string[];
  userId?: string;
  email?: string;
  roles?: string[];
  sessionId?: string;
  expireTime?: Date;
}

/** Same message for an unknown email and a wrong password: no hint whether an account exists. */
export const BAD_CREDENTIALS = 'invalid email or password';
export const BAD_REFRESH = 'invalid or expired refresh token; log in again';
export const REPLAYED_REFRESH =
  'refresh token already used: the session has been ended for safety; log in again';

/** What our refresh tokens look like (32 random bytes, base64url); anything else is not worth a lookup. */
const REFRESH_TOKEN_SHAPE = /^[A-Za-z0-9_-]{43}$/;
const MAX_TOKEN_LENGTH = 4096;

const required = (field: string, value: string, what: string) => {
  if (value === '') throw new InvalidArgumentError([{ field, description: `is required: ${what}` }]);
  if (value.length > MAX_TOKEN_LENGTH) {
    throw new InvalidArgumentError([
      { field, description: `must be at most ${MAX_TOKEN_LENGTH} characters` },
    ]);
  }
  if (hasUnsafeText(value)) {
    throw new InvalidArgumentError([
      { field, description: 'must not contain control characters or invalid UTF-8' },
    ]);
  }
};

/** Whether a failed attempt was evaluated (counts against its keys), not cut short by load, a
 * deadline or an outage (then it is given back). */
function evaluated(err: unknown): boolean {
  if (!(err instanceof AppError)) return false;
  return !['RESOURCE_EXHAUSTED', 'CANCELLED', 'DEADLINE_EXCEEDED', 'UNAVAILABLE'].includes(err.kind);
}

/** What a failed login counts as: wrong credentials, locked out, or refused for load (else not an attempt). */
function failedLoginOutcome(err: unknown): LoginOutcome | undefined {
  if (!(err instanceof AppError)) return undefined;
  if (err.kind === 'UNAUTHENTICATED') return 'bad_credentials';
  if (err.kind === 'RESOURCE_EXHAUSTED') return err.retryAfterS === undefined ? 'refused' : 'throttled';
  return undefined;
}

export type AuthService = ReturnType<typeof createAuthService>;

export function createAuthService(deps: AuthDeps) {
  const {
    transactions,
    users,
    sessions,
    serviceAccounts,
    hasher,
    strength,
    tokens,
    throttle,
    checkCurrentPassword,
    policy,
    counters,
    audit,
    fingerprint,
  } = deps;
  /** An audit event from this call's origin. */
  const event = (
    origin: Pick<Origin, 'clientAddress' | 'requestId'>,
    e: Omit<AuditEvent, 'clientAddress' | 'requestId'>,
  ): AuditEvent => ({
    ...e,
    clientAddress: origin.clientAddress,
    requestId: origin.requestId,
  });
  /** A new login session: its id and first refresh token (the store keeps only the hash). */
  const openSession = (origin: Origin) => {
    const refresh = tokens.newRefreshToken();
    const session: NewSession = {
      sessionId: randomUUID(),
      refreshTokenHash: refresh.hash,
      refreshExpiresAt: refresh.expiresAt,
      clientAddress: origin.clientAddress,
      userAgent: origin.userAgent,
    };
    return { session, refresh };
  };

  const issue = async (
    user: UserRecord,
    sessionId: string,
    refresh: { token: string; expiresIn: number },
  ): Promise<IssuedTokens> => {
    const access = await tokens.signAccess({
      kind: 'user',
      userId: user.id,
      email: user.email,
      roles: user.roles,
      sessionId,
    });
    return {
      accessToken: access.token,
      expiresIn: access.expiresIn,
      refreshToken: refresh.token,
      refreshExpiresIn: refresh.expiresIn,
    };
  };

  /** Adds a violation when a new password is too weak for this account (common, breached, personal). */
  const checkStrength = async (
    v: Violations,
    field: string,
    password: string,
    account: { email: string; displayName: string },
    origin: Origin,
  ) => {
    const problem = await strength.problem(password, account, {
      signal: origin.signal,
      source: origin.source,
    });
    if (problem) v.add(field, problem);
  };

  /**
   * The attempt is reserved against the account from this source, this source and this account
   * before any hashing (src/throttle.ts): parallel guesses get at most the limit of evaluations
   * (beyond the remaining budget they wait for the attempts in flight), a locked key refuses even
   * the right password, and the same answer comes whether or not the account exists. A refusal
   * writes nothing (counted in the metrics); the failure that sets a lock writes one
   * `login.throttled` audit event.
   */
  const attemptLogin = async (email: string, password: string, origin: Origin): Promise<SignedIn> => {
    const source = origin.source;
    hasher.assertCapacity(source); // refuse a flood before it costs database work

    const keys = loginKeys(email, source, policy.loginLimits);
    const reservation = await throttle.reserve([keys.pair, keys.source, keys.account], origin.signal);
    if (!reservation.granted) throw throttled(reservation.waitS);
    const { ticket } = reservation;
    let found: Awaited<ReturnType<UserStore['findCredentialsByEmail']>>;
    let ok: boolean;
    try {
      found = await users.findCredentialsByEmail(email, origin.signal);
      throwIfAborted(origin.signal);
      ok = await hasher.verify(password, found?.passwordHash ?? null, {
        signal: attemptSignal(origin.signal),
        source,
      });
    } catch (err) {
      await throttle.settle(ticket, { result: 'void' }).catch(() => {}); // never evaluated
      throw err;
    }
    if (!found || !ok) {
      const { locks } = await throttle.settle(ticket, { result: 'failure' });
      // the same work whether or not the account exists: one event, its subject only if it does
      await audit.record(
        event(origin, {
          type: 'login.failed',
          actor: { type: 'anonymous' },
          outcome: 'failure',
          subjectUserId: found?.id,
          details: { email_hmac: fingerprint(email) },
        }),
      );
      if (locks.length) {
        // one event per lock, when it is set; the refusals during it are counted, not written
        await audit.record(
          event(origin, {
            type: 'login.throttled',
            actor: { type: 'anonymous' },
            outcome: 'refused',
            details: {
              email_hmac: fingerprint(email),
              locked: locks.map((l) => l.key.slice(0, l.key.indexOf(':'))).join(','),
              retry_after_s: String(Math.max(...locks.map((l) => l.lockS))),
            },
          }),
        );
      }
      throw unauthenticated(BAD_CREDENTIALS);
    }
    // Proven: the pair starts afresh; the source and the account release their slots.
    await throttle.settle(ticket, { result: 'success', clear: [keys.pair] });

    if (hasher.needsRehash(found.passwordHash)) {
      // Upgrade a hash made at another cost; a concurrent password change wins.
      const upgraded = await hasher.hash(password, { signal: origin.signal, source });
      await users.upgradePasswordHash(found.id, found.passwordHash, upgraded);
    }
    throwIfAborted(origin.signal);
    const { passwordHash: _, ...user } = found;
    const { session, refresh } = openSession(origin);
    await transactions.run(async (tx) => {
      await sessions.create(user.id, session, tx);
      await audit.record(
        event(origin, {
          type: 'login.succeeded',
          actor: { type: 'user', id: user.id },
          outcome: 'success',
          subjectUserId: user.id,
          details: { session_id: session.sessionId },
        }),
        tx,
      );
    }, origin.signal);
    return { user, tokens: await issue(user, session.sessionId, refresh) };
  };

  /** Register's work once its attempt is reserved: the strength estimate, the hash, the rows. */
  const createAccount = async (email: string, displayName: string, password: string, origin: Origin) => {
    const v = new Violations();
    await checkStrength(v, 'password', password, { email, displayName }, origin);
    v.throwIfAny();
    const passwordHash = await hasher.hash(password, { signal: origin.signal, source: origin.source });
    throwIfAborted(origin.signal);
    const { session, refresh } = openSession(origin);
    const user = await transactions.run(async (tx) => {
      const created = await users.insert({ id: randomUUID(), email, displayName, passwordHash }, tx);
      await sessions.create(created.id, session, tx);
      await audit.record(
        event(origin, {
          type: 'user.registered',
          actor: { type: 'anonymous' },
          outcome: 'success',
          subjectUserId: created.id,
          details: { session_id: session.sessionId },
        }),
        tx,
      );
      return created;
    }, origin.signal);
    return { user, session, refresh };
  };

  return {
    async register(
      input: { email: string; password: string; displayName: string },
      origin: Origin,
    ): Promise<SignedIn> {
      const v = new Violations();
      const email = checkEmail(v, 'email', input.email);
      checkNewPassword(v, 'password', input.password);
      const displayName = checkDisplayName(v, 'display_name', input.displayName);
      v.throwIfAny();
      // counted per source before any estimate or hash; a success gives its attempt back
      hasher.assertCapacity(origin.source);
      const reservation = await throttle.reserve(
        [{ key: `reg:${origin.source}`, max: policy.registerLimit }],
        origin.signal,
      );
      if (!reservation.granted) throw throttled(reservation.waitS);
      const { ticket } = reservation;
      let created: Awaited<ReturnType<typeof createAccount>>;
      try {
        created = await createAccount(email, displayName, input.password, {
          ...origin,
          signal: attemptSignal(origin.signal),
        });
      } catch (err) {
        await throttle.settle(ticket, { result: evaluated(err) ? 'failure' : 'void' }).catch(() => {});
        throw err;
      }
      await throttle.settle(ticket, { result: 'void' }).catch(() => {}); // else its slot expires
      const { user, session, refresh } = created;
      return { user, tokens: await issue(user, session.sessionId, refresh) };
    },

    /** A login attempt (see attemptLogin), counted by outcome; a malformed request is no attempt. */
    async login(input: { email: string; password: string }, origin: Origin): Promise<SignedIn> {
      const v = new Violations();
      const email = checkEmailLookup(v, 'email', input.email);
      checkGivenPassword(v, 'password', input.password);
      v.throwIfAny();
      try {
        const signedIn = await attemptLogin(email, input.password, origin);
        counters.login('success');
        return signedIn;
      } catch (err) {
        const outcome = failedLoginOutcome(err);
        if (outcome) counters.login(outcome);
        throw err;
      }
    },

    async refresh(
      refreshToken: string,
      origin: Pick<Origin, 'clientAddress' | 'requestId'>,
    ): Promise<IssuedTokens> {
      required('refresh_token', refreshToken, 'the refresh_token of your latest token pair');
      if (!REFRESH_TOKEN_SHAPE.test(refreshToken)) {
        counters.refresh('invalid');
        throw unauthenticated(BAD_REFRESH);
      }
      const next = tokens.newRefreshToken();
      const result = await transactions.run(async (tx) => {
        const rotated = await sessions.rotate(
          tokens.hashRefreshToken(refreshToken),
          { hash: next.hash, expiresAt: next.expiresAt },
          { graceS: policy.refreshReuseGraceS, maxLifetimeS: policy.sessionMaxLifetimeS },
          tx,
        );
        if (rotated.outcome === 'replay') {
          await audit.record(
            event(origin, {
              type: 'refresh.replay_detected',
              actor: { type: 'anonymous' },
              outcome: 'failure',
              subjectUserId: rotated.userId,
              details: { session_id: rotated.sessionId },
            }),
            tx,
          );
        }
        return rotated;
      });
      counters.refresh(result.outcome);
      if (result.outcome === 'rotated' || result.outcome === 'grace')
        return await issue(result.user, result.sessionId, next);
      throw unauthenticated(result.outcome === 'replay' ? REPLAYED_REFRESH : BAD_REFRESH);
    },

    /** Ends the session of a refresh token. Idempotent: unknown, used or ended tokens are fine too. */
    async logout(refreshToken: string, origin: Pick<Origin, 'clientAddress' | 'requestId'>): Promise<void> {
      required('refresh_token', refreshToken, 'a refresh token of the session to end');
      if (!REFRESH_TOKEN_SHAPE.test(refreshToken)) return;
      await transactions.run(async (tx) => {
        const ended = await sessions.endByRefreshToken(tokens.hashRefreshToken(refreshToken), tx);
        if (!ended) return;
        await audit.record(
          event(origin, {
            type: 'session.logged_out',
            actor: { type: 'user', id: ended.userId },
            outcome: 'success',
            subjectUserId: ended.userId,
            details: { session_id: ended.sessionId },
          }),
          tx,
        );
      });
    },

    /** RFC 7662-style introspection: a signature check and one lookup of the session with its user's current email and roles. */
    async validate(accessToken: string, signal?: AbortSignal): Promise<Introspection> {
      required('access_token', accessToken, 'the access token to check, without "Bearer "');
      const verified = await tokens.verifyAccess(accessToken);
      if (!verified) return { active: false };
      const expireTime = new Date(verified.exp * 1000);
      const { caller } = verified;
      if (caller.kind === 'service') {
        const account = await serviceAccounts.findActive(caller.serviceId, signal);
        if (!account || serviceTokenRevoked(account, caller)) return { active: false };
        return {
          active: true,
          tokenUse: 'service',
          serviceAccount: account.name,
          scopes: account.scopes,
          expireTime,
        };
      }
      const live = await sessions.liveCaller(caller, signal);
      if (!live) return { active: false };
      return {
        active: true,
        tokenUse: 'user',
        userId: live.userId,
        email: live.email,
        roles: [...live.roles],
        sessionId: live.sessionId,
        expireTime,
      };
    },

    /** Checks the current password (throttled per user), sets the new one, ends every session of the
     * user (this one included) and opens a new session, whose tokens are returned. */
    async changePassword(
      caller: UserCaller,
      input: { currentPassword: string; newPassword: string },
      origin: Origin,
    ): Promise<IssuedTokens> {
      const v = new Violations();
      checkGivenPassword(v, 'current_password', input.currentPassword);
      checkNewPassword(v, 'new_password', input.newPassword);
      v.throwIfAny();
      const source = origin.source;
      hasher.assertCapacity(source);

      const found = await users.findCredentialsById(caller.userId, origin.signal);
      if (!found) throw unauthenticated('this account no longer exists');
      await checkCurrentPassword(found, input.currentPassword, { signal: origin.signal, source });
      await checkStrength(v, 'new_password', input.newPassword, found, origin);
      v.throwIfAny();
      const nextHash = await hasher.hash(input.newPassword, { signal: origin.signal, source });
      throwIfAborted(origin.signal);
      const { session, refresh } = openSession(origin);
      const changed = await transactions.run(async (tx) => {
        if (!(await users.changePasswordHash(found.id, found.passwordHash, nextHash, tx))) return false;
        await sessions.endAllForUser(found.id, 'password change', tx);
        await sessions.create(found.id, session, tx);
        await audit.record(
          event(origin, {
            type: 'password.changed',
            actor: { type: 'user', id: caller.userId },
            outcome: 'success',
            subjectUserId: found.id,
            details: { session_id: session.sessionId },
          }),
          tx,
        );
        return true;
      });
      if (!changed) throw unauthenticated('the password was changed meanwhile; log in again');
      const { passwordHash: _, ...user } = found;
      return await issue(user, session.sessionId, refresh);
    },

    /** The caller's live sessions, newest first, marking the calling one. */
    async listSessions(caller: UserCaller): Promise<(SessionInfo & { current: boolean })[]> {
      const list = await sessions.listLive(caller.userId);
      return list.map((s) => ({ ...s, current: s.id === caller.sessionId }));
    },

    /** Ends one of the caller's own sessions; another user's (or an unknown or ended one) is NOT_FOUND. */
    async revokeSession(
      caller: UserCaller,
      sessionId: string,
      origin: Pick<Origin, 'clientAddress' | 'requestId'>,
    ): Promise<void> {
      const v = new Violations();
      checkUuid(v, 'session_id', sessionId);
      v.throwIfAny();
      const id = sessionId.toLowerCase();
      const ended = await transactions.run(async (tx) => {
        if (!(await sessions.end(id, caller.userId, 'revoked by user', tx))) return false;
        await audit.record(
          event(origin, {
            type: 'session.revoked',
            actor: { type: 'user', id: caller.userId },
            outcome: 'success',
            subjectUserId: caller.userId,
            details: { session_id: id },
          }),
          tx,
        );
        return true;
      });
      if (!ended) throw notFound(`no live session ${sessionId} of yours`);
    },
  };
}
