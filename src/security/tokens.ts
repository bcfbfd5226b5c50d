/**
 * Access tokens: JWTs signed by the key ring (keys.ts) with `kid`, `iss`, `aud`, `exp`, `iat`,
 * `jti`, `sub` and `token_use`. A user's carries email, roles and `sid` (its login session); a
 * service account's carries `scope` (space-separated, as OAuth) and `svc` (its name), and has no
 * refresh token. Verification picks the key by `kid` and accepts only that key's algorithm: a token
 * naming another algorithm (HS256 signed with a public key as the secret, `none`, ...) is refused.
 * A token whose lifetime (`exp - iat`) exceeds its kind's configured one (plus CLOCK_SKEW_S), issued
 * in the future, or signed by a retired key (keys.ts) but issued after its retirement is refused, so
 * a leaked old key cannot mint tokens that outlive the rotation.
 * Refresh tokens: 256 random bits, base64url; only their SHA-256 is stored.
 *
 * Signing and verification use jose (jsonwebtoken has no EdDSA); verified tokens are cached by
 * their exact text, so a client reusing its token skips the signature work.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { type JWTPayload, jwtVerify, SignJWT } from 'jose';
import { type Caller, isScope, type Scope, type ServiceCaller, type UserCaller } from '../caller.js';
import type { AppConfig } from '../config.js';
import type { KeyRing, VerificationKey } from './keys.js';

/** A valid access token: who it was issued to (for a user, email and roles as of its issue) and its expiry. */
export interface VerifiedToken {
  caller: Caller;
  /** Expiry, seconds since the epoch. */
  exp: number;
}

export interface TokenService {
  signAccess(caller: UserCaller): Promise<{ token: string; expiresIn: number }>;
  signService(service: Omit<ServiceCaller, 'via'>): Promise<{ token: string; expiresIn: number }>;
  /** A valid access token's caller, or null for anything else (bad, expired, forged, wrong alg or kid). */
  verifyAccess(token: string): Promise<VerifiedToken | null>;
  newRefreshToken(): { token: string; hash: string; expiresAt: Date; expiresIn: number };
  hashRefreshToken(token: string): string;
}

export type TokenConfig = Pick<
  AppConfig,
  | 'JWT_ISSUER'
  | 'JWT_AUDIENCE'
  | 'ACCESS_TOKEN_EXPIRE_MINUTES'
  | 'REFRESH_TOKEN_EXPIRE_DAYS'
  | 'SERVICE_TOKEN_EXPIRE_MINUTES'
>;

const VERIFIED_CACHE_MAX = 10_000;
/** Clocks of the instances that sign and verify may differ this much (seconds). */
export const CLOCK_SKEW_S = 60;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The caller a verified payload describes, or null when its claims do not have our shape. */
function callerOf(p: JWTPayload): Caller | null {
  const { sub } = p;
  if (typeof sub !== 'string' || !UUID.test(sub)) return null;
  if (p.token_use === 'access') {
    const { email, roles, sid } = p as JWTPayload & { email?: unknown; roles?: unknown; sid?: unknown };
    if (typeof sid !== 'string' || !UUID.test(sid) || typeof email !== 'string') return null;
    if (!Array.isArray(roles) || !roles.every((r) => typeof r === 'string')) return null;
    return { kind: 'user', userId: sub, email, roles, sessionId: sid };
  }
  if (p.token_use === 'service') {
    const { scope, svc } = p as JWTPayload & { scope?: unknown; svc?: unknown };
    if (typeof scope !== 'string' || typeof svc !== 'string') return null;
    const scopes = scope.split(' ').filter(Boolean);
    if (!scopes.every(isScope)) return null;
    return {
      kind: 'service',
      serviceId: sub,
      name: svc,
      scopes: scopes as Scope[],
      via: 'token',
      ...(typeof p.iat === 'number' ? { issuedAt: p.iat } : {}),
    };
  }
  return null;
}

export function createTokenService(config: TokenConfig, keys: KeyRing): TokenService {
  const issuer = config.JWT_ISSUER;
  const audience = config.JWT_AUDIENCE;
  const accessTtlS = config.ACCESS_TOKEN_EXPIRE_MINUTES * 60;
  const serviceTtlS = config.SERVICE_TOKEN_EXPIRE_MINUTES * 60;
  const refreshTtlS = config.REFRESH_TOKEN_EXPIRE_DAYS * 86_400;
  const algorithms = [...new Set([...keys.verification.values()].map((k) => k.alg))];
  const { signing } = keys;

  const sign = (claims: JWTPayload, subject: string, ttlS: number) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: signing.alg, kid: signing.kid, typ: 'JWT' })
      .setSubject(subject)
      .setIssuer(issuer)
      .setAudience(audience)
      .setIssuedAt()
      .setExpirationTime(Math.floor(Date.now() / 1000) + ttlS)
      .setJti(randomUUID())
      .sign(signing.key);

  /** Full verification: the key its kid names, that key's algorithm only, iss, aud, exp, nbf, claim shapes. */
  const verify = async (token: string): Promise<VerifiedToken | null> => {
    try {
      let used: VerificationKey | undefined;
      const { payload } = await jwtVerify(
        token,
        (header) => {
          const key = header.kid === undefined ? undefined : keys.verification.get(header.kid);
          if (!key || key.alg !== header.alg) throw new Error('no key for this kid and algorithm');
          used = key;
          return key.key;
        },
        { issuer, audience, algorithms, requiredClaims: ['exp', 'sub', 'iat'] },
      );
      const caller = callerOf(payload);
      const { exp, iat } = payload;
      if (!caller || typeof exp !== 'number' || typeof iat !== 'number') return null;
      const lifetimeS = caller.kind === 'service' ? serviceTtlS : accessTtlS;
      if (exp - iat > lifetimeS + CLOCK_SKEW_S) return null;
      if (iat > Date.now() / 1000 + CLOCK_SKEW_S) return null;
      if (used?.retiredAt !== undefined && iat > used.retiredAt) return null;
      return { caller, exp };
    } catch {
      return null;
    }
  };

  // Only tokens that passed full verification enter; the expiry is checked again on every hit; the
  // exact token string is the key, so a forgery never matches. Oldest out first past the bound.
  const verified = new Map<string, VerifiedToken>();

  return {
    async signAccess(caller) {
      const token = await sign(
        { email: caller.email, roles: [...caller.roles], sid: caller.sessionId, token_use: 'access' },
        caller.userId,
        accessTtlS,
      );
      return { token, expiresIn: accessTtlS };
    },

    async signService(service) {
      const token = await sign(
        { scope: service.scopes.join(' '), svc: service.name, token_use: 'service' },
        service.serviceId,
        serviceTtlS,
      );
      return { token, expiresIn: serviceTtlS };
    },

    async verifyAccess(token) {
      const cached = verified.get(token);
      if (cached) {
        if (cached.exp * 1000 > Date.now()) return cached;
        verified.delete(token);
        return null;
      }
      const result = await verify(token);
      if (result) {
        if (verified.size >= VERIFIED_CACHE_MAX) verified.delete(verified.keys().next().value as string);
        verified.set(token, result);
      }
      return result;
    },

    newRefreshToken() {
      const token = randomBytes(32).toString('base64url');
      return {
        token,
        hash: createHash('sha256').update(token).digest('hex'),
        expiresAt: new Date(Date.now() + refreshTtlS * 1000),
        expiresIn: refreshTtlS,
      };
    },

    hashRefreshToken: (token) => createHash('sha256').update(token).digest('hex'),
  };
}
