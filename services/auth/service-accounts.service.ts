/**
 * Service accounts: other services' identities. The operator command creates, lists, rotates and
 * deletes them; a service exchanges its client credentials for a short-lived access token
 * (AuthService/IssueServiceToken), throttled per (client id, source) and per source like a Login,
 * never per client id alone (wrong secrets from elsewhere must not lock the real service out).
 *
 * A client secret is 256 random bits, shown once; only its SHA-256 is stored (a fast hash is enough
 * for a secret of that strength) and compared in constant time. A rotation keeps the previous
 * secret working for SERVICE_SECRET_OVERLAP_S so the service can switch without downtime;
 * `revoke-secret` replaces it with none (a leaked secret), `revoke-tokens` ends every token issued so far.
 */
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { isScope, SCOPES, type Scope } from '../../src/caller.js';
import { echo, notFound, throttled, throwIfAborted, unauthenticated, Violations } from '../../src/errors.js';
import type {
  AttemptThrottle,
  AuditEvent,
  AuditLog,
  SecurityCounters,
  ServiceAccount,
  ServiceAccountStore,
  Transactions,
  Tx,
} from '../../src/ports.js';
import type { TokenService } from '../../src/security/tokens.js';
import { loginKeys } from '../../src/throttle.js';
import { hasUnsafeText } from '../../src/validation.js';
import type { Origin } from './auth.service.js';

export const BAD_CLIENT_CREDENTIALS = 'invalid client credentials';
const NAME_RE = /^[a-z][a-z0-9-]{0,61}[a-z0-9]$/;
const CLIENT_ID_RE = /^svc_[0-9a-f]{32}$/;
const CERT_NAME_RE = /^[A-Za-z0-9*.-]{1,253}$/;

const hashSecret = (secret: string) => createHash('sha256').update(secret, 'utf8').digest();
/** Compares against every hash in constant time each (and against a dummy when there is none). */
function matchesAny(secret: string, hexHashes: readonly string[]): boolean {
  const given = hashSecret(secret);
  let ok = false;
  for (const hex of hexHashes.length ? hexHashes : ['0'.repeat(64)]) {
    ok = timingSafeEqual(given, Buffer.from(hex, 'hex')) || ok;
  }
  return ok && hexHashes.length > 0;
}

export interface NewCredentials {
  name: string;
  client_id: string;
  client_secret: string;
  scopes: Scope[];
}

export type ServiceAccountAdmin = ReturnType<typeof createServiceAccountAdmin>;

/**
 * The operator's commands (npm run cli -- service-account ...), each audited in its transaction
 * with the operator as actor (`operator`: who, e.g. `cli:alice`). `secretOverlapS`: SERVICE_SECRET_OVERLAP_S.
 */
export function createServiceAccountAdmin({
  accounts,
  secretOverlapS,
  transactions,
  audit,
  operator,
}: {
  accounts: ServiceAccountStore;
  secretOverlapS: number;
  transactions: Transactions;
  audit: AuditLog;
  operator: string;
}) {
  const audited = <T extends ServiceAccount | null>(
    type:
      | 'service_account.created'
      | 'service_account.rotated'
      | 'service_account.deleted'
      | 'service_account.secret_revoked'
      | 'service_account.tokens_revoked',
    change: (tx: Tx) => Promise<T>,
  ) =>
    transactions.run(async (tx) => {
      const account = await change(tx);
      if (account) {
        const e: AuditEvent = {
          type,
          actor: { type: 'operator', id: operator },
          outcome: 'success',
          details: { name: account.name, client_id: account.clientId, scopes: account.scopes.join(',') },
        };
        await audit.record(e, tx);
      }
      return account;
    });
  const checkName = (v: Violations, name: string) => {
    if (!NAME_RE.test(name)) {
      v.add(
        'name',
        'must be 2 to 63 lower-case letters, digits or dashes, starting with a letter (e.g. billing)',
      );
    }
  };
  const newSecret = () => randomBytes(32).toString('base64url');

  return {
    /** A new account; the secret is returned once, never stored in clear. */
    async create(input: { name: string; scopes: string[]; certName?: string }): Promise<NewCredentials> {
      const v = new Violations();
      checkName(v, input.name);
      const scopes = [...new Set(input.scopes)];
      if (scopes.length === 0) v.add('scopes', `at least one of ${SCOPES.join(', ')}`);
      const unknown = scopes.filter((s) => !isScope(s));
      if (unknown.length)
        v.add(
          'scopes',
          `unknown scope(s) ${echo(unknown.slice(0, 5).join(', '))}; known: ${SCOPES.join(', ')}`,
        );
      if (input.certName !== undefined && !CERT_NAME_RE.test(input.certName)) {
        v.add('cert_name', 'must be a certificate name (a DNS name or common name without spaces)');
      }
      v.throwIfAny();
      const secret = newSecret();
      const account = await audited('service_account.created', (tx) =>
        accounts.insert(
          {
            id: randomUUID(),
            name: input.name,
            clientId: `svc_${randomBytes(16).toString('hex')}`,
            secretHash: hashSecret(secret).toString('hex'),
            scopes: scopes as Scope[],
            certName: input.certName ?? null,
          },
          tx,
        ),
      );
      return {
        name: account.name,
        client_id: account.clientId,
        client_secret: secret,
        scopes: account.scopes,
      };
    },

    list: (): Promise<ServiceAccount[]> => accounts.list(),

    /** A new secret; the previous one keeps working for SERVICE_SECRET_OVERLAP_S. */
    async rotate(name: string): Promise<NewCredentials & { previous_secret_valid_for_s: number }> {
      const secret = newSecret();
      const account = await audited('service_account.rotated', (tx) =>
        accounts.rotate(name, hashSecret(secret).toString('hex'), secretOverlapS, tx),
      );
      if (!account) throw notFound(`no service account named ${echo(name)}`);
      return {
        name: account.name,
        client_id: account.clientId,
        client_secret: secret,
        scopes: account.scopes,
        previous_secret_valid_for_s: secretOverlapS,
      };
    },

    /** A new secret; the previous one (and one still in a rotation's overlap) stops at once: for a secret that leaked. */
    async revokeSecret(name: string): Promise<NewCredentials> {
      const secret = newSecret();
      const account = await audited('service_account.secret_revoked', (tx) =>
        accounts.revokeSecret(name, hashSecret(secret).toString('hex'), tx),
      );
      if (!account) throw notFound(`no service account named ${name.slice(0, 100)}`);
      return {
        name: account.name,
        client_id: account.clientId,
        client_secret: secret,
        scopes: account.scopes,
      };
    },

    /**
     * Ends every service token issued to the account so far: those issued (`iat`, whole seconds) at
     * or before the second of the revocation are refused by every instance (each checks the account
     * on every call; the cache notice drops it everywhere). Returns once that second is over, so a
     * token issued afterwards is newer and works.
     */
    async revokeTokens(name: string): Promise<{ name: string; tokens_valid_after: string }> {
      const account = await audited('service_account.tokens_revoked', (tx) =>
        accounts.revokeTokens(name, tx),
      );
      if (!account) throw notFound(`no service account named ${name.slice(0, 100)}`);
      const after = account.tokensValidAfter ?? Math.floor(Date.now() / 1000);
      const wait = (after + 1) * 1000 - Date.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, Math.min(wait, 2000)));
      return { name: account.name, tokens_valid_after: new Date(after * 1000).toISOString() };
    },

    /** Deletes the account: its tokens stop working at once (every call checks the account). */
    async remove(name: string): Promise<void> {
      const removed = await audited('service_account.deleted', (tx) => accounts.remove(name, tx));
      if (!removed) throw notFound(`no service account named ${echo(name)}`);
    },
  };
}

export type ServiceTokenIssuer = ReturnType<typeof createServiceTokenIssuer>;

/** AuthService/IssueServiceToken. `limits`: the login limits, applied to (client id, source) pairs and sources. */
export function createServiceTokenIssuer(deps: {
  accounts: ServiceAccountStore;
  tokens: TokenService;
  throttle: AttemptThrottle;
  limits: { pair: number; source: number; account: number };
  counters: SecurityCounters;
  audit: AuditLog;
}) {
  const { accounts, tokens, throttle, limits, counters, audit } = deps;
  return {
    /** Client credentials → a short-lived access token; throttled before the secret is compared. */
    async issueToken(input: { clientId: string; clientSecret: string }, origin: Origin) {
      const v = new Violations();
      if (input.clientId === '') v.add('client_id', 'is required');
      else if (input.clientId.length > 64 || hasUnsafeText(input.clientId))
        v.add('client_id', 'is not a client id');
      if (input.clientSecret === '') v.add('client_secret', 'is required');
      else if (input.clientSecret.length > 256) v.add('client_secret', 'must be at most 256 characters');
      v.throwIfAny();
      // per (client id, source) and per source only: failures never lock the client id as a whole,
      // so wrong secrets from elsewhere cannot lock the real service out
      const keys = loginKeys(`svc:${input.clientId}`, origin.source, limits);
      const reservation = await throttle.reserve([keys.pair, keys.source], origin.signal);
      if (!reservation.granted) throw throttled(reservation.waitS);
      const { ticket } = reservation;
      let found: Awaited<ReturnType<ServiceAccountStore['findByClientId']>>;
      try {
        found = CLIENT_ID_RE.test(input.clientId)
          ? await accounts.findByClientId(input.clientId, origin.signal)
          : null;
      } catch (err) {
        await throttle.settle(ticket, { result: 'void' }).catch(() => {}); // never evaluated
        throw err;
      }
      if (!found || !matchesAny(input.clientSecret, found.secretHashes)) {
        await throttle.settle(ticket, { result: 'failure' });
        throw unauthenticated(BAD_CLIENT_CREDENTIALS);
      }
      await throttle.settle(ticket, { result: 'success', clear: [keys.pair] });
      throwIfAborted(origin.signal);
      const { account } = found;
      const issued = await tokens.signService({
        kind: 'service',
        serviceId: account.id,
        name: account.name,
        scopes: account.scopes,
      });
      counters.serviceTokenIssued();
      await audit.record({
        type: 'service_token.issued',
        actor: { type: 'service_account', id: account.id },
        outcome: 'success',
        clientAddress: origin.clientAddress,
        requestId: origin.requestId,
        details: { name: account.name, scopes: account.scopes.join(',') },
      });
      return {
        accessToken: issued.token,
        tokenType: 'Bearer',
        expiresIn: issued.expiresIn,
        scopes: account.scopes,
      };
    },
  };
}
