import type { Caller } from '../caller.js';
import { BAD_ACCESS_TOKEN, unauthenticated } from '../errors.js';
import type { SessionStore } from '../ports.js';
import type { TokenService } from './tokens.js';

/**
 * Access-token authentication in two parts:
 * - `verify`: the token itself (signature, algorithm, issuer, audience, expiry), no I/O; the caller
 *   it names, with the email and roles as of the token's issue;
 * - `live`: one indexed query that the caller's login session is still live and its user still
 *   exists, returning the user's current email and roles. So a logged-out, rotated-away or deleted
 *   account's token stops working at once, and a role taken away stops counting at once.
 * Both throw UNAUTHENTICATED with one message for every kind of bad token.
 */
export interface Authenticator {
  verify(accessToken: string): Caller;
  live(caller: Caller, signal?: AbortSignal): Promise<Caller>;
}

export function createAuthenticator(tokens: TokenService, sessions: SessionStore): Authenticator {
  return {
    verify(accessToken) {
      const verified = tokens.verifyAccess(accessToken);
      if (!verified) throw unauthenticated(BAD_ACCESS_TOKEN);
      return verified.caller;
    },
    async live(caller, signal) {
      const live = await sessions.liveCaller(caller, signal);
      if (!live) throw unauthenticated(BAD_ACCESS_TOKEN);
      return live;
    },
  };
}
