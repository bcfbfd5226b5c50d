/**
 * A keyed hash of an email address, for the audit trail: a failed Login's event says which
 * address was tried (the same address gives the same value, so an attack on one shows) without
 * storing the address. HMAC-SHA-256 with a key derived from SECRET_KEY under its own label, cut to
 * 128 bits; a new SECRET_KEY gives new values.
 */
import { createHmac, hkdfSync } from 'node:crypto';

export type EmailFingerprint = (normalizedEmail: string) => string;

export function createEmailFingerprint(secretKey: string): EmailFingerprint {
  const key = Buffer.from(hkdfSync('sha256', secretKey, 'connectsphere', 'audit-email-hmac', 32));
  return (email) => createHmac('sha256', key).update(email, 'utf8').digest().subarray(0, 16).toString('hex');
}
