import type { Metadata } from '@grpc/grpc-js';
import { BAD_ACCESS_TOKEN, unauthenticated } from '../errors.js';
import type { Authenticator, Principal } from '../grpc/adapter.js';
import type { SessionStore } from '../ports.js';
import type { TokenService } from './tokens.js';

const BEARER = /^bearer\s+(\S+)\s*$/i;

/**
 * Bearer authentication in two parts:
 * - `verify`: the access token itself (signature, algorithm, issuer, audience, expiry), no I/O;
 * - `authenticate`: that, plus one indexed query that its login session is still live and its user
 *   still exists, returning the user's current email and roles. So a logged-out, rotated-away or
 *   deleted account's token stops working at once, and a role taken away stops counting at once.
 */
export function createAuthenticator(tokens: TokenService, sessions: SessionStore): Authenticator {
  const verify = (metadata: Metadata): Principal => {
    const values = metadata.get('authorization');
    if (values.length === 0) {
      throw unauthenticated('missing credentials: send metadata `authorization: Bearer <access token>`');
    }
    const match = typeof values[0] === 'string' ? BEARER.exec(values[0]) : null;
    if (values.length > 1 || !match?.[1]) {
      throw unauthenticated('malformed authorization metadata: expected `Bearer <access token>`');
    }
    const claims = tokens.verifyAccess(match[1]);
    if (!claims) throw unauthenticated(BAD_ACCESS_TOKEN);
    return { userId: claims.userId, email: claims.email, roles: claims.roles, sessionId: claims.sessionId };
  };
  return {
    verify,
    async authenticate(metadata, signal) {
      const principal = verify(metadata);
      const live = await sessions.livePrincipal(principal.sessionId, principal.userId, signal);
      if (!live) throw unauthenticated(BAD_ACCESS_TOKEN);
      return { ...principal, email: live.email, roles: live.roles };
    },
  };
}
