/**
 * Who is calling: the one shape every layer uses (token verification, authentication, the call
 * context, the use cases and the stores). Built from a verified access token, then, for most
 * methods, refreshed from the database (current email and roles) before the handler runs.
 */
export interface Caller {
  readonly kind: 'user';
  readonly userId: string;
  /** The login session the access token belongs to. */
  readonly sessionId: string;
  readonly email: string;
  readonly roles: readonly string[];
}

export const isAdmin = (caller: Caller): boolean => caller.roles.includes('admin');
