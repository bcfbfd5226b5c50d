/**
 * The rules of attempt throttling (logins, registrations, current-password checks, service
 * credentials), as pure functions of the stored counters, so they can be read and tested apart
 * from the SQL that applies them atomically (src/db/throttle.store.ts).
 *
 * Each key keeps its settled failures and its attempts in flight (each with an expiry, so an
 * attempt whose process died stops counting after IN_FLIGHT_TTL_S). An attempt is reserved BEFORE
 * the work it guards, against every key at once: granted when no key is locked and every key has
 * failures + in flight < max; when a key's budget is taken only by attempts still in flight, the
 * caller waits for them to settle (a correct password is never refused because others are in
 * flight); so N parallel guesses still get at most `max` evaluations. Only a settled failure
 * counts; a key locks when its failures reach `max`: for `baseS`, doubling with each further
 * failure, up to `maxS`. A success clears the keys it proves and releases its slot on the others.
 *
 * The window: a failure counts while the key's last failure, or the end of its last lock, is at
 * most `windowS` old; counting from the end of the lock lets the doubling reach `maxS` even when
 * a lock is longer than the window.
 */

export interface ThrottleKey {
  /** e.g. `pair:ada@example.com 203.0.113.7`, `src:203.0.113.7`, `acct:ada@example.com`, `user:<id>`, `reg:<source>`. */
  key: string;
  /** Failures within the window before the key locks. */
  max: number;
  /** Counts a failure only when it is the first of the named key within the window (the account
   * key counts distinct sources: `firstOf` its pair). */
  firstOf?: string;
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
  /** The expiry of each attempt in flight. */
  inFlight: number[];
}

/** How long an attempt in flight holds its slot; the attempt's own work is abandoned before that. */
export const IN_FLIGHT_TTL_S = 60;

/** What a granted attempt settles with: its keys and the expiry of its slot on each. */
export interface ThrottleTicket {
  keys: readonly ThrottleKey[];
  expiresAt: number;
}

export type Reservation = { granted: true; ticket: ThrottleTicket } | { granted: false; waitS: number };

/** How an attempt ended: a failure counts, a success clears `clear` and releases the rest, void releases all. */
export type Settlement =
  | { result: 'failure' }
  | { result: 'success'; clear: readonly ThrottleKey[] }
  | { result: 'void' };

/** Seconds of refusal once `failures` reached `max`: base, 2×base, 4×base ... up to maxS. */
export const lockoutSeconds = (failures: number, max: number, p: ThrottlePolicy): number =>
  failures < max ? 0 : Math.min(p.baseS * 2 ** Math.min(failures - max, 30), p.maxS);

/** Whether a row's failures still count: its last failure or the end of its last lock is within the window. */
export const isFresh = (row: ThrottleRow, now: number, p: ThrottlePolicy): boolean =>
  Math.max(row.lastFailureAt, row.lockedUntil ?? 0) >= now - p.windowS * 1000;

const failuresOf = (row: ThrottleRow | undefined, now: number, p: ThrottlePolicy) =>
  row && isFresh(row, now, p) ? row.failures : 0;
const liveOf = (row: ThrottleRow | undefined, now: number) => (row?.inFlight ?? []).filter((t) => t > now);

export type Decision = { kind: 'locked'; waitS: number } | { kind: 'wait' } | { kind: 'grant' };

/** Whether an attempt may start now: refused while a key is locked, waits while in-flight attempts hold the budget. */
export function decide(
  keys: readonly ThrottleKey[],
  rows: readonly ThrottleRow[],
  now: number,
  p: ThrottlePolicy,
): Decision {
  const lockedUntil = Math.max(0, ...rows.map((r) => r.lockedUntil ?? 0));
  if (lockedUntil > now) return { kind: 'locked', waitS: Math.max(1, Math.ceil((lockedUntil - now) / 1000)) };
  const byKey = new Map(rows.map((r) => [r.key, r]));
  for (const { key, max } of keys) {
    const row = byKey.get(key);
    const live = liveOf(row, now).length;
    // a key past its limit whose lock has ended allows one attempt at a time
    if (live > 0 && failuresOf(row, now, p) + live >= max) return { kind: 'wait' };
  }
  return { kind: 'grant' };
}

const empty = (key: string, now: number): ThrottleRow => ({
  key,
  failures: 0,
  lastFailureAt: now,
  lockedUntil: null,
  inFlight: [],
});

/** The keys' rows once an attempt is granted: each holds one more slot in flight, until `expiresAt`. */
export function grant(
  keys: readonly ThrottleKey[],
  rows: readonly ThrottleRow[],
  now: number,
): { ticket: ThrottleTicket; next: ThrottleRow[] } {
  const byKey = new Map(rows.map((r) => [r.key, r]));
  const expiresAt = now + IN_FLIGHT_TTL_S * 1000;
  const next = keys.map(({ key }) => {
    const row = byKey.get(key) ?? empty(key, now);
    return { ...row, inFlight: [...liveOf(row, now), expiresAt] };
  });
  return { ticket: { keys, expiresAt }, next };
}

/**
 * The keys' rows once an attempt ends: its slot is released everywhere; a failure counts on every
 * key (a `firstOf` key only on the first failure of that other key in the window) and may lock it;
 * a success clears its `clear` keys. `drop`: rows back to nothing (deleted); `locks`: keys this
 * settlement locked, with the lock's length.
 */
export function settle(
  ticket: ThrottleTicket,
  rows: readonly ThrottleRow[],
  now: number,
  p: ThrottlePolicy,
  how: Settlement,
): { next: ThrottleRow[]; drop: string[]; locks: { key: string; lockS: number }[] } {
  const byKey = new Map(rows.map((r) => [r.key, r]));
  const cleared = new Set(how.result === 'success' ? how.clear.map((k) => k.key) : []);
  const next: ThrottleRow[] = [];
  const drop: string[] = [];
  const locks: { key: string; lockS: number }[] = [];
  for (const { key, max, firstOf } of ticket.keys) {
    const row = byKey.get(key) ?? empty(key, now);
    const inFlight = liveOf(row, now);
    const mine = inFlight.indexOf(ticket.expiresAt);
    if (mine >= 0) inFlight.splice(mine, 1);
    let after: ThrottleRow = { ...row, inFlight };
    const counts = firstOf === undefined || failuresOf(byKey.get(firstOf), now, p) === 0;
    if (how.result === 'failure' && counts) {
      const failures = failuresOf(row, now, p) + 1;
      const lockS = lockoutSeconds(failures, max, p);
      after = { ...after, failures, lastFailureAt: now, lockedUntil: lockS > 0 ? now + lockS * 1000 : null };
      if (lockS > 0) locks.push({ key, lockS });
    } else if (cleared.has(key)) {
      after = { ...after, failures: 0, lockedUntil: null };
    } else if (!isFresh(row, now, p)) {
      after = { ...after, failures: 0 };
    }
    const idle = after.failures === 0 && after.inFlight.length === 0 && (after.lockedUntil ?? 0) <= now;
    if (idle) drop.push(key);
    else next.push(after);
  }
  return { next, drop, locks };
}

/** The keys of one login attempt: the account from this source, this source, this account (counting distinct sources). */
export function loginKeys(
  email: string,
  source: string,
  limits: { pair: number; source: number; account: number },
): { pair: ThrottleKey; source: ThrottleKey; account: ThrottleKey } {
  const pair = `pair:${email} ${source}`;
  return {
    pair: { key: pair, max: limits.pair },
    source: { key: `src:${source}`, max: limits.source },
    account: { key: `acct:${email}`, max: limits.account, firstOf: pair },
  };
}

/** The signal a granted attempt's work runs under: the call's, and abandoned well before its slot
 * expires (so an expired slot never lets more than `max` attempts be evaluated). */
export function attemptSignal(signal?: AbortSignal): AbortSignal {
  const ttl = AbortSignal.timeout((IN_FLIGHT_TTL_S - 10) * 1000);
  return signal ? AbortSignal.any([signal, ttl]) : ttl;
}
