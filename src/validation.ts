/**
 * Field rules shared by the services. Each check adds to a Violations list so a caller learns
 * every bad field of a request at once. Text that is shown to other people (emails, display names)
 * must not be able to impersonate: no invisible or direction-changing characters, no look-alike
 * mixes of scripts, one normal form.
 */
import { domainToASCII, domainToUnicode } from 'node:url';
import type { Violations } from './errors.js';
import {
  echo,
  INVISIBLE_LETTER_RE,
  MAX_MARKS_PER_LETTER,
  mixesScripts,
  readsAsAscii,
  stackedMarks,
  wordsOf,
} from './text/unicode.js';

export const EMAIL_MAX = 254;
export const PASSWORD_MIN_BYTES = 8;
/** bcrypt ignores bytes past 72: longer passwords are refused rather than silently truncated. */
export const PASSWORD_MAX_BYTES = 72;
export const DISPLAY_NAME_MAX = 64;

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// RFC 5322 dot-atom: atext runs separated by single dots.
const DOT_ATOM_RE = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/;
const ASCII_LABEL_RE = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;
// Control (Cc), format (Cf: zero-width, bidi controls, tags U+E0000-E007F), separators (Z),
// surrogates and U+FFFD (what invalid UTF-8 on the wire decodes to).
const INVISIBLE_RE = /[\p{Cc}\p{Cf}\p{Z}\p{Cs}\uFFFD]/u;
// In display names the plain space is allowed; private use (Co) and unassigned (Cn) are not.
const NAME_FORBIDDEN_RE = /[\p{Cc}\p{Cf}\p{Co}\p{Cn}\p{Cs}\uFFFD\p{Zl}\p{Zp}]|(?! )\p{Zs}/u;
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const UNSAFE_TEXT_RE = /[\u0000-\u001f\u007f-\u009f\ufffd]/;

export const isUuid = (s: string): boolean => UUID_RE.test(s);

export function hasUnsafeText(s: string): boolean {
  return UNSAFE_TEXT_RE.test(s);
}

/**
 * Normalises an email for lookups (Login, GetUser): trimmed, the local part lower-cased, the domain
 * in its ASCII (punycode) form per UTS #46. Never refuses: a lookup of an address that could not
 * be registered simply finds nothing.
 */
export function normalizeEmail(raw: string): string {
  const email = raw.trim();
  const at = email.lastIndexOf('@');
  if (at < 0) return email.toLowerCase();
  const domain = email.slice(at + 1);
  return `${email.slice(0, at).toLowerCase()}@${domainToASCII(domain) || domain.toLowerCase()}`;
}

/** The shape any stored address has had (accounts older than today's rules included). */
const EMAIL_SHAPE = /^[^\s@]+@[^\s@.]+(\.[^\s@.]+)+$/;

/**
 * An email given to find an account (Login, GetUser): normalised, and refused only when no account
 * could have it. Never stored, so today's stricter rules for new addresses do not apply.
 */
export function checkEmailLookup(v: Violations, field: string, raw: string): string {
  const email = normalizeEmail(raw);
  if (email === '') v.add(field, 'is required');
  else if (email.length > EMAIL_MAX) v.add(field, `must be at most ${EMAIL_MAX} characters`);
  else if (hasUnsafeText(email) || !EMAIL_SHAPE.test(email))
    v.add(field, 'must be an email address like name@example.com');
  return email;
}

/**
 * Checks an email as given for a new address (Register, an email change) and returns its stored
 * form: an ASCII dot-atom local part (lower-cased) and a domain that may be an IDN, stored as ASCII;
 * a domain label that mixes scripts (Cyrillic look-alikes in a Latin name) is refused.
 */
export function checkEmail(v: Violations, field: string, raw: string): string {
  const email = raw.trim();
  const example = 'must be an email address like name@example.com';
  if (email === '') {
    v.add(field, 'is required');
    return '';
  }
  if (email.length > EMAIL_MAX) {
    v.add(field, `must be at most ${EMAIL_MAX} characters`);
    return '';
  }
  if (INVISIBLE_RE.test(email)) {
    v.add(field, 'must not contain spaces, control, invisible or direction-changing characters');
    return '';
  }
  const at = email.lastIndexOf('@');
  const local = email.slice(0, at);
  const domain = email.slice(at + 1);
  if (at <= 0 || local.length > 64 || !DOT_ATOM_RE.test(local)) {
    v.add(
      field,
      `${example} (the part before @ in plain ASCII letters, digits and . ! # $ % & ' * + / = ? ^ _ \` { | } ~ -)`,
    );
    return '';
  }
  const ascii = domainToASCII(domain);
  const labels = ascii.split('.');
  if (
    !ascii ||
    labels.length < 2 ||
    !labels.every((l) => ASCII_LABEL_RE.test(l)) ||
    /^\d+$/.test(labels.at(-1) ?? '')
  ) {
    v.add(field, example);
    return '';
  }
  const unicodeLabels = domainToUnicode(ascii).split('.');
  const mixed = unicodeLabels.find(mixesScripts);
  if (mixed !== undefined) {
    v.add(
      field,
      `has a domain part that mixes alphabets ("${echo(mixed)}"; for example Latin and Cyrillic look-alikes)`,
    );
    return '';
  }
  // UTS #39 whole-script confusables: a label all in one other script that reads as ASCII.
  for (const label of unicodeLabels) {
    const reading = readsAsAscii(label);
    if (reading !== null) {
      v.add(
        field,
        `has a domain part written in look-alike letters ("${echo(label)}" reads as "${echo(reading)}")`,
      );
      return '';
    }
  }
  return `${local.toLowerCase()}@${ascii}`;
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

/**
 * A display name as shown to others: trimmed, NFC-normalised (so the same name has one form), at
 * most 64 characters with at least one letter or digit, and nothing invisible: no control, format
 * (zero-width, bidi), private-use, unassigned or separator characters but the plain space, and no
 * letter that draws nothing (U+3164 HANGUL FILLER). No word (between spaces and punctuation) mixes
 * scripts beyond UTS #39 "highly restrictive" (`Аdmin` with a Cyrillic А is refused; Latin with
 * digits, or Japanese Han with kana, is one word), and no letter carries more than two combining marks.
 */
export function checkDisplayName(v: Violations, field: string, raw: string): string {
  const name = raw.normalize('NFC').trim();
  if (name === '') v.add(field, 'is required');
  else if ([...name].length > DISPLAY_NAME_MAX)
    v.add(field, `must be at most ${DISPLAY_NAME_MAX} characters`);
  else if (NAME_FORBIDDEN_RE.test(name)) {
    v.add(field, 'must not contain control, invisible, direction-changing or private-use characters');
  } else if (INVISIBLE_LETTER_RE.test(name)) {
    const ch = INVISIBLE_LETTER_RE.exec(name)?.[0] ?? '';
    const code = `U+${(ch.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;
    v.add(field, `must not contain letters that draw nothing (${code}, shown as blank)`);
  } else if (!/[\p{L}\p{N}]/u.test(name)) v.add(field, 'must contain at least one letter or digit');
  else {
    const mixed = wordsOf(name).find(mixesScripts);
    const stacked = stackedMarks(name);
    if (mixed !== undefined) {
      v.add(field, `mixes scripts within a word ("${echo(mixed)}"); write each word in one alphabet`);
    } else if (stacked !== null) {
      v.add(
        field,
        `has more than ${MAX_MARKS_PER_LETTER} combining marks on one letter ("${echo(stacked)}")`,
      );
    }
  }
  return name;
}

export function checkUuid(v: Violations, field: string, id: string): void {
  if (id === '') v.add(field, 'is required');
  else if (!isUuid(id)) v.add(field, 'must be a UUID');
}
