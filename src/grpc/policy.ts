/**
 * The call policy of every RPC, declared once, in one table per generated service definition
 * (a method missing from a table, or a table entry for no method, is a compile error). The
 * authentication step reads it, and the handler's context type follows from it: a handler of a
 * bearer method gets `ctx.caller` by type (a user, or also a service account where `services`
 * allows), a public one has none.
 */
import type { Scope } from '../caller.js';
import type { AuthServiceService } from '../gen/connectsphere/auth/v1/auth.js';
import type { UserServiceService } from '../gen/connectsphere/user/v1/user.js';

export type CallPolicy =
  /** No credentials needed. */
  | { readonly auth: 'public' }
  /** Token introspection: public with INTROSPECTION_AUTH=none, else a service identity with tokens.introspect. */
  | { readonly auth: 'introspection' }
  /**
   * An access token (or, for a service account, a verified client certificate). `checked`: the
   * caller is proven live (a user's session, a service account's existence) and read fresh before
   * the handler runs. `in-handler`: for a user only the token is verified up front; the handler's
   * own query reads the session with its data (one round trip) and confirms it, and if it does not,
   * the liveness step checks before anything is answered. `services`: service accounts holding one
   * of these scopes may call too (the use case decides what each scope sees); without it the method
   * acts for a user only and a service account gets PERMISSION_DENIED.
   */
  | {
      readonly auth: 'bearer';
      readonly session: 'checked' | 'in-handler';
      readonly services?: readonly Scope[];
    };

export type PolicyTable<S> = { readonly [K in keyof S]: CallPolicy };

const PUBLIC = { auth: 'public' } as const;
const INTROSPECTION = { auth: 'introspection' } as const;
const USER = { auth: 'bearer', session: 'checked' } as const;
const READ_SCOPES = ['users.read', 'users.read.private'] as const;

export const AUTH_POLICY = {
  register: PUBLIC,
  login: PUBLIC,
  refreshToken: PUBLIC,
  logout: PUBLIC,
  validateToken: INTROSPECTION,
  changePassword: USER,
  listSessions: USER,
  revokeSession: USER,
  issueServiceToken: PUBLIC,
  getJwks: PUBLIC,
} as const satisfies PolicyTable<typeof AuthServiceService>;

export const USER_POLICY = {
  getUser: { auth: 'bearer', session: 'in-handler', services: READ_SCOPES },
  batchGetUsers: { auth: 'bearer', session: 'checked', services: READ_SCOPES },
  listUsers: USER,
  updateUser: USER,
  deleteUser: USER,
  listAuditEvents: USER, // admins only: the use case checks the stored roles
} as const satisfies PolicyTable<typeof UserServiceService>;
