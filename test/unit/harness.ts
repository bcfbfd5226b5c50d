/** The use cases wired to in-memory stores, a fake-fast bcrypt and the real token service. */
import { createAuthService } from '../../services/auth/auth.service.js';
import { createUserService } from '../../services/user/user.service.js';
import type { UserCaller } from '../../src/caller.js';
import type { SecurityCounters } from '../../src/ports.js';
import { createEmailFingerprint } from '../../src/security/fingerprint.js';
import { loadKeyRing } from '../../src/security/keys.js';
import { createPageTokenCodec } from '../../src/security/page-tokens.js';
import type { PasswordStrength } from '../../src/security/password-strength.js';
import { builtFromAccount, personalWords } from '../../src/security/password-strength.js';
import { type Bcrypt, createPasswordHasher } from '../../src/security/passwords.js';
import { createCurrentPasswordCheck } from '../../src/security/reauth.js';
import { createTokenService } from '../../src/security/tokens.js';
import { createMemoryStores } from './fakes.js';

/** The strength rules without zxcvbn's dictionaries (those run in test/password-strength.test.ts):
 * the account's own words, and a short list of the commonest passwords. */
export const plainStrength: PasswordStrength = {
  async problem(password, account) {
    if (builtFromAccount(password, personalWords(account)))
      return 'must not be built from your email address or display name';
    if (['password', '12345678', 'qwertyuiop', 'iloveyou'].includes(password.toLowerCase()))
      return 'is too easy to guess';
    return null;
  },
};

/** bcrypt's shape without its cost: `$2b$<rounds>$<password>`. */
export const fastBcrypt: Bcrypt = {
  hash: (async (password: string, rounds: number) =>
    `$2b$${String(rounds).padStart(2, '0')}$${password}`) as Bcrypt['hash'],
  compare: (async (password: string, hash: string) =>
    hash.split('$').slice(3).join('$') === password) as Bcrypt['compare'],
  getRounds: (hash: string) => Number(hash.split('$')[2]),
};

export const LOGIN_LIMITS = { pair: 3, source: 6, account: 10 };
export const ORIGIN = { clientAddress: '198.51.100.7', source: '198.51.100.7', userAgent: 'unit-test/1.0' };

export async function useCases(
  options: { hashQueueMax?: number; graceS?: number; bcrypt?: Bcrypt; sessionMaxLifetimeS?: number } = {},
) {
  let now = Date.parse('2026-12-01T12:00:00Z');
  const stores = createMemoryStores(() => now);
  const hasher = createPasswordHasher(
    {
      BCRYPT_ROUNDS: 10,
      HASH_CONCURRENCY: 1,
      HASH_QUEUE_MAX: options.hashQueueMax ?? 8,
      HASH_QUEUE_PER_SOURCE: 4,
    },
    { bcrypt: options.bcrypt ?? fastBcrypt },
  );
  const checkCurrentPassword = createCurrentPasswordCheck({
    throttle: stores.throttle,
    hasher,
    maxFailures: LOGIN_LIMITS.pair,
  });
  const tokens = createTokenService(
    {
      JWT_ISSUER: 'test',
      JWT_AUDIENCE: 'test',
      ACCESS_TOKEN_EXPIRE_MINUTES: 30,
      REFRESH_TOKEN_EXPIRE_DAYS: 14,
      SERVICE_TOKEN_EXPIRE_MINUTES: 15,
    },
    await loadKeyRing({
      JWT_ALGORITHM: 'HS256',
      JWT_PRIVATE_KEY_FILE: '',
      JWT_PREVIOUS_PUBLIC_KEY_FILES: '',
      SECRET_KEY: 'unit-test-secret-key-unit-test-secret-key',
    }),
  );
  /** Every security outcome counted, as `login:success`, `refresh:replay`, ... */
  const counted: string[] = [];
  const counters: SecurityCounters = {
    login: (outcome) => void counted.push(`login:${outcome}`),
    refresh: (outcome) => void counted.push(`refresh:${outcome}`),
    serviceTokenIssued: () => void counted.push('service-token'),
  };
  const auth = createAuthService({
    ...stores,
    counters,
    fingerprint: createEmailFingerprint('unit-test-secret-key-unit-test-secret-key'),
    hasher,
    strength: plainStrength,
    tokens,
    checkCurrentPassword,
    policy: {
      refreshReuseGraceS: options.graceS ?? 0,
      sessionMaxLifetimeS: options.sessionMaxLifetimeS ?? 30 * 86_400,
      loginLimits: LOGIN_LIMITS,
      registerLimit: 4,
    },
  });
  const users = createUserService({
    ...stores,
    pageTokens: createPageTokenCodec('unit-test-page-key'),
    auditPageTokens: createPageTokenCodec('unit-test-page-key', 'list-audit-events'),
    checkCurrentPassword,
  });
  return {
    auth,
    users,
    stores,
    counters,
    counted,
    hasher,
    tokens,
    advance: (ms: number) => {
      now += ms;
    },
    /** The user an access token names. */
    callerOf: async (accessToken: string): Promise<UserCaller> => {
      const verified = await tokens.verifyAccess(accessToken);
      if (verified?.caller.kind !== 'user') throw new Error('not a valid user access token');
      return verified.caller;
    },
  };
}
