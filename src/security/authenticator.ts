import type { Metadata } from '@grpc/grpc-js';
import { unauthenticated } from '../errors.js';
import type { Authenticator } from '../grpc/adapter.js';
import type { SessionStore } from '../ports.js';
import type { TokenService } from './tokens.js';

const BEARER = /^bearer\s+(\S+)\s*$/i;

/**
 * Bearer authentication: a valid access token (signature, algorithm, issuer, audience, expiry)
 * whose login session is still live (one primary-key lookup), so a logged-out token stops working at once.
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
    if (!claims || !(await sessions.isActive(claims.sessionId, claims.userId))) {
      throw unauthenticated('invalid or expired access token');
    }
    return { userId: claims.userId, email: claims.email, roles: claims.roles, sessionId: claims.sessionId };
  };
}
