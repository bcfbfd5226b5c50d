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

export interface UserStore {
  /** Creates the user and its first session atomically; throws ALREADY_EXISTS for a taken email. */
  createWithSession(
    user: { id: string; email: string; displayName: string; passwordHash: string },
    session: NewSession,
  ): Promise<UserRecord>;
  findById(id: string): Promise<UserRecord | null>;
  findByEmail(email: string): Promise<UserRecord | null>;
  findCredentialsByEmail(email: string): Promise<UserCredentials | null>;
  /** Replaces the hash only if it is still `expected` (a concurrent password change wins). */
  replacePasswordHash(id: string, expected: string, next: string): Promise<boolean>;
}

export interface SessionStore {
  create(userId: string, session: NewSession): Promise<void>;
  /** True when the session exists, belongs to the user and has not been revoked. */
  isActive(sessionId: string, userId: string): Promise<boolean>;
}
