/**
 * The keys that sign and verify access tokens. JWT_ALGORITHM=HS256 signs with a key derived from
 * SECRET_KEY; ES256 (P-256) or EdDSA (Ed25519) sign with JWT_PRIVATE_KEY_FILE, whose public half,
 * with the JWT_PREVIOUS_PUBLIC_KEY_FILES still accepted during a rotation, makes the JWK Set other
 * services verify tokens with. Each previous key is given with the time it was retired
 * (`old.pub@2026-12-07T10:00:00Z`, when the new key began signing): its tokens issued later are refused. Every key has a `kid`: the RFC 7638 thumbprint of its public JWK (for
 * the HS key, of a value derived from it, which reveals nothing of it). Each key is tied to one
 * algorithm, so a token's header can never choose how it is checked.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  createSecretKey,
  hkdfSync,
  type KeyObject,
} from 'node:crypto';
import fs from 'node:fs';
import { calculateJwkThumbprint, exportJWK, type JWK } from 'jose';
import type { AppConfig } from '../config.js';

export type JwtAlgorithm = 'HS256' | 'ES256' | 'EdDSA';

export interface VerificationKey {
  kid: string;
  alg: JwtAlgorithm;
  key: KeyObject;
  /** A previous key's retirement, seconds since the epoch: a token it signed must be issued (`iat`) no later. */
  retiredAt?: number;
}

export interface KeyRing {
  /** Signs new tokens. */
  signing: { kid: string; alg: JwtAlgorithm; key: KeyObject };
  /** Every key a token may name (the signing one first). */
  verification: ReadonlyMap<string, VerificationKey>;
  /** The public keys as a JWK Set (RFC 7517): empty with HS256, which has none. */
  jwks: { keys: JWK[] };
}

export type KeyConfig = Pick<
  AppConfig,
  'JWT_ALGORITHM' | 'JWT_PRIVATE_KEY_FILE' | 'JWT_PREVIOUS_PUBLIC_KEY_FILES' | 'SECRET_KEY'
>;

export class KeyError extends Error {
  override name = 'KeyError';
}

/** The algorithm a public key can sign with: P-256 → ES256, Ed25519 → EdDSA. */
function algorithmOf(key: KeyObject, what: string): JwtAlgorithm {
  if (key.asymmetricKeyType === 'ed25519') return 'EdDSA';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  throw new KeyError(
    `${what}: must be a P-256 (ES256) or Ed25519 (EdDSA) key, not ${key.asymmetricKeyType ?? 'unknown'}`,
  );
}

async function publicJwk(key: KeyObject, alg: JwtAlgorithm): Promise<{ kid: string; jwk: JWK }> {
  const jwk = await exportJWK(key);
  const kid = await calculateJwkThumbprint(jwk, 'sha256');
  return { kid, jwk: { ...jwk, kid, alg, use: 'sig' } };
}

const readPem = (file: string, variable: string) => {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new KeyError(
      `${variable}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
};

/**
 * One JWT_PREVIOUS_PUBLIC_KEY_FILES entry: `<file>@<retirement time>`, the time in ISO 8601 with a
 * zone (`2026-12-07T10:00:00Z`); the part after the last `@` is the time.
 */
export function parsePreviousKey(entry: string): { file: string; retiredAt: number } {
  const at = entry.lastIndexOf('@');
  const when = at < 0 ? '' : entry.slice(at + 1).trim();
  const file = at < 0 ? entry : entry.slice(0, at).trim();
  const ms = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(when)
    ? Date.parse(when)
    : Number.NaN;
  if (!file || Number.isNaN(ms)) {
    throw new KeyError(
      `JWT_PREVIOUS_PUBLIC_KEY_FILES: "${entry.slice(0, 120)}" needs the key's retirement time: <file>@<when the new key began signing>, e.g. old.pub@2026-12-07T10:00:00Z`,
    );
  }
  return { file, retiredAt: Math.floor(ms / 1000) };
}

export async function loadKeyRing(config: KeyConfig): Promise<KeyRing> {
  const verification = new Map<string, VerificationKey>();
  const jwks: JWK[] = [];
  let signing: KeyRing['signing'];
  if (config.JWT_ALGORITHM === 'HS256') {
    const key = createSecretKey(Buffer.from(config.SECRET_KEY, 'utf8'));
    const id = hkdfSync('sha256', config.SECRET_KEY, 'connectsphere', 'jwt-hs256-key-id', 32);
    const kid = createHash('sha256').update(Buffer.from(id)).digest('base64url').slice(0, 22);
    signing = { kid, alg: 'HS256', key };
    verification.set(kid, { kid, alg: 'HS256', key });
  } else {
    let key: KeyObject;
    try {
      key = createPrivateKey(readPem(config.JWT_PRIVATE_KEY_FILE, 'JWT_PRIVATE_KEY_FILE'));
    } catch (err) {
      if (err instanceof KeyError) throw err;
      throw new KeyError('JWT_PRIVATE_KEY_FILE: not a PEM private key');
    }
    const alg = algorithmOf(key, 'JWT_PRIVATE_KEY_FILE');
    if (alg !== config.JWT_ALGORITHM) {
      throw new KeyError(
        `JWT_PRIVATE_KEY_FILE: holds a ${alg} key, but JWT_ALGORITHM is ${config.JWT_ALGORITHM}`,
      );
    }
    const { kid, jwk } = await publicJwk(createPublicKey(key), alg);
    signing = { kid, alg, key };
    verification.set(kid, { kid, alg, key: createPublicKey(key) });
    jwks.push(jwk);
  }
  for (const entry of config.JWT_PREVIOUS_PUBLIC_KEY_FILES.split(',')
    .map((f) => f.trim())
    .filter(Boolean)) {
    const { file, retiredAt } = parsePreviousKey(entry);
    let key: KeyObject;
    try {
      key = createPublicKey(readPem(file, 'JWT_PREVIOUS_PUBLIC_KEY_FILES'));
    } catch (err) {
      if (err instanceof KeyError) throw err;
      throw new KeyError(`JWT_PREVIOUS_PUBLIC_KEY_FILES: ${file} is not a PEM public key`);
    }
    const alg = algorithmOf(key, `JWT_PREVIOUS_PUBLIC_KEY_FILES (${file})`);
    const { kid, jwk } = await publicJwk(key, alg);
    if (!verification.has(kid)) {
      verification.set(kid, { kid, alg, key, retiredAt });
      jwks.push(jwk);
    }
  }
  return { signing, verification, jwks: { keys: jwks } };
}
