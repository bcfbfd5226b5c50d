/**
 * Access tokens: HS256 JWTs with sub, email, roles, sid (login session), jti, iat, exp, iss and aud.
 * The key is a KeyObject (jsonwebtoken parses a string secret as a possible PEM on every call, ~50x
 * slower), and verification pins the algorithm, issuer and audience.
 * Refresh tokens: 256 random bits, base64url; only their SHA-256 is stored.
 */
import { createHash, createSecretKey, randomBytes, randomUUID } from 'node:crypto';
import jwt from 'jsonwebtoken';

export interface AccessClaims {
  userId: string;
  email: string;
  roles: string[];
  sessionId: string;
  /** Expiry, seconds since the epoch. */
  exp: number;
}

export interface TokenService {
  signAccess(claims: Omit<AccessClaims, 'exp'>): { token: string; expiresIn: number };
  /** The claims of a valid access token, or null for anything else (bad, expired, forged, wrong alg). */
  verifyAccess(token: string): AccessClaims | null;
  newRefreshToken(): { token: string; hash: string; expiresAt: Date; expiresIn: number };
  hashRefreshToken(token: string): string;
  readonly accessTtlS: number;
  readonly refreshTtlS: number;
}

export interface TokenOptions {
  secretKey: string;
  issuer: string;
  audience: string;
  accessTtlS: number;
  refreshTtlS: number;
}

const TOKEN_USE = 'access';
const VERIFIED_CACHE_MAX = 10_000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function createTokenService(options: TokenOptions): TokenService {
  const key = createSecretKey(Buffer.from(options.secretKey, 'utf8'));
  const { issuer, audience, accessTtlS, refreshTtlS } = options;

  /** Full verification: signature (HS256 only), issuer, audience, expiry, not-before, claim shapes. */
  const verify = (token: string): AccessClaims | null => {
    let payload: jwt.JwtPayload | string;
    try {
      payload = jwt.verify(token, key, { algorithms: ['HS256'], issuer, audience, complete: false });
    } catch {
      return null;
    }
    if (typeof payload !== 'object' || payload.token_use !== TOKEN_USE) return null;
    const { sub, email, roles, sid, exp } = payload as jwt.JwtPayload & {
      email?: unknown;
      roles?: unknown;
      sid?: unknown;
    };
    if (typeof sub !== 'string' || !UUID.test(sub)) return null;
    if (typeof sid !== 'string' || !UUID.test(sid)) return null;
    if (typeof email !== 'string' || typeof exp !== 'number') return null;
    if (!Array.isArray(roles) || !roles.every((r) => typeof r === 'string')) return null;
    return { userId: sub, email, roles, sessionId: sid, exp };
  };

  // Verified tokens, so a client reusing its token skips the HMAC and JSON work. Only tokens that
  // passed full verification enter; the expiry is checked again on every hit; the exact token
  // string is the key, so a forgery never matches. Oldest out first past VERIFIED_CACHE_MAX.
  const verified = new Map<string, AccessClaims>();

  return {
    accessTtlS,
    refreshTtlS,
    signAccess(claims) {
      const token = jwt.sign(
        { email: claims.email, roles: claims.roles, sid: claims.sessionId, token_use: TOKEN_USE },
        key,
        {
          algorithm: 'HS256',
          subject: claims.userId,
          issuer,
          audience,
          expiresIn: accessTtlS,
          jwtid: randomUUID(),
        },
      );
      return { token, expiresIn: accessTtlS };
    },

    verifyAccess(token) {
      const cached = verified.get(token);
      if (cached) {
        if (cached.exp * 1000 > Date.now()) return cached;
        verified.delete(token);
        return null;
      }
      const claims = verify(token);
      if (claims) {
        if (verified.size >= VERIFIED_CACHE_MAX) verified.delete(verified.keys().next().value as string);
        verified.set(token, claims);
      }
      return claims;
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
