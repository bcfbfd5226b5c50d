/**
 * User use cases: get, batch get, list, update with a field mask, soft delete, and the operator's
 * role grants. Callers are authenticated before they get here (see src/grpc/policy.ts); the
 * permission and visibility rules live here:
 * - a caller sees every field of its own record, an admin of every record, anyone else the public
 *   profile (id, display name, creation time);
 * - GetUser by email answers only for the caller's own address (or an admin), and says nothing
 *   about any other address: PERMISSION_DENIED whether or not it exists;
 * - ListUsers is the whole directory for admins, a display-name search for everyone else;
 * - no change may leave the system without an admin.
 */
import { type Caller, hasScope, isAdmin, type UserCaller } from '../../src/caller.js';
import {
  BAD_ACCESS_TOKEN,
  echo,
  failedPrecondition,
  InvalidArgumentError,
  notFound,
  permissionDenied,
  quote,
  unauthenticated,
  Violations,
} from '../../src/errors.js';
import {
  AUDIT_EVENT_TYPES,
  type AuditActor,
  type AuditEvent,
  type AuditLog,
  type AuditRecord,
  type CallSource,
  isAuditEventType,
  ROLES,
  type SessionStore,
  type Transactions,
  type Tx,
  type UserPatch,
  type UserRecord,
  type UserStore,
  type UserView,
} from '../../src/ports.js';
import type { RunOptions } from '../../src/security/limiter.js';
import type { PageTokenCodec } from '../../src/security/page-tokens.js';
import type { CurrentPasswordCheck } from '../../src/security/reauth.js';
import {
  checkDisplayName,
  checkEmail,
  checkEmailLookup,
  checkGivenPassword,
  checkUuid,
  EMAIL_MAX,
  hasUnsafeText,
  normalizeEmail,
} from '../../src/validation.js';

export type UserLookup = { by: 'id'; id: string } | { by: 'email'; email: string };

export interface UserDeps {
  transactions: Transactions;
  users: UserStore;
  sessions: SessionStore;
  pageTokens: PageTokenCodec;
  checkCurrentPassword: CurrentPasswordCheck;
  audit: AuditLog;
  /** ListAuditEvents' page tokens (a key of their own: a ListUsers token is no audit cursor). */
  auditPageTokens: PageTokenCodec;
}

export interface AuditListInput {
  pageSize: number;
  pageToken: string;
  subjectUserId: string;
  eventTypes: string[];
  startTime?: Date;
  endTime?: Date;
}

/** Who made a change, and where from (an operator command has no address). */
interface ChangedBy {
  actor: AuditActor;
  source?: CallSource;
}

export const BATCH_MAX = 100;
export const PAGE_SIZE_DEFAULT = 50;
export const PAGE_SIZE_MAX = 1000;
/** ListUsers for non-admins: a display-name search of at least this many characters, pages of at most… */
export const PUBLIC_QUERY_MIN = 3;
export const PUBLIC_PAGE_SIZE_MAX = 50;
export const ROLES_MAX = 16;

const MUTABLE_PATHS = ['display_name', 'email', 'roles'] as const;
type MutablePath = (typeof MUTABLE_PATHS)[number];
const IMMUTABLE_PATHS = new Set(['id', 'create_time', 'update_time']);

export interface UpdateInput {
  id: string;
  displayName: string;
  email: string;
  roles: string[];
}

/** A stored user without its password hash. */
const withoutHash = (u: (UserRecord & { passwordHash: string }) | null): UserRecord | null => {
  if (!u) return null;
  const { passwordHash: _, ...user } = u;
  return user;
};

/** Roles as given, checked: at most 16, known names only, always including `user`; sorted and unique. */
function checkRoles(v: Violations, field: string, roles: string[]): string[] {
  if (roles.length > ROLES_MAX) {
    v.add(field, `at most ${ROLES_MAX} roles (got ${roles.length})`);
    return [];
  }
  const unknown = [...new Set(roles.filter((r) => !(ROLES as readonly string[]).includes(r)))];
  if (unknown.length) {
    v.add(
      field,
      `unknown role(s) ${echo(unknown.map((r) => quote(r, 20)).join(', '))}; known: ${ROLES.join(', ')}`,
    );
  } else if (!roles.includes('user')) v.add(field, 'must include "user"');
  return [...new Set(roles)].sort();
}

/** The fields an update touches (AIP-134): an empty mask means every non-empty field given, `*` all. */
export function updatePaths(input: UpdateInput, mask: string[] | undefined): MutablePath[] {
  const v = new Violations();
  let paths: string[];
  if (!mask || mask.length === 0) {
    paths = MUTABLE_PATHS.filter((p) =>
      p === 'roles' ? input.roles.length > 0 : (p === 'email' ? input.email : input.displayName) !== '',
    );
  } else if (mask.length === 1 && mask[0] === '*') {
    paths = [...MUTABLE_PATHS];
  } else {
    paths = mask;
  }
  for (const path of new Set(paths)) {
    if (IMMUTABLE_PATHS.has(path)) v.add('update_mask', `${quote(path)} cannot be changed`);
    else if (!(MUTABLE_PATHS as readonly string[]).includes(path)) {
      v.add('update_mask', `unknown field ${quote(path)}; updatable: ${MUTABLE_PATHS.join(', ')}`);
    }
  }
  if (v.empty && paths.length === 0) v.add('update_mask', 'names no field to change');
  v.throwIfAny();
  return [...new Set(paths)] as MutablePath[];
}

/** The values of the masked fields, checked and normalised (every bad one collected). */
export function resolveUpdate(input: UpdateInput, mask: string[] | undefined): UserPatch {
  const v = new Violations();
  const patch: UserPatch = {};
  for (const path of updatePaths(input, mask)) {
    if (path === 'display_name')
      patch.displayName = checkDisplayName(v, 'user.display_name', input.displayName);
    else if (path === 'email') patch.email = checkEmail(v, 'user.email', input.email);
    else patch.roles = checkRoles(v, 'user.roles', input.roles);
  }
  v.throwIfAny();
  return patch;
}

/** Whether `caller` sees every field of any user: an admin, or a service with users.read.private. */
const seesPrivate = (caller: Caller) => isAdmin(caller) || hasScope(caller, 'users.read.private');

/** What `caller` may see of `user`: all of its own record, all for an admin (or a service with
 * users.read.private), else the public profile. */
export function viewFor(caller: Caller, user: UserRecord): UserView {
  if ((caller.kind === 'user' && caller.userId === user.id) || seesPrivate(caller)) return user;
  return { id: user.id, displayName: user.displayName, createTime: user.createTime };
}

export type UserService = ReturnType<typeof createUserService>;

export function createUserService({
  transactions,
  users,
  sessions,
  pageTokens,
  checkCurrentPassword,
  audit,
  auditPageTokens,
}: UserDeps) {
  const record = (by: ChangedBy, e: Omit<AuditEvent, 'actor' | 'clientAddress' | 'requestId'>, tx: Tx) =>
    audit.record(
      { ...e, actor: by.actor, clientAddress: by.source?.clientAddress, requestId: by.source?.requestId },
      tx,
    );
  const sameRoles = (a: readonly string[], b: readonly string[]) =>
    [...a].sort().join(',') === [...b].sort().join(',');
  /** Refuses a change that would leave no active admin; the admins' rows stay locked until `tx` ends. */
  const keepAnAdmin = async (userId: string, tx: Tx) => {
    const admins = await users.lockAdmins(tx);
    if (admins.includes(userId) && admins.length === 1) {
      throw failedPrecondition('this is the last admin: grant admin to another user first');
    }
  };

  /** Applies a patch in one transaction: the last admin keeps the role; losing a role ends the
   * user's sessions (their tokens must not keep a privilege); an email change ends every other
   * session of the user (`keepSession`: the caller's own). Null when the user is gone. Email and
   * role changes are audited in the same transaction. */
  const applyPatch = (current: UserRecord, patch: UserPatch, by: ChangedBy, keepSession?: string) =>
    transactions.run(async (tx) => {
      const lostRoles = patch.roles !== undefined && current.roles.some((r) => !patch.roles?.includes(r));
      if (lostRoles && current.roles.includes('admin') && !patch.roles?.includes('admin')) {
        await keepAnAdmin(current.id, tx);
      }
      const updated = await users.update(current.id, patch, tx);
      if (!updated) return null;
      const emailChanged = patch.email !== undefined && patch.email !== current.email;
      if (lostRoles) await sessions.endAllForUser(current.id, 'roles reduced', tx);
      else if (emailChanged) await sessions.endAllForUser(current.id, 'email change', tx, keepSession);
      if (emailChanged) {
        await record(by, { type: 'email.changed', outcome: 'success', subjectUserId: current.id }, tx);
      }
      if (patch.roles !== undefined && !sameRoles(current.roles, patch.roles)) {
        const details = { roles_before: current.roles.join(','), roles_after: patch.roles.join(',') };
        await record(
          by,
          { type: 'roles.changed', outcome: 'success', subjectUserId: current.id, details },
          tx,
        );
      }
      return updated;
    });

  return {
    /** One statement reads the user and proves the caller's session live, with its current roles. */
    async getUser(lookup: UserLookup | undefined, caller: Caller, signal?: AbortSignal): Promise<UserView> {
      if (!lookup)
        throw new InvalidArgumentError([{ field: 'lookup', description: 'set exactly one of id or email' }]);
      const v = new Violations();
      if (lookup.by === 'id') checkUuid(v, 'id', lookup.id);
      const email = lookup.by === 'email' ? checkEmailLookup(v, 'email', lookup.email) : '';
      v.throwIfAny();
      const key = lookup.by === 'id' ? { id: lookup.id.toLowerCase() } : { email };
      if (caller.kind === 'service') {
        // proven live by the authentication step; by email only with users.read.private
        if (lookup.by === 'email' && !seesPrivate(caller)) {
          throw permissionDenied('a lookup by email needs the scope users.read.private');
        }
        const user =
          lookup.by === 'id' ? await users.findById(lookup.id.toLowerCase()) : await users.findByEmail(email);
        if (!user)
          throw notFound(lookup.by === 'id' ? `user ${lookup.id} not found` : 'no user with this email');
        return viewFor(caller, user);
      }
      const found = await users.findForCaller(key, caller, signal);
      const me = found.caller;
      if (!me) throw unauthenticated(BAD_ACCESS_TOKEN);
      // By email: only one's own address (or any, for an admin), decided before existence shows.
      if (lookup.by === 'email' && email !== me.email && !isAdmin(me)) {
        throw permissionDenied('you can look up only your own email address');
      }
      if (!found.user)
        throw notFound(lookup.by === 'id' ? `user ${lookup.id} not found` : 'no user with this email');
      return viewFor(me, found.user);
    },

    /** AIP-231: all or nothing, in request order, one query. */
    async batchGet(caller: Caller, ids: string[]): Promise<UserView[]> {
      const v = new Violations();
      if (ids.length > BATCH_MAX) v.add('ids', `at most ${BATCH_MAX} ids per call (got ${ids.length})`);
      else {
        for (const [i, id] of ids.entries()) checkUuid(v, `ids[${i}]`, id);
      }
      v.throwIfAny();
      if (ids.length === 0) return [];
      const wanted = ids.map((id) => id.toLowerCase());
      const found = new Map((await users.findManyByIds([...new Set(wanted)])).map((u) => [u.id, u]));
      const missing = [...new Set(wanted.filter((id) => !found.has(id)))];
      if (missing.length) throw notFound(`user(s) not found: ${echo(missing.join(', '))}`);
      return wanted.map((id) => viewFor(caller, found.get(id) as UserRecord));
    },

    /** AIP-158 keyset pagination in registration order: the directory for admins, a name search for others. */
    async list(caller: UserCaller, input: { pageSize: number; pageToken: string; query: string }) {
      const admin = isAdmin(caller);
      const v = new Violations();
      if (input.pageSize < 0) v.add('page_size', 'must not be negative');
      const query = input.query.normalize('NFC').trim().toLowerCase();
      if (query.length > EMAIL_MAX) v.add('query', `must be at most ${EMAIL_MAX} characters`);
      else if (hasUnsafeText(query)) v.add('query', 'must not contain control characters or invalid UTF-8');
      else if (!admin && [...query].length < PUBLIC_QUERY_MIN) {
        v.add(
          'query',
          `is required: at least ${PUBLIC_QUERY_MIN} characters of the display name to search for`,
        );
      }
      let afterId: string | undefined;
      if (input.pageToken) {
        const cursor = pageTokens.decode(input.pageToken);
        if (!cursor)
          v.add('page_token', 'is not a page token from this service (use next_page_token as given)');
        else if (cursor.query !== query)
          v.add('page_token', 'was made for another query; keep the query when paging');
        else afterId = cursor.afterId;
      }
      v.throwIfAny();
      const pageSize = Math.min(
        input.pageSize || PAGE_SIZE_DEFAULT,
        admin ? PAGE_SIZE_MAX : PUBLIC_PAGE_SIZE_MAX,
      );
      const rows = await users.list({
        afterId,
        prefix: query ? { text: query, of: admin ? 'email-or-name' : 'name' } : undefined,
        limit: pageSize + 1,
      });
      const page = rows.slice(0, pageSize);
      const last = page[page.length - 1];
      const nextPageToken =
        rows.length > pageSize && last ? pageTokens.encode({ afterId: last.id, query }) : '';
      return { users: page.map((u) => viewFor(caller, u)), nextPageToken };
    },

    /**
     * AIP-134: only the masked fields change. Who may change what is decided on the paths before
     * any value is looked at; a user changing their own email proves it with current_password.
     */
    async update(
      caller: UserCaller,
      input: UpdateInput & { currentPassword: string },
      mask: string[] | undefined,
      options: RunOptions & { requestId?: string } = {},
    ): Promise<UserView> {
      // who may change this user at all is decided first: a stranger never gets the mask judged
      const id = input.id.toLowerCase();
      const self = caller.userId === id;
      if (!self && !isAdmin(caller)) throw permissionDenied('you can only change your own account');
      const paths = updatePaths(input, mask);
      if (paths.includes('roles') && !isAdmin(caller))
        throw permissionDenied('only an admin can change roles');
      const patch = resolveUpdate(input, paths);
      const v = new Violations();
      checkUuid(v, 'user.id', input.id);
      const reauth = self && patch.email !== undefined;
      if (reauth) checkGivenPassword(v, 'current_password', input.currentPassword);
      v.throwIfAny();

      if (reauth) {
        const credentials = await users.findCredentialsById(id, options.signal);
        if (!credentials) throw notFound(`user ${input.id} not found`);
        if (credentials.email !== patch.email)
          await checkCurrentPassword(credentials, input.currentPassword, options);
      }
      // read fresh (never from a cache): the patch is judged against what is stored now
      const current = withoutHash(await users.findCredentialsById(id));
      const by: ChangedBy = {
        actor: { type: 'user', id: caller.userId },
        source: { clientAddress: options.source ?? '', requestId: options.requestId },
      };
      const updated = current && (await applyPatch(current, patch, by, self ? caller.sessionId : undefined));
      if (!updated) throw notFound(`user ${input.id} not found`);
      return viewFor(caller, updated);
    },

    /** Soft delete by the user themself or an admin: sessions end, the address becomes free; never the last admin. */
    async remove(caller: UserCaller, id: string, source?: CallSource): Promise<void> {
      const v = new Violations();
      checkUuid(v, 'id', id);
      v.throwIfAny();
      const target = id.toLowerCase();
      if (caller.userId !== target && !isAdmin(caller))
        throw permissionDenied('you can only delete your own account');
      const deleted = await transactions.run(async (tx) => {
        await keepAnAdmin(target, tx);
        if (!(await users.softDelete(target, tx))) return false;
        await sessions.endAllForUser(target, 'user deleted', tx);
        const by = { actor: { type: 'user', id: caller.userId } as const, source };
        await record(by, { type: 'user.deleted', outcome: 'success', subjectUserId: target }, tx);
        return true;
      });
      if (!deleted) throw notFound(`user ${id} not found`);
    },

    /** Operator command (npm run cli): grant or revoke a role by email; `operator` says who (audited). */
    async setRole(email: string, role: string, grant: boolean, operator: string): Promise<UserRecord> {
      const normalised = normalizeEmail(email);
      const user = withoutHash(await users.findCredentialsByEmail(normalised));
      if (!user) throw notFound(`no user with email ${echo(normalised)}`);
      const roles = grant ? [...new Set([...user.roles, role])].sort() : user.roles.filter((r) => r !== role);
      const checked = new Violations();
      checkRoles(checked, 'role', roles);
      checked.throwIfAny();
      const updated = await applyPatch(user, { roles }, { actor: { type: 'operator', id: operator } });
      if (!updated) throw notFound(`no user with email ${echo(normalised)}`);
      return updated;
    },

    /** The audit trail, newest first, for admins; page tokens are bound to the filters. */
    async listAudit(
      caller: UserCaller,
      input: AuditListInput,
    ): Promise<{ events: AuditRecord[]; nextPageToken: string }> {
      if (!isAdmin(caller)) throw permissionDenied('only an admin can read the audit trail');
      const v = new Violations();
      if (input.pageSize < 0) v.add('page_size', 'must not be negative');
      if (input.subjectUserId) checkUuid(v, 'subject_user_id', input.subjectUserId);
      if (input.eventTypes.length > AUDIT_EVENT_TYPES.length) {
        v.add('event_types', `at most ${AUDIT_EVENT_TYPES.length} types`);
      } else {
        for (const [i, t] of input.eventTypes.entries()) {
          if (!isAuditEventType(t))
            v.add(
              `event_types[${i}]`,
              `unknown event type ${quote(t)}; known: ${AUDIT_EVENT_TYPES.join(', ')}`,
            );
        }
      }
      const { startTime: from, endTime: to } = input;
      if (from && to && from.getTime() >= to.getTime()) v.add('end_time', 'must be after start_time');
      const types = [...new Set(input.eventTypes)].filter(isAuditEventType).sort();
      const subject = input.subjectUserId.toLowerCase() || undefined;
      const filters = JSON.stringify([
        subject ?? '',
        types,
        from?.toISOString() ?? '',
        to?.toISOString() ?? '',
      ]);
      let beforeId: string | undefined;
      if (input.pageToken) {
        const cursor = auditPageTokens.decode(input.pageToken);
        if (!cursor || !/^[1-9][0-9]{0,18}$/.test(cursor.afterId))
          v.add('page_token', 'is not a page token from this service (use next_page_token as given)');
        else if (cursor.query !== filters)
          v.add('page_token', 'was made for other filters; keep the filters when paging');
        else beforeId = cursor.afterId;
      }
      v.throwIfAny();
      const limit = Math.min(input.pageSize || PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX);
      const rows = await audit.list({ subjectUserId: subject, types, from, to, beforeId, limit: limit + 1 });
      const events = rows.slice(0, limit);
      const last = events[events.length - 1];
      const nextPageToken =
        rows.length > limit && last ? auditPageTokens.encode({ afterId: last.id, query: filters }) : '';
      return { events, nextPageToken };
    },
  };
}
