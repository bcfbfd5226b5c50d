/** The use cases wired to in-memory stores, a fake-fast bcrypt and the real token service. */
import { createAuthService } from '../../services/auth/auth.service.js';
import { createUserService } from '../../services/user/user.service.js';
import { createPageTokenCodec } from '../../src/security/page-tokens.js';
import { type Bcrypt, createPasswordHasher } from '../../src/security/passwords.js';
import { createTokenService } from '../../src/security/tokens.js';
import { createMemoryStores } from './fakes.js';

/** bcrypt's shape without its cost: `$2b$<rounds>$<password>`. */
export const fastBcrypt: Bcrypt = {
  hash: (async (password: string, rounds: number) =>
    `$2b$${String(rounds).padStart(2, '0')}$${password}`) as Bcrypt['hash'],
  compare: (async (password: string, hash: string) =>
    hash.split('$').slice(3).join('$') === password) as Bcrypt['compare'],
  getRounds: (hash: string) => Number(hash.split('$')[2]),
};

export const LOGIN_POLICY = { maxFailures: 3, lockoutBaseS: 30, lockoutMaxS: 3600, failureWindowS: 900 };

export function useCases(options: { hashQueueMax?: number; graceS?: number; bcrypt?: Bcrypt } = {}) {
  let now = Date.parse('2026-12-01T12:00:00Z');
  const stores = createMemoryStores(() => now);
  const hasher = createPasswordHasher(
    { BCRYPT_ROUNDS: 10, HASH_CONCURRENCY: 1, HASH_QUEUE_MAX: options.hashQueueMax ?? 8 },
    options.bcrypt ?? fastBcrypt,
  );
  const tokens = createTokenService({
    SECRET_KEY: 'unit-test-secret-key-unit-test-secret-key',
    JWT_ISSUER: 'test',
    JWT_AUDIENCE: 'test',
    ACCESS_TOKEN_EXPIRE_MINUTES: 30,
    REFRESH_TOKEN_EXPIRE_DAYS: 14,
  });
  const auth = createAuthService({
    ...stores,
    hasher,
    tokens,
    refreshReuseGraceS: options.graceS ?? 0,
    loginPolicy: LOGIN_POLICY,
  });
  const users = createUserService({ ...stores, pageTokens: createPageTokenCodec('unit-test-page-key') });
  return {
    auth,
    users,
    stores,
    hasher,
    tokens,
    advance: (ms: number) => {
      now += ms;
    },
    /** The caller an access token names. */
    callerOf: (accessToken: string) => {
      const verified = tokens.verifyAccess(accessToken);
      if (!verified) throw new Error('not a valid access token');
      return verified.caller;
    },
  };
}
