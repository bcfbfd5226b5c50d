/**
 * Opaque, tamper-proof page tokens (ListUsers, ListAuditEvents): the cursor (the last id) and the
 * query or filters it was made for, signed with an HMAC keyed from SECRET_KEY per list. Callers cannot forge a cursor or reuse a token
 * with another query (AIP-158).
 */
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';

export interface PageCursor {
  afterId: string;
  query: string;
}

export interface PageTokenCodec {
  encode(cursor: PageCursor): string;
  /** The cursor, or null when the token was not made by us. */
  decode(token: string): PageCursor | null;
}

/** `purpose` keys the HMAC: a token made for one list is refused by another. */
export function createPageTokenCodec(
  secretKey: string,
  purpose: 'list-users' | 'list-audit-events' = 'list-users',
): PageTokenCodec {
  const key = Buffer.from(hkdfSync('sha256', secretKey, 'connectsphere', `${purpose}-page-token`, 32));
  const mac = (body: string) => createHmac('sha256', key).update(body).digest().subarray(0, 16);
  return {
    encode(cursor) {
      const body = Buffer.from(JSON.stringify({ a: cursor.afterId, q: cursor.query })).toString('base64url');
      return `${body}.${mac(body).toString('base64url')}`;
    },
    decode(token) {
      const [body, sig, extra] = token.split('.');
      if (!body || !sig || extra !== undefined || token.length > 1024) return null;
      const given = Buffer.from(sig, 'base64url');
      const expected = mac(body);
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
      try {
        const { a, q } = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as {
          a?: unknown;
          q?: unknown;
        };
        return typeof a === 'string' && typeof q === 'string' ? { afterId: a, query: q } : null;
      } catch {
        return null;
      }
    },
  };
}
