/**
 * The call policy of every RPC, declared once, in one table per generated service definition
 * (a method missing from a table, or a table entry for no method, is a compile error). The
 * authentication step reads it, and the handler's context type follows from it: a handler of a
 * bearer method gets `ctx.caller` by type, a public one has none.
 */
import type { AuthServiceService } from '../gen/connectsphere/auth/v1/auth.js';
import type { UserServiceService } from '../gen/connectsphere/user/v1/user.js';

export type CallPolicy =
  /** No credentials needed. */
  | { readonly auth: 'public' }
  /**
   * A bearer access token. `checked`: its login session is proven live (and the caller's email and
   * roles read fresh) before the handler runs. `in-handler`: only the token is verified up front;
   * the handler's own query reads the session with its data (one round trip) and confirms it, and
   * if it does not, the liveness step checks before anything is answered.
   */
  | { readonly auth: 'bearer'; readonly session: 'checked' | 'in-handler' };

export type PolicyTable<S> = { readonly [K in keyof S]: CallPolicy };

const PUBLIC = { auth: 'public' } as const;
const BEARER = { auth: 'bearer', session: 'checked' } as const;
const BEARER_SESSION_IN_HANDLER = { auth: 'bearer', session: 'in-handler' } as const;

export const AUTH_POLICY = {
  register: PUBLIC,
  login: PUBLIC,
  refreshToken: PUBLIC,
  logout: PUBLIC,
  validateToken: PUBLIC,
  changePassword: BEARER,
  listSessions: BEARER,
  revokeSession: BEARER,
} as const satisfies PolicyTable<typeof AuthServiceService>;

export const USER_POLICY = {
  getUser: BEARER_SESSION_IN_HANDLER,
  batchGetUsers: BEARER,
  listUsers: BEARER,
  updateUser: BEARER,
  deleteUser: BEARER,
} as const satisfies PolicyTable<typeof UserServiceService>;
