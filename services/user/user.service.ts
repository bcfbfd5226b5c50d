/**
 * User use cases: get, batch get, list, update with a field mask, soft delete, and the operator's
 * role grants. Callers are authenticated before they get here (see the adapter); the permission
 * rules live here.
 */

import { type Caller, isAdmin } from '../../src/caller.js';
import {
  BAD_ACCESS_TOKEN,
  InvalidArgumentError,
  notFound,
  permissionDenied,
  unauthenticated,
  Violations,
} from '../../src/errors.js';
import {
  ROLES,
  type SessionStore,
  type Transactions,
  type UserPatch,
  type UserRecord,
  type UserStore,
} from '../../src/ports.js';
import type { PageTokenCodec } from '../../src/security/page-tokens.js';
import { checkDisplayName, checkEmail, checkUuid, EMAIL_MAX, hasUnsafeText } from '../../src/validation.js';

export type UserLookup = { by: 'id'; id: string } | { by: 'email'; email: string };

export interface UserDeps {
  transactions: Transactions;
  users: UserStore;
  sessions: SessionStore;
  pageTokens: PageTokenCodec;
}

export const BATCH_MAX = 100;
export const PAGE_SIZE_DEFAULT = 50;
export const PAGE_SIZE_MAX = 1000;

const MUTABLE_PATHS = ['display_name', 'email', 'roles'] as const;
const IMMUTABLE_PATHS = new Set(['id', 'create_time', 'update_time']);

export interface UpdateInput {
  id: string;
  displayName: string;
  email: string;
  roles: string[];
}

/** A caller's value quoted in an error message, cut short: never echo a huge input back. */
const quote = (value: string) => JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);

/** Roles as given, checked: known names only, always including `user`; sorted and unique. */
function checkRoles(v: Violations, field: string, roles: string[]): string[] {
  const unknown = roles.filter((r) => !(ROLES as readonly string[]).includes(r));
  if (unknown.length)
    v.add(
      field,
      `unknown role(s) ${unknown.map((r) => JSON.stringify(r)).join(', ')}; known: ${ROLES.join(', ')}`,
    );
  else if (!roles.includes('user')) v.add(field, 'must include "user"');
  return [...new Set(roles)].sort();
}

/**
 * AIP-134 update-mask resolution: the patch the masked fields make, every bad path or value
 * collected (INVALID_ARGUMENT). An empty mask means every non-empty field given; `*` all of them.
 */
export function resolveUpdate(input: UpdateInput, mask: string[] | undefined): UserPatch {
  const v = new Violations();
  checkUuid(v, 'user.id', input.id);
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
  const patch: UserPatch = {};
  for (const path of new Set(paths)) {
    if (IMMUTABLE_PATHS.has(path)) v.add('update_mask', `${quote(path)} cannot be changed`);
    else if (!(MUTABLE_PATHS as readonly string[]).includes(path)) {
      v.add('update_mask', `unknown field ${quote(path)}; updatable: ${MUTABLE_PATHS.join(', ')}`);
    } else if (path === 'display_name')
      patch.displayName = checkDisplayName(v, 'user.display_name', input.displayName);
    else if (path === 'email') patch.email = checkEmail(v, 'user.email', input.email);
    else patch.roles = checkRoles(v, 'user.roles', input.roles);
  }
  if (v.empty && Object.keys(patch).length === 0) v.add('update_mask', 'names no field to change');
  v.throwIfAny();
  return patch;
}

export type UserService = ReturnType<typeof createUserService>;

export function createUserService({ transactions, users, sessions, pageTokens }: UserDeps) {
  /** Applies a patch; losing a role ends the user's sessions in the same transaction (their tokens
   * must not keep a privilege). Null when the user is gone. */
  const applyPatch = (current: UserRecord, patch: UserPatch) =>
    transactions.run(async (tx) => {
      const updated = await users.update(current.id, patch, tx);
      const lostRole = patch.roles !== undefined && current.roles.some((r) => !patch.roles?.includes(r));
      if (updated && lostRole) await sessions.endAllForUser(current.id, 'roles reduced', tx);
      return updated;
    });

  return {
    /** One statement reads the user and proves the caller's session live (see deferredLiveness). */
    async getUser(lookup: UserLookup | undefined, caller: Caller, signal?: AbortSignal): Promise<UserRecord> {
      if (!lookup)
        throw new InvalidArgumentError([{ field: 'lookup', description: 'set exactly one of id or email' }]);
      const v = new Violations();
      if (lookup.by === 'id') checkUuid(v, 'id', lookup.id);
      const email = lookup.by === 'email' ? checkEmail(v, 'email', lookup.email) : '';
      v.throwIfAny();
      const { callerLive, user } = await users.findForCaller(
        lookup.by === 'id' ? { id: lookup.id.toLowerCase() } : { email },
        caller,
        signal,
      );
      if (!callerLive) throw unauthenticated(BAD_ACCESS_TOKEN);
      if (!user)
        throw notFound(lookup.by === 'id' ? `user ${lookup.id} not found` : 'no user with this email');
      return user;
    },

    /** AIP-231: all or nothing, in request order, one query. */
    async batchGet(ids: string[]): Promise<UserRecord[]> {
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
      if (missing.length) throw notFound(`user(s) not found: ${missing.join(', ')}`);
      return wanted.map((id) => found.get(id) as UserRecord);
    },

    /** AIP-158 keyset pagination in registration order. */
    async list(input: { pageSize: number; pageToken: string; query: string }) {
      const v = new Violations();
      if (input.pageSize < 0) v.add('page_size', 'must not be negative');
      const query = input.query.trim().toLowerCase();
      if (query.length > EMAIL_MAX) v.add('query', `must be at most ${EMAIL_MAX} characters`);
      else if (hasUnsafeText(query)) v.add('query', 'must not contain control characters or invalid UTF-8');
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
      const pageSize = Math.min(input.pageSize || PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX);
      const rows = await users.list({ afterId, prefix: query || undefined, limit: pageSize + 1 });
      const page = rows.slice(0, pageSize);
      const last = page[page.length - 1];
      const nextPageToken =
        rows.length > pageSize && last ? pageTokens.encode({ afterId: last.id, query }) : '';
      return { users: page, nextPageToken };
    },

    /** AIP-134: only the masked fields change (see resolveUpdate). */
    async update(caller: Caller, input: UpdateInput, mask: string[] | undefined): Promise<UserRecord> {
      const patch = resolveUpdate(input, mask);
      const id = input.id.toLowerCase();
      const self = caller.userId === id;
      if (!self && !isAdmin(caller)) throw permissionDenied('you can only change your own account');
      if (patch.roles && !isAdmin(caller)) throw permissionDenied('only an admin can change roles');

      const current = await users.findById(id);
      const updated = current && (await applyPatch(current, patch));
      if (!updated) throw notFound(`user ${input.id} not found`);
      return updated;
    },

    /** Soft delete by the user themself or an admin: sessions end, the address becomes free. */
    async remove(caller: Caller, id: string): Promise<void> {
      const v = new Violations();
      checkUuid(v, 'id', id);
      v.throwIfAny();
      const target = id.toLowerCase();
      if (caller.userId !== target && !isAdmin(caller))
        throw permissionDenied('you can only delete your own account');
      const deleted = await transactions.run(async (tx) => {
        if (!(await users.softDelete(target, tx))) return false;
        await sessions.endAllForUser(target, 'user deleted', tx);
        return true;
      });
      if (!deleted) throw notFound(`user ${id} not found`);
    },

    /** Operator command (npm run cli): grant or revoke a role by email. */
    async setRole(email: string, role: string, grant: boolean): Promise<UserRecord> {
      const v = new Violations();
      const normalised = checkEmail(v, 'email', email);
      v.throwIfAny();
      const user = await users.findByEmail(normalised);
      if (!user) throw notFound(`no user with email ${normalised}`);
      const roles = grant ? [...new Set([...user.roles, role])].sort() : user.roles.filter((r) => r !== role);
      const checked = new Violations();
      checkRoles(checked, 'role', roles);
      checked.throwIfAny();
      const updated = await applyPatch(user, { roles });
      if (!updated) throw notFound(`no user with email ${normalised}`);
      return updated;
    },
  };
}
