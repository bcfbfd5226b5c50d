/**
 * Field rules shared by the services. Each check adds to a Violations list so a caller learns
 * every bad field of a request at once.
 */
import type { Violations } from './errors.js';

export const EMAIL_MAX = 254;
export const PASSWORD_MIN_BYTES = 8;
/** bcrypt ignores bytes past 72: longer passwords are refused rather than silently truncated. */
export const PASSWORD_MAX_BYTES = 72;
export const DISPLAY_NAME_MAX = 100;

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// local@domain.tld, no spaces; deliberately simple (RFC 5322 allows far more than mail servers accept).
const EMAIL_RE = /^[^\s@]+@[^\s@.]+(\.[^\s@.]+)+$/;
// C0/C1 controls (NUL included) and U+FFFD, which is what invalid UTF-8 on the wire decodes to.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const UNSAFE_TEXT_RE = /[\u0000-\u001f\u007f-\u009f\ufffd]/;

export const isUuid = (s: string): boolean => UUID_RE.test(s);

export const normalizeEmail = (email: string): string => email.trim().toLowerCase();

export function hasUnsafeText(s: string): boolean {
  return UNSAFE_TEXT_RE.test(s);
}

/** Checks an email as given by a caller; returns its normalised form. */
export function checkEmail(v: Violations, field: string, raw: string): string {
  const email = normalizeEmail(raw);
  if (email === '') v.add(field, 'is required');
  else if (email.length > EMAIL_MAX) v.add(field, `must be at most ${EMAIL_MAX} characters`);
  else if (hasUnsafeText(email) || !EMAIL_RE.test(email))
    v.add(field, 'must be an email address like name@example.com');
  return email;
}

export function checkNewPassword(v: Violations, field: string, password: string): void {
  const bytes = Buffer.byteLength(password, 'utf8');
  if (password === '') v.add(field, 'is required');
  else if (bytes < PASSWORD_MIN_BYTES) v.add(field, `must be at least ${PASSWORD_MIN_BYTES} bytes`);
  else if (bytes > PASSWORD_MAX_BYTES) v.add(field, `must be at most ${PASSWORD_MAX_BYTES} bytes of UTF-8`);
  else if (password.includes('\u0000') || password.includes('\ufffd')) {
    v.add(field, 'must not contain NUL characters or invalid UTF-8');
  }
}

/** For a password being checked (not set): only what bcrypt cannot compare is refused. */
export function checkGivenPassword(v: Violations, field: string, password: string): void {
  if (password === '') v.add(field, 'is required');
  else if (Buffer.byteLength(password, 'utf8') > PASSWORD_MAX_BYTES) {
    v.add(field, `must be at most ${PASSWORD_MAX_BYTES} bytes of UTF-8`);
  } else if (password.includes('\u0000')) {
    // bcrypt stops at NUL: "secret\0anything" would otherwise match "secret".
    v.add(field, 'must not contain NUL characters');
  }
}

export function checkDisplayName(v: Violations, field: string, raw: string): string {
  const name = raw.trim();
  if (name === '') v.add(field, 'is required');
  else if ([...name].length > DISPLAY_NAME_MAX)
    v.add(field, `must be at most ${DISPLAY_NAME_MAX} characters`);
  else if (hasUnsafeText(name)) v.add(field, 'must not contain control characters or invalid UTF-8');
  return name;
}

export function checkUuid(v: Violations, field: string, id: string): void {
  if (id === '') v.add(field, 'is required');
  else if (!isUuid(id)) v.add(field, 'must be a UUID');
}
