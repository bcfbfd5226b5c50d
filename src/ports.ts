/**
 * What the services need from storage, as plain data and interfaces. src/db implements them;
 * services depend only on these, so their logic can be read (and tested) without Sequelize.
 */

export interface UserRecord {
  id: string;
  email: string;
  displayName: string;
  roles: string[];
  createTime: Date;
  updateTime: Date;
}

export interface UserCredentials extends UserRecord {
  passwordHash: string;
}

/** The credentials of one login session, as handed to the caller. */
export interface IssuedTokens {
  accessToken: string;
  /** Seconds. */
  expiresIn: number;
  refreshToken: string;
  /** Seconds. */
  refreshExpiresIn: number;
}

/** A login session's first refresh token, stored only as its hash. */
export interface NewSession {
  sessionId: string;
  refreshTokenHash: string;
  refreshExpiresAt: Date;
}

export const ROLES = ['user', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export interface UserPatch {
  email?: string;
  displayName?: string;
  roles?: string[];
}

/** Where a page of users starts: after the user with this id (registration order). */
export interface ListQuery {
  afterId?: string;
  /** Lower-case prefix of the email or the display name. */
  prefix?: string;
  limit: number;
}

/** Whose bearer token a read is made for. */
export interface CallerSession {
  sessionId: string;
  userId: string;
}

export interface UserStore {
  /** Creates the user and its first session atomically; throws ALREADY_EXISTS for a taken email. */
  createWithSession(
    user: { id: string; email: string; displayName: string; passwordHash: string },
    session: NewSession,
  ): Promise<UserRecord>;
  findById(id: string): Promise<UserRecord | null>;
  findByEmail(email: string): Promise<UserRecord | null>;
  findCredentialsByEmail(email: string): Promise<UserCredentials | null>;
  /** The user (null if none) and whether the caller's session is live, read in one statement. */
  findForCaller(
    lookup: { id: string } | { email: string },
    caller: CallerSession,
    signal?: AbortSignal,
  ): Promise<{ callerLive: boolean; user: UserRecord | null }>;
  findCredentialsById(id: string): Promise<UserCredentials | null>;
  /** The active users among `ids` (any order, each once). */
  findManyByIds(ids: string[]): Promise<UserRecord[]>;
  /** Active users in registration order (created_at, id). */
  list(query: ListQuery): Promise<UserRecord[]>;
  /** Replaces the hash only if it is still `expected` (a concurrent password change wins). */
  replacePasswordHash(id: string, expected: string, next: string): Promise<boolean>;
  /** Sets a new hash (if the old one is still `expected`), ends every session of the user and opens
   * `session`, atomically. False when the hash changed meanwhile. */
  changePassword(id: string, expected: string, next: string, session: NewSession): Promise<boolean>;
  /** Applies the patch; with `endSessions` also ends every session of the user. Null if no such
   * active user; ALREADY_EXISTS for a taken email. */
  update(id: string, patch: UserPatch, options: { endSessions: boolean }): Promise<UserRecord | null>;
  /** Soft-deletes the user and ends their sessions; false if no such active user. */
  softDelete(id: string): Promise<boolean>;
}

export type RotateResult =
  | { outcome: 'rotated' | 'grace'; sessionId: string; user: UserRecord }
  | { outcome: 'replay' | 'invalid' };

export interface LivePrincipal {
  email: string;
  roles: string[];
}

export interface SessionStore {
  create(userId: string, session: NewSession): Promise<void>;
  /** True when the session exists, belongs to the user and has not been revoked (one PK lookup). */
  isActive(sessionId: string, userId: string, signal?: AbortSignal): Promise<boolean>;
  /** The user's current email and roles if the session is live and the user not deleted. */
  livePrincipal(sessionId: string, userId: string, signal?: AbortSignal): Promise<LivePrincipal | null>;
  /**
   * Exchanges a refresh token (by hash) for `next`, atomically: exactly one of concurrent callers
   * wins. A used token is a replay (the session is ended) unless it is the one just rotated away and
   * was used less than `graceS` seconds ago: then the session's live token is replaced by `next`.
   */
  rotate(
    presentedHash: string,
    next: { hash: string; expiresAt: Date },
    graceS: number,
  ): Promise<RotateResult>;
  /** Ends the session the refresh token belongs to (any of its tokens); no-op if none or ended. */
  endByRefreshToken(hash: string): Promise<void>;
}

/** Failed-login bookkeeping per normalised email. */
export interface LoginThrottleStore {
  /** Seconds until attempts are accepted again (0: now), and whether any failure is on record. */
  check(email: string): Promise<{ waitS: number; hasFailures: boolean }>;
  /** Counts a failure (restarting the count when the last one is older than `windowS`); returns the count. */
  recordFailure(email: string, windowS: number): Promise<number>;
  /** Refuses attempts for `seconds` from now. */
  lock(email: string, seconds: number): Promise<void>;
  reset(email: string): Promise<void>;
}
