import type { Caller, ServiceCaller } from '../caller.js';
import { BAD_ACCESS_TOKEN, unauthenticated } from '../errors.js';
import {
  type ServiceAccount,
  type ServiceAccountStore,
  type SessionStore,
  serviceTokenRevoked,
} from '../ports.js';
import type { TokenService } from './tokens.js';

/**
 * Authentication in two parts:
 * - `verify`: an access token itself (its key and algorithm, issuer, audience, expiry), no I/O; the
 *   caller it names: a user with the email and roles as of the token's issue, or a service account;
 * - `live`: one indexed query that the caller still exists: for a user, that the login session is
 *   live and the user not deleted, with the user's current email and roles; for a service account,
 *   that it was not deleted, with its current scopes. So a logged-out, rotated-away or deleted
 *   account's token stops working at once, and a role taken away stops counting at once.
 * And `fromCertificate`: the service account a verified client certificate names (mutual TLS): its
 * whole subject CN or one of its whole DNS SANs equal to `<name>.service` or the account's
 * `--cert-name`; a certificate naming two accounts, or without the clientAuth extended key usage,
 * is refused.
 * All throw UNAUTHENTICATED with one message for every kind of bad token.
 */
export interface Authenticator {
  verify(accessToken: string): Promise<Caller>;
  live(caller: Caller, signal?: AbortSignal): Promise<Caller>;
  fromCertificate(certificate: ClientCertificate, signal?: AbortSignal): Promise<ServiceCaller>;
}

/** What identifies a verified client certificate: its subject CN(s) and DNS SANs, whole, and its purpose. */
export interface ClientCertificate {
  names: readonly string[];
  /** Its extended key usage includes clientAuth (1.3.6.1.5.5.7.3.2). */
  clientAuth: boolean;
}

const CLIENT_AUTH_OID = '1.3.6.1.5.5.7.3.2';

/**
 * node:tls's `subjectaltname`: entries `TYPE:value` joined by ', '; a value with a comma, quote or
 * other special character is written as a JSON string (`DNS:"a, DNS:b"`), read here as one value, so
 * a crafted name never splits into others. A quoted value is never an account's name (callers drop it).
 */
function subjectAltNames(text: string): { type: string; value: string; quoted: boolean }[] {
  const entries: { type: string; value: string; quoted: boolean }[] = [];
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(':', i);
    if (colon < 0) break;
    const type = text.slice(i, colon);
    let value: string;
    let quoted = false;
    let end: number;
    if (text[colon + 1] === '"') {
      quoted = true;
      end = colon + 2;
      while (end < text.length && text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      value = text.slice(colon + 2, end);
      end += 1; // the closing quote
    } else {
      end = text.indexOf(', ', colon + 1);
      if (end < 0) end = text.length;
      value = text.slice(colon + 1, end);
    }
    entries.push({ type, value, quoted });
    const next = text.indexOf(', ', end);
    if (next < 0) break;
    i = next + 2;
  }
  return entries;
}

/** The shape of node:tls's `getPeerCertificate()` this needs. */
export interface PeerCertificateFields {
  subject?: { CN?: string | string[] };
  subjectaltname?: string;
  ext_key_usage?: string[];
}

/**
 * The identity of a peer certificate (from node:tls, as grpc-js reports it for a verified one): the
 * subject CN(s) and the DNS SANs as whole names (never split or matched by suffix), and whether it
 * may authenticate a client. A certificate without an extended key usage extension is not clientAuth.
 */
export function clientCertificateOf(cert: PeerCertificateFields): ClientCertificate {
  const cn = cert.subject?.CN;
  const dns = subjectAltNames(cert.subjectaltname ?? '')
    .filter((e) => e.type === 'DNS' && !e.quoted)
    .map((e) => e.value);
  const names = [...new Set([...(Array.isArray(cn) ? cn : cn ? [cn] : []), ...dns])].filter(Boolean);
  return { names, clientAuth: (cert.ext_key_usage ?? []).includes(CLIENT_AUTH_OID) };
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
        if (!account || serviceTokenRevoked(account, caller)) throw unauthenticated(BAD_ACCESS_TOKEN);
        return asCaller(account, caller.via);
      }
      const live = await sessions.liveCaller(caller, signal);
      if (!live) throw unauthenticated(BAD_ACCESS_TOKEN);
      return live;
    },
    async fromCertificate(certificate, signal) {
      if (!certificate.clientAuth) {
        throw unauthenticated(
          'this client certificate is not for client authentication (no clientAuth extended key usage): send an access token',
        );
      }
      const accounts = certificate.names.length
        ? await services.findByCertificateNames(certificate.names, signal)
        : [];
      if (accounts.length > 1) {
        throw unauthenticated(
          'this client certificate names more than one service account: issue one certificate per account',
        );
      }
      const [account] = accounts;
      if (!account) {
        throw unauthenticated('this client certificate names no service account: send an access token');
      }
      return asCaller(account, 'certificate');
    },
  };
}
