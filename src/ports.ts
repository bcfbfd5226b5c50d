/**
 * What the services need from storage, as plain data and interfaces. src/db implements them;
 * services depend only on these, so their logic can be read (and tested, see test/unit) without a
 * database. Writes that must commit together take a `Tx` from `Transactions.run`.
 */
import type { Scope, UserCaller } from './caller.js';
import type { Reservation, Settlement, ThrottleKey, ThrottleTicket } from './throttle.js';

declare const txBrand: unique symbol;
/** An open database transaction, opaque to the services: pass it to store methods. */
export interface Tx {
  readonly [txBrand]: true;
}

export interface Transactions {
  /** Runs `work` in one transaction: committed when it resolves, rolled back when it throws. Not
   * started (CANCELLED) if `signal` has aborted. */
  run<T>(work: (tx: Tx) => Promise<T>, signal?: AbortSignal): Promise<T>;
}

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

/** A new login session: its first refresh token (stored only as its hash) and where it came from. */
export interface NewSession {
  sessionId: string;
  refreshTokenHash: string;
  refreshExpiresAt: Date;
  clientAddress: string;
  userAgent: string;
}

/** A live session as its owner sees it (ListSessions). */
export interface SessionInfo {
  id: string;
  createTime: Date;
  lastRefreshTime: Date | undefined;
  clientAddress: string;
  userAgent: string;
}

/** What a caller may see of a user: everything (own record, admins) or the public profile. */
export type UserView = UserRecord | Pick<UserRecord, 'id' | 'displayName' | 'createTime'>;

export const ROLES = ['user', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** Why a session ended (stored with it). */
export type RevokeReason =
  | 'logout'
  | 'revoked by user'
  | 'refresh token reuse'
  | 'password change'
  | 'email change'
  | 'roles reduced'
  | 'user deleted';

export interface UserPatch {
  email?: string;
  displayName?: string;
  roles?: string[];
}

/** Where a page of users starts: after the user with this id (registration order). */
export interface ListQuery {
  afterId?: string;
  /** Lower-case prefix of the display name, or (`'email-or-name'`, for admins) of either. */
  prefix?: { text: string; of: 'name' | 'email-or-name' };
  limit: number;
}

export type UserLookup = { id: string } | { email: string };

export interface UserStore {
  /** Inserts a new active user with the `user` role; ALREADY_EXISTS for a taken email. */
  insert(
    user: { id: string; email: string; displayName: string; passwordHash: string },
    tx: Tx,
  ): Promise<UserRecord>;
  findById(id: string): Promise<UserRecord | null>;
  findByEmail(email: string): Promise<UserRecord | null>;
  findCredentialsByEmail(email: string, signal?: AbortSignal): Promise<UserCredentials | null>;
  findCredentialsById(id: string, signal?: AbortSignal): Promise<UserCredentials | null>;
  /** The user (null if none) and the caller as stored now (null unless its session is live), read in one statement. */
  findForCaller(
    lookup: UserLookup,
    caller: UserCaller,
    signal?: AbortSignal,
  ): Promise<{ caller: UserCaller | null; user: UserRecord | null }>;
  /** The active users among `ids` (any order, each once). */
  findManyByIds(ids: string[]): Promise<UserRecord[]>;
  /** Active users in registration order (created_at, id). */
  list(query: ListQuery): Promise<UserRecord[]>;
  /** A rehash at the current cost: replaces the hash only if it is still `expected`; not a user change. */
  upgradePasswordHash(id: string, expected: string, next: string): Promise<boolean>;
  /** A password change: sets `next` only if the hash is still `expected` (a concurrent change wins). */
  changePasswordHash(id: string, expected: string, next: string, tx: Tx): Promise<boolean>;
  /** Applies the patch; null if no such active user; ALREADY_EXISTS for a taken email. */
  update(id: string, patch: UserPatch, tx?: Tx): Promise<UserRecord | null>;
  /** Soft-deletes the user; false if no such active user. */
  softDelete(id: string, tx: Tx): Promise<boolean>;
  /** The ids of every active admin, their rows locked until `tx` ends (so two removals cannot both pass a last-admin check). */
  lockAdmins(tx: Tx): Promise<string[]>;
}

export type RotateResult =
  | { outcome: 'rotated' | 'grace'; sessionId: string; user: UserRecord }
  /** The session a used token belonged to has been ended (in the caller's transaction). */
  | { outcome: 'replay'; sessionId: string; userId: string }
  | { outcome: 'invalid' };

/** A session that was ended. */
export interface EndedSession {
  sessionId: string;
  userId: string;
}

/** The only writer of sessions and refresh tokens. */
export interface SessionStore {
  /** Opens a session with its first refresh token. */
  create(userId: string, session: NewSession, tx?: Tx): Promise<void>;
  /** Ends every live session of the user (but `exceptSessionId`). */
  endAllForUser(userId: string, reason: RevokeReason, tx?: Tx, exceptSessionId?: string): Promise<void>;
  /** Ends one live session of the user; false if the user has no such live session. */
  end(sessionId: string, userId: string, reason: RevokeReason, tx?: Tx): Promise<boolean>;
  /** The user's live sessions, newest first. */
  listLive(userId: string): Promise<SessionInfo[]>;
  /** The caller with its user's current email and roles, if the session is live and the user not deleted. */
  liveCaller(caller: UserCaller, signal?: AbortSignal): Promise<UserCaller | null>;
  /**
   * Exchanges a refresh token (by hash) for `next`, atomically: exactly one of concurrent callers
   * wins. A used token is a replay (the session is ended) unless it is the one just rotated away and
   * was used less than `graceS` seconds ago: then the session's live token is replaced by `next`.
   * A session older than `maxLifetimeS` is not refreshed. Runs in `tx`: a replay's end of the
   * session commits with it (the caller records the event there, then answers the error).
   */
  rotate(
    presentedHash: string,
    next: { hash: string; expiresAt: Date },
    rules: { graceS: number; maxLifetimeS: number },
    tx: Tx,
  ): Promise<RotateResult>;
  /** Ends the session the refresh token belongs to (any of its tokens); null if none or already ended. */
  endByRefreshToken(hash: string, tx?: Tx): Promise<EndedSession | null>;
}

/** A service account: another service's identity, with the scopes it may use. */
export interface ServiceAccount {
  id: string;
  name: string;
  clientId: string;
  scopes: Scope[];
  /** A client-certificate name that also identifies it (besides `<name>.service`). */
  certName: string | null;
  createTime: Date;
  rotateTime: Date | undefined;
  /** `revoke-tokens`: its service tokens issued (`iat`, seconds) at or before this second are refused. */
  tokensValidAfter?: number;
}

/** A service token this account's `revoke-tokens` ended (a certificate's caller has no token to end). */
export const serviceTokenRevoked = (
  account: Pick<ServiceAccount, 'tokensValidAfter'>,
  caller: { via: 'token' | 'certificate'; issuedAt?: number },
): boolean =>
  caller.via === 'token' &&
  account.tokensValidAfter !== undefined &&
  (caller.issuedAt ?? 0) <= account.tokensValidAfter;

export interface ServiceAccountStore {
  /** ALREADY_EXISTS for a name in use. */
  insert(
    account: Omit<ServiceAccount, 'createTime' | 'rotateTime' | 'tokensValidAfter'> & { secretHash: string },
    tx?: Tx,
  ): Promise<ServiceAccount>;
  list(): Promise<ServiceAccount[]>;
  /** A new secret; the previous one keeps working for `overlapS`. Null if no such account. */
  rotate(name: string, secretHash: string, overlapS: number, tx?: Tx): Promise<ServiceAccount | null>;
  /** A new secret; the previous one (and one still in its rotation overlap) stops at once. Null if no such account. */
  revokeSecret(name: string, secretHash: string, tx?: Tx): Promise<ServiceAccount | null>;
  /** Ends every service token issued to it so far (tokens_valid_after := this second). Null if no such account. */
  revokeTokens(name: string, tx?: Tx): Promise<ServiceAccount | null>;
  /** Deletes the account (its tokens stop working at once); the deleted one, or null if none. */
  remove(name: string, tx?: Tx): Promise<ServiceAccount | null>;
  /** The account of a client id, with the hashes its secret may match now (the current one, and the previous during the overlap). */
  findByClientId(
    clientId: string,
    signal?: AbortSignal,
  ): Promise<{ account: ServiceAccount; secretHashes: string[] } | null>;
  /** An active account by id (every call with a service token asks: batched). */
  findActive(id: string, signal?: AbortSignal): Promise<ServiceAccount | null>;
  /** The active accounts (at most two) a client certificate's whole names name, by `<name>.service` or its certificate name. */
  findByCertificateNames(names: readonly string[], signal?: AbortSignal): Promise<ServiceAccount[]>;
}

/** Attempt counters in storage shared by every instance (the rules: src/throttle.ts). */
export interface AttemptThrottle {
  /** Holds one slot in flight on every key atomically, unless one is locked (then nothing is
   * written); waits (bounded by `signal`) while attempts in flight hold a key's remaining budget. */
  reserve(keys: readonly ThrottleKey[], signal?: AbortSignal): Promise<Reservation>;
  /** Ends a granted attempt: a failure counts (and may lock), a success clears its proven keys;
   * every slot is released. Returns the locks this settlement set. */
  settle(ticket: ThrottleTicket, how: Settlement): Promise<{ locks: { key: string; lockS: number }[] }>;
}

export type LoginOutcome = 'success' | 'bad_credentials' | 'throttled' | 'refused';
export type RefreshOutcome = RotateResult['outcome'];

/** Counts of security outcomes, for the operators' metrics (src/ops/metrics.ts). */
export interface SecurityCounters {
  login(outcome: LoginOutcome): void;
  refresh(outcome: RefreshOutcome): void;
  serviceTokenIssued(): void;
}

/** Counting nothing: for the CLI and for tests that do not look. */
export const UNCOUNTED: SecurityCounters = { login() {}, refresh() {}, serviceTokenIssued() {} };

/** What the audit trail records (and nothing else): one security event per change or attempt. */
export const AUDIT_EVENT_TYPES = [
  'user.registered',
  'login.succeeded',
  'login.failed',
  'login.throttled',
  'refresh.replay_detected',
  'session.logged_out',
  'session.revoked',
  'password.changed',
  'email.changed',
  'roles.changed',
  'user.deleted',
  'service_account.created',
  'service_account.rotated',
  'service_account.deleted',
  'service_account.secret_revoked',
  'service_account.tokens_revoked',
  'service_token.issued',
] as const;
export type AuditEventType = (typeof AUDIT_EVENT_TYPES)[number];
export const isAuditEventType = (s: string): s is AuditEventType =>
  (AUDIT_EVENT_TYPES as readonly string[]).includes(s);

/** Who acted: a user, a service account, an operator command (`id`: which), or nobody known. */
export type AuditActor =
  | { type: 'user'; id: string }
  | { type: 'service_account'; id: string }
  | { type: 'operator'; id: string }
  | { type: 'anonymous' };

export interface AuditEvent {
  type: AuditEventType;
  actor: AuditActor;
  outcome: 'success' | 'failure' | 'refused';
  /** The user the event is about. */
  subjectUserId?: string;
  /** Where the call came from, and its request id (none for operator commands). */
  clientAddress?: string;
  requestId?: string;
  /** Never a secret, a token or an email address (a failed login stores a keyed hash of it). */
  details?: Record<string, string>;
}

/** Where a call came from, for the audit trail: its client address and request id. */
export interface CallSource {
  clientAddress: string;
  requestId?: string;
}

export interface AuditRecord extends AuditEvent {
  id: string;
  time: Date;
}

export interface AuditQuery {
  subjectUserId?: string;
  types?: readonly AuditEventType[];
  /** At or after. */
  from?: Date;
  /** Before. */
  to?: Date;
  /** Events recorded before this one (keyset paging, newest first). */
  beforeId?: string;
  limit: number;
}

/** The append-only audit trail. `record` with `tx` commits (or rolls back) with the change it records. */
export interface AuditLog {
  record(event: AuditEvent, tx?: Tx): Promise<void>;
  /** Newest first. */
  list(query: AuditQuery): Promise<AuditRecord[]>;
}
