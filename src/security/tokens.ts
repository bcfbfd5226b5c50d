/**
 * Access tokens: HS256 JWTs with sub, email, roles, sid (login session), jti, iat, exp, iss and aud.
 * The key is a KeyObject (jsonwebtoken parses a string secret as a possible PEM on every call, ~50x
 * slower), and verification pins the algorithm, issuer and audience.
 * Refresh tokens: 256 random bits, base64url; only their SHA-256 is stored.
 */
import { createHash, createSecretKey, randomBytes, randomUUID } from 'node:crypto';
import jwt from 'jsonwebtoken';
import type { Caller } from '../caller.js';
import type { AppConfig } from '../config.js';

/** A valid access token: who it was issued to (email and roles as of its issue) and its expiry. */
export interface VerifiedToken {
  caller: Caller;
  /** Expiry, seconds since the epoch. */
  exp: number;
}

export interface TokenService {
  signAccess(caller: Caller): { token: string; expiresIn: number };
  /** A valid access token's caller, or null for anything else (bad, expired, forged, wrong alg). */
  verifyAccess(token: string): VerifiedToken | null;
  newRefreshToken(): { token: string; hash: string; expiresAt: Date; expiresIn: number };
  hashRefreshToken(token: string): string;
}

export type TokenConfig = Pick<
  AppConfig,
  'SECRET_KEY' | 'JWT_ISSUER' | 'JWT_AUDIENCE' | 'ACCESS_TOKEN_EXPIRE_MINUTES' | 'REFRESH_TOKEN_EXPIRE_DAYS'
>;

const TOKEN_USE = 'access';
const VERIFIED_CACHE_MAX = 10_000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function createTokenService(config: TokenConfig): TokenService {
  const key = createSecretKey(Buffer.from(config.SECRET_KEY, 'utf8'));
  const issuer = config.JWT_ISSUER;
  const audience = config.JWT_AUDIENCE;
  const accessTtlS = config.ACCESS_TOKEN_EXPIRE_MINUTES * 60;
  const refreshTtlS = config.REFRESH_TOKEN_EXPIRE_DAYS * 86_400;

  /** Full verification: signature (HS256 only), issuer, audience, expiry, not-before, claim shapes. */
  const verify = (token: string): VerifiedToken | null => {
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
    return { caller: { kind: 'user', userId: sub, email, roles, sessionId: sid }, exp };
  };

  // Verified tokens, so a client reusing its token skips the HMAC and JSON work. Only tokens that
  // passed full verification enter; the expiry is checked again on every hit; the exact token
  // string is the key, so a forgery never matches. Oldest out first past VERIFIED_CACHE_MAX.
  const verified = new Map<string, VerifiedToken>();

  return {
    signAccess(caller) {
      const token = jwt.sign(
        { email: caller.email, roles: caller.roles, sid: caller.sessionId, token_use: TOKEN_USE },
        key,
        {
          algorithm: 'HS256',
          subject: caller.userId,
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
      const result = verify(token);
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
