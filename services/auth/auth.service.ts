/**
 * Auth use cases: register, login, refresh-token rotation, logout, token introspection and
 * password change. No gRPC and no SQL here: storage, hashing and token signing come in as
 * dependencies (wired in src/app.ts).
 */
import { randomUUID } from 'node:crypto';
import type { Caller } from '../../src/caller.js';
import {
  InvalidArgumentError,
  resourceExhausted,
  throwIfAborted,
  unauthenticated,
  Violations,
} from '../../src/errors.js';
import type {
  IssuedTokens,
  LoginThrottleStore,
  NewSession,
  SessionStore,
  Transactions,
  UserRecord,
  UserStore,
} from '../../src/ports.js';
import type { PasswordHasher } from '../../src/security/passwords.js';
import type { TokenService } from '../../src/security/tokens.js';
import {
  checkDisplayName,
  checkEmail,
  checkGivenPassword,
  checkNewPassword,
  hasUnsafeText,
} from '../../src/validation.js';

export interface AuthDeps {
  transactions: Transactions;
  users: UserStore;
  sessions: SessionStore;
  hasher: PasswordHasher;
  tokens: TokenService;
  throttle: LoginThrottleStore;
  /** REFRESH_REUSE_GRACE_SECONDS */
  refreshReuseGraceS: number;
  loginPolicy: LoginPolicy;
}

/** LOGIN_MAX_FAILURES, LOGIN_LOCKOUT_BASE_S, LOGIN_LOCKOUT_MAX_S, LOGIN_FAILURE_WINDOW_S */
export interface LoginPolicy {
  maxFailures: number;
  lockoutBaseS: number;
  lockoutMaxS: number;
  failureWindowS: number;
}

/** Seconds of refusal after `failures` consecutive failures: base, 2×base, 4×base ... up to max. */
export const lockoutSeconds = (failures: number, p: LoginPolicy): number =>
  failures < p.maxFailures
    ? 0
    : Math.min(p.lockoutBaseS * 2 ** Math.min(failures - p.maxFailures, 30), p.lockoutMaxS);

export interface SignedIn {
  user: UserRecord;
  tokens: IssuedTokens;
}

export interface Introspection {
  active: boolean;
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

export type AuthService = ReturnType<typeof createAuthService>;

export function createAuthService(deps: AuthDeps) {
  const { transactions, users, sessions, hasher, tokens, throttle, refreshReuseGraceS, loginPolicy } = deps;
  /** A new login session: its id and first refresh token (the store keeps only the hash). */
  const openSession = () => {
    const refresh = tokens.newRefreshToken();
    const session: NewSession = {
      sessionId: randomUUID(),
      refreshTokenHash: refresh.hash,
      refreshExpiresAt: refresh.expiresAt,
    };
    return { session, refresh };
  };

  const issue = (
    user: UserRecord,
    sessionId: string,
    refresh: { token: string; expiresIn: number },
  ): IssuedTokens => {
    const access = tokens.signAccess({
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

  return {
    async register(input: { email: string; password: string; displayName: string }, signal?: AbortSignal) {
      const v = new Violations();
      const email = checkEmail(v, 'email', input.email);
      checkNewPassword(v, 'password', input.password);
      const displayName = checkDisplayName(v, 'display_name', input.displayName);
      v.throwIfAny();
      hasher.assertCapacity();

      const passwordHash = await hasher.hash(input.password, signal);
      throwIfAborted(signal);
      const { session, refresh } = openSession();
      const user = await transactions.run(async (tx) => {
        const created = await users.insert({ id: randomUUID(), email, displayName, passwordHash }, tx);
        await sessions.create(created.id, session, tx);
        return created;
      });
      return { user, tokens: issue(user, session.sessionId, refresh) } satisfies SignedIn;
    },

    async login(input: { email: string; password: string }, signal?: AbortSignal): Promise<SignedIn> {
      const v = new Violations();
      const email = checkEmail(v, 'email', input.email);
      checkGivenPassword(v, 'password', input.password);
      v.throwIfAny();
      hasher.assertCapacity(); // refuse a flood before it costs database work

      // Throttled per account (known or not), before any hashing work; state in the database.
      const throttled = await throttle.check(email, signal);
      if (throttled.waitS > 0) {
        throw resourceExhausted(`too many failed logins for this account; retry in ${throttled.waitS} s`);
      }
      const found = await users.findCredentialsByEmail(email, signal);
      throwIfAborted(signal);
      const ok = await hasher.verify(input.password, found?.passwordHash ?? null, signal);
      if (!found || !ok) {
        const failures = await throttle.recordFailure(email, loginPolicy.failureWindowS);
        const lockS = lockoutSeconds(failures, loginPolicy);
        if (lockS > 0) await throttle.lock(email, lockS);
        throw unauthenticated(BAD_CREDENTIALS);
      }
      if (throttled.hasFailures) await throttle.reset(email);

      if (hasher.needsRehash(found.passwordHash)) {
        // Upgrade a hash made at another cost; a concurrent password change wins.
        const upgraded = await hasher.hash(input.password, signal);
        await users.upgradePasswordHash(found.id, found.passwordHash, upgraded);
      }
      throwIfAborted(signal);
      const { passwordHash: _, ...user } = found;
      const { session, refresh } = openSession();
      await sessions.create(user.id, session);
      return { user, tokens: issue(user, session.sessionId, refresh) };
    },

    async refresh(refreshToken: string): Promise<IssuedTokens> {
      required('refresh_token', refreshToken, 'the refresh_token of your latest token pair');
      if (!REFRESH_TOKEN_SHAPE.test(refreshToken)) throw unauthenticated(BAD_REFRESH);
      const next = tokens.newRefreshToken();
      const result = await sessions.rotate(
        tokens.hashRefreshToken(refreshToken),
        { hash: next.hash, expiresAt: next.expiresAt },
        refreshReuseGraceS,
      );
      if (result.outcome === 'rotated' || result.outcome === 'grace')
        return issue(result.user, result.sessionId, next);
      throw unauthenticated(result.outcome === 'replay' ? REPLAYED_REFRESH : BAD_REFRESH);
    },

    /** Ends the session of a refresh token. Idempotent: unknown, used or ended tokens are fine too. */
    async logout(refreshToken: string): Promise<void> {
      required('refresh_token', refreshToken, 'a refresh token of the session to end');
      if (!REFRESH_TOKEN_SHAPE.test(refreshToken)) return;
      await sessions.endByRefreshToken(tokens.hashRefreshToken(refreshToken));
    },

    /** RFC 7662-style introspection: a signature check and one primary-key lookup. */
    async validate(accessToken: string, signal?: AbortSignal): Promise<Introspection> {
      required('access_token', accessToken, 'the access token to check, without "Bearer "');
      const verified = tokens.verifyAccess(accessToken);
      if (!verified) return { active: false };
      const { caller, exp } = verified;
      if (!(await sessions.isActive(caller.sessionId, caller.userId, signal))) return { active: false };
      return {
        active: true,
        userId: caller.userId,
        email: caller.email,
        roles: [...caller.roles],
        sessionId: caller.sessionId,
        expireTime: new Date(exp * 1000),
      };
    },

    /** Checks the current password, sets the new one, ends every session of the user (this one
     * included) and opens a new session, whose tokens are returned. */
    async changePassword(
      caller: Caller,
      input: { currentPassword: string; newPassword: string },
      signal?: AbortSignal,
    ): Promise<IssuedTokens> {
      const v = new Violations();
      checkGivenPassword(v, 'current_password', input.currentPassword);
      checkNewPassword(v, 'new_password', input.newPassword);
      v.throwIfAny();
      hasher.assertCapacity();

      const found = await users.findCredentialsById(caller.userId, signal);
      if (!found) throw unauthenticated('this account no longer exists');
      if (!(await hasher.verify(input.currentPassword, found.passwordHash, signal))) {
        throw unauthenticated('current_password is incorrect');
      }
      const nextHash = await hasher.hash(input.newPassword, signal);
      throwIfAborted(signal);
      const { session, refresh } = openSession();
      const changed = await transactions.run(async (tx) => {
        if (!(await users.changePasswordHash(found.id, found.passwordHash, nextHash, tx))) return false;
        await sessions.endAllForUser(found.id, 'password change', tx);
        await sessions.create(found.id, session, tx);
        return true;
      });
      if (!changed) throw unauthenticated('the password was changed meanwhile; log in again');
      const { passwordHash: _, ...user } = found;
      return issue(user, session.sessionId, refresh);
    },
  };
}
