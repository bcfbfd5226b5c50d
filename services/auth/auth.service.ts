/**
 * Auth use cases: register, login. No gRPC and no SQL here: storage, hashing and token signing
 * come in as dependencies (wired in src/app.ts).
 */
import { randomUUID } from 'node:crypto';
import { throwIfAborted, unauthenticated, Violations } from '../../src/errors.js';
import type { IssuedTokens, NewSession, SessionStore, UserRecord, UserStore } from '../../src/ports.js';
import type { PasswordHasher } from '../../src/security/passwords.js';
import type { TokenService } from '../../src/security/tokens.js';
import { checkDisplayName, checkEmail, checkGivenPassword, checkNewPassword } from '../../src/validation.js';

export interface AuthDeps {
  users: UserStore;
  sessions: SessionStore;
  hasher: PasswordHasher;
  tokens: TokenService;
}

export interface RegisterInput {
  email: string;
  password: string;
  displayName: string;
}

export interface LoginInput {
  email: string;
  password: string;
}

export interface SignedIn {
  user: UserRecord;
  tokens: IssuedTokens;
}

/** Same message for an unknown email and a wrong password: no hint whether an account exists. */
export const BAD_CREDENTIALS = 'invalid email or password';

export type AuthService = ReturnType<typeof createAuthService>;

export function createAuthService({ users, sessions, hasher, tokens }: AuthDeps) {
  /** A new login session: its id and first refresh token (the caller stores the hash). */
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
    const access = tokens.signAccess({ userId: user.id, email: user.email, roles: user.roles, sessionId });
    return {
      accessToken: access.token,
      expiresIn: access.expiresIn,
      refreshToken: refresh.token,
      refreshExpiresIn: refresh.expiresIn,
    };
  };

  return {
    async register(input: RegisterInput, signal?: AbortSignal): Promise<SignedIn> {
      const v = new Violations();
      const email = checkEmail(v, 'email', input.email);
      checkNewPassword(v, 'password', input.password);
      const displayName = checkDisplayName(v, 'display_name', input.displayName);
      v.throwIfAny();

      const passwordHash = await hasher.hash(input.password, signal);
      throwIfAborted(signal);
      const { session, refresh } = openSession();
      const user = await users.createWithSession(
        { id: randomUUID(), email, displayName, passwordHash },
        session,
      );
      return { user, tokens: issue(user, session.sessionId, refresh) };
    },

    async login(input: LoginInput, signal?: AbortSignal): Promise<SignedIn> {
      const v = new Violations();
      const email = checkEmail(v, 'email', input.email);
      checkGivenPassword(v, 'password', input.password);
      v.throwIfAny();

      const found = await users.findCredentialsByEmail(email);
      throwIfAborted(signal);
      const ok = await hasher.verify(input.password, found?.passwordHash ?? null, signal);
      if (!found || !ok) throw unauthenticated(BAD_CREDENTIALS);

      if (hasher.needsRehash(found.passwordHash)) {
        // Upgrade a hash made at another cost; a concurrent password change wins.
        const upgraded = await hasher.hash(input.password, signal);
        await users.replacePasswordHash(found.id, found.passwordHash, upgraded);
      }
      throwIfAborted(signal);
      const { passwordHash: _, ...user } = found;
      const { session, refresh } = openSession();
      await sessions.create(user.id, session);
      return { user, tokens: issue(user, session.sessionId, refresh) };
    },
  };
}
