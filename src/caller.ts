/**
 * Who is calling: the one shape every layer uses (token verification, authentication, the call
 * context, the use cases and the stores). A user is built from a verified access token and, for
 * most methods, refreshed from the database (current email and roles) before the handler runs; a
 * service account from its access token or its verified client certificate (mutual TLS).
 */
export interface UserCaller {
  readonly kind: 'user';
  readonly userId: string;
  /** The login session the access token belongs to. */
  readonly sessionId: string;
  readonly email: string;
  readonly roles: readonly string[];
}

export const SCOPES = ['users.read', 'users.read.private', 'tokens.introspect'] as const;
export type Scope = (typeof SCOPES)[number];

export interface ServiceCaller {
  readonly kind: 'service';
  readonly serviceId: string;
  readonly name: string;
  readonly scopes: readonly Scope[];
  /** How it proved who it is. */
  readonly via: 'token' | 'certificate';
  /** With a token: its `iat` (seconds), checked against the account's `revoke-tokens`. */
  readonly issuedAt?: number;
}

export type Caller = UserCaller | ServiceCaller;

export const isAdmin = (caller: Caller): boolean => caller.kind === 'user' && caller.roles.includes('admin');
export const hasScope = (caller: Caller, scope: Scope): boolean =>
  caller.kind === 'service' && caller.scopes.includes(scope);
export const isScope = (s: string): s is Scope => (SCOPES as readonly string[]).includes(s);
