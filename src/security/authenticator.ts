import type { Caller, ServiceCaller } from '../caller.js';
import { BAD_ACCESS_TOKEN, unauthenticated } from '../errors.js';
import type { ServiceAccount, ServiceAccountStore, SessionStore } from '../ports.js';
import type { TokenService } from './tokens.js';

/**
 * Authentication in two parts:
 * - `verify`: an access token itself (its key and algorithm, issuer, audience, expiry), no I/O; the
 *   caller it names: a user with the email and roles as of the token's issue, or a service account;
 * - `live`: one indexed query that the caller still exists: for a user, that the login session is
 *   live and the user not deleted, with the user's current email and roles; for a service account,
 *   that it was not deleted, with its current scopes. So a logged-out, rotated-away or deleted
 *   account's token stops working at once, and a role taken away stops counting at once.
 * And `fromCertificate`: the service account a verified client certificate names (mutual TLS).
 * All throw UNAUTHENTICATED with one message for every kind of bad token.
 */
export interface Authenticator {
  verify(accessToken: string): Promise<Caller>;
  live(caller: Caller, signal?: AbortSignal): Promise<Caller>;
  fromCertificate(names: readonly string[], signal?: AbortSignal): Promise<ServiceCaller>;
}

const asCaller = (a: ServiceAccount, via: ServiceCaller['via']): ServiceCaller => ({
  kind: 'service',
  serviceId: a.id,
  name: a.name,
  scopes: a.scopes,
  via,
});

export function createAuthenticator(
  tokens: TokenService,
  sessions: SessionStore,
  services: ServiceAccountStore,
): Authenticator {
  return {
    async verify(accessToken) {
      const verified = await tokens.verifyAccess(accessToken);
      if (!verified) throw unauthenticated(BAD_ACCESS_TOKEN);
      return verified.caller;
    },
    async live(caller, signal) {
      if (caller.kind === 'service') {
        const account = await services.findActive(caller.serviceId, signal);
        if (!account) throw unauthenticated(BAD_ACCESS_TOKEN);
        return asCaller(account, caller.via);
      }
      const live = await sessions.liveCaller(caller, signal);
      if (!live) throw unauthenticated(BAD_ACCESS_TOKEN);
      return live;
    },
    async fromCertificate(names, signal) {
      const account = names.length ? await services.findByCertificateNames(names, signal) : null;
      if (!account) {
        throw unauthenticated('this client certificate names no service account: send an access token');
      }
      return asCaller(account, 'certificate');
    },
  };
}
