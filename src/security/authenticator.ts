import type { Metadata } from '@grpc/grpc-js';
import { unauthenticated } from '../errors.js';
import type { Authenticator } from '../grpc/adapter.js';
import type { SessionStore } from '../ports.js';
import type { TokenService } from './tokens.js';

const BEARER = /^bearer\s+(\S+)\s*$/i;

/**
 * Bearer authentication: a valid access token (signature, algorithm, issuer, audience, expiry)
 * whose login session is still live and whose user still exists, read in one indexed query that
 * also returns the user's current email and roles. So a logged-out, rotated-away or deleted
 * account's token stops working at once, and a role taken away stops counting at once.
 */
export function createAuthenticator(tokens: TokenService, sessions: SessionStore): Authenticator {
  return async (metadata: Metadata) => {
    const values = metadata.get('authorization');
    if (values.length === 0) {
      throw unauthenticated('missing credentials: send metadata `authorization: Bearer <access token>`');
    }
    const match = typeof values[0] === 'string' ? BEARER.exec(values[0]) : null;
    if (values.length > 1 || !match?.[1]) {
      throw unauthenticated('malformed authorization metadata: expected `Bearer <access token>`');
    }
    const claims = tokens.verifyAccess(match[1]);
    const live = claims ? await sessions.livePrincipal(claims.sessionId, claims.userId) : null;
    if (!claims || !live) throw unauthenticated('invalid or expired access token');
    return { userId: claims.userId, email: live.email, roles: live.roles, sessionId: claims.sessionId };
  };
}
