/**
 * The rules of attempt throttling (logins, current-password checks), as pure functions of the
 * stored counters, so they can be read and tested apart from the SQL that applies them
 * atomically (src/db/throttle.store.ts).
 *
 * An attempt is counted (reserved) BEFORE the work it guards, against every key at once, and only
 * if no key is locked: so N parallel guesses get at most `max` evaluations, and a refused attempt
 * counts against nothing (an attacker locked out of one key cannot push another). A key locks once
 * its count reaches its `max` within the window: for `baseS`, doubling with each further attempt,
 * up to `maxS`. A success clears the keys it proves (the account and address pair) and gives its
 * reservation back to the others (a busy address of honest users is not locked by its successes).
 */

export interface ThrottleKey {
  /** e.g. `pair:ada@example.com 203.0.113.7`, `src:203.0.113.7`, `acct:ada@example.com`, `user:<id>`. */
  key: string;
  /** Attempts within the window before the key locks. */
  max: number;
}

export interface ThrottlePolicy {
  baseS: number;
  maxS: number;
  windowS: number;
}

/** A key's stored state (times in ms since the epoch, by the database's clock). */
export interface ThrottleRow {
  key: string;
  failures: number;
  lastFailureAt: number;
  lockedUntil: number | null;
}

export type Reservation = { granted: true } | { granted: false; waitS: number };

/** Seconds of refusal once `failures` reached `max`: base, 2×base, 4×base ... up to maxS. */
export const lockoutSeconds = (failures: number, max: number, p: ThrottlePolicy): number =>
  failures < max ? 0 : Math.min(p.baseS * 2 ** Math.min(failures - max, 30), p.maxS);

/** The decision for one attempt: refused (nothing changes) or granted with each key's new state. */
export function reserve(
  keys: readonly ThrottleKey[],
  rows: readonly ThrottleRow[],
  now: number,
  p: ThrottlePolicy,
): { reservation: Reservation; next: ThrottleRow[] } {
  const byKey = new Map(rows.map((r) => [r.key, r]));
  const lockedUntil = Math.max(0, ...rows.map((r) => r.lockedUntil ?? 0));
  if (lockedUntil > now) {
    return {
      reservation: { granted: false, waitS: Math.max(1, Math.ceil((lockedUntil - now) / 1000)) },
      next: [],
    };
  }
  const next = keys.map(({ key, max }) => {
    const row = byKey.get(key);
    const fresh = !row || row.lastFailureAt < now - p.windowS * 1000;
    const failures = (fresh ? 0 : row.failures) + 1;
    const lockS = lockoutSeconds(failures, max, p);
    return { key, failures, lastFailureAt: now, lockedUntil: lockS > 0 ? now + lockS * 1000 : null };
  });
  return { reservation: { granted: true }, next };
}

/** After a success: a refunded key loses this attempt, and the lock it alone caused. */
export function refund(row: ThrottleRow, max: number): ThrottleRow {
  const failures = Math.max(0, row.failures - 1);
  return { ...row, failures, lockedUntil: failures < max ? null : row.lockedUntil };
}

/** The keys of one login attempt: the account from this address, this address, this account. */
export function loginKeys(
  email: string,
  address: string,
  limits: { pair: number; source: number; account: number },
): { pair: ThrottleKey; source: ThrottleKey; account: ThrottleKey } {
  return {
    pair: { key: `pair:${email} ${address}`, max: limits.pair },
    source: { key: `src:${address}`, max: limits.source },
    account: { key: `acct:${email}`, max: limits.account },
  };
}
