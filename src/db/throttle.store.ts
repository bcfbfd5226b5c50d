/**
 * Attempt counters in PostgreSQL, so every instance enforces the same limits, by the database's
 * clock, with the rules of src/throttle.ts.
 *
 * A reservation first reads the keys' rows with a plain SELECT: a locked key is refused with no
 * write at all (a locked-out client costs one indexed read per attempt), and an attempt that must
 * wait for others in flight waits without writing either (woken in-process when an attempt here
 * settles, else polling with backoff; bounded by the call's deadline, or RESERVE_WAIT_MAX_MS). Only
 * a grant runs a short transaction that locks the keys' rows in key order (no deadlocks between
 * concurrent attempts), decides again on fresh rows and records the slot. A settlement is one
 * such transaction too.
 */
import { cancelled } from '../errors.js';
import type { AttemptThrottle } from '../ports.js';
import {
  decide,
  grant,
  type Reservation,
  settle,
  type ThrottleKey,
  type ThrottlePolicy,
  type ThrottleRow,
} from '../throttle.js';
import type { Database } from './database.js';

/** How long a call without a deadline waits for attempts in flight before it is asked to retry. */
export const RESERVE_WAIT_MAX_MS = 30_000;

interface Row {
  key: string;
  failures: number;
  lastFailureAt: Date;
  lockedUntil: Date | null;
  inFlight: number[] | null;
  now: Date;
}

const toRule = (r: Row): ThrottleRow => ({
  key: r.key,
  failures: r.failures,
  lastFailureAt: r.lastFailureAt.getTime(),
  lockedUntil: r.lockedUntil?.getTime() ?? null,
  inFlight: (r.inFlight ?? []).map(Number),
});

const COLUMNS = `key, failures, last_failure_at AS "lastFailureAt", locked_until AS "lockedUntil",
  ARRAY(SELECT (extract(epoch FROM t) * 1000)::float8 FROM unnest(in_flight) t) AS "inFlight", now() AS now`;
const READ_ROWS = `SELECT ${COLUMNS} FROM login_throttle WHERE key = ANY($1::text[])`;
const LOCK_ROWS = `SELECT ${COLUMNS} FROM login_throttle WHERE key = ANY($1::text[]) ORDER BY key FOR UPDATE`;
const INSERT_ROWS = `INSERT INTO login_throttle (key, failures, last_failure_at)
  SELECT k, 0, now() FROM unnest($1::text[]) AS k ORDER BY k ON CONFLICT (key) DO NOTHING`;
const WRITE_ROWS = `UPDATE login_throttle t SET failures = v.failures, last_failure_at = v.last_failure_at,
    locked_until = v.locked_until, in_flight = v.in_flight::timestamptz[]
  FROM unnest($1::text[], $2::int[], $3::timestamptz[], $4::timestamptz[], $5::text[])
    AS v(key, failures, last_failure_at, locked_until, in_flight)
  WHERE t.key = v.key`;

const iso = (ms: number) => new Date(ms).toISOString();

export function createAttemptThrottle(db: Database, policy: ThrottlePolicy): AttemptThrottle {
  const sorted = (keys: readonly ThrottleKey[]) => [...new Set(keys.map((k) => k.key))].sort();
  type Tx = Parameters<Parameters<Database['run']>[0]>[0];
  const write = (rows: ThrottleRow[], tx: Tx) =>
    db.execute(
      WRITE_ROWS,
      [
        rows.map((r) => r.key),
        rows.map((r) => r.failures),
        rows.map((r) => new Date(r.lastFailureAt)),
        rows.map((r) => (r.lockedUntil === null ? null : new Date(r.lockedUntil))),
        rows.map((r) => `{${r.inFlight.map(iso).join(',')}}`),
      ],
      { tx },
    );

  // Attempts waiting here for others in flight: woken when an attempt of this process settles.
  const sleepers = new Set<() => void>();
  const wakeAll = () => {
    for (const wake of [...sleepers]) wake();
  };
  const nap = (ms: number, signal: AbortSignal) =>
    new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        sleepers.delete(done);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      sleepers.add(done);
      signal.addEventListener('abort', done, { once: true });
    });

  /** One try: refused, granted (with its ticket) or 'wait'. */
  const attempt = async (keys: readonly ThrottleKey[], signal: AbortSignal) => {
    const names = sorted(keys);
    const seen = await db.read<Row>(READ_ROWS, [names], signal);
    const now = seen[0]?.now.getTime() ?? Date.now();
    const first = decide(keys, seen.map(toRule), now, policy);
    if (first.kind === 'locked') return { granted: false, waitS: first.waitS } as const;
    if (first.kind === 'wait') return 'wait' as const;
    return db.run(async (tx) => {
      await db.execute(INSERT_ROWS, [names], { tx, signal });
      const locked = await db.select<Row>(LOCK_ROWS, [names], { tx, signal });
      const rows = locked.map(toRule);
      const at = locked[0]?.now.getTime() ?? now;
      const decision = decide(keys, rows, at, policy);
      if (decision.kind === 'locked') return { granted: false, waitS: decision.waitS } as const;
      if (decision.kind === 'wait') return 'wait' as const;
      const { ticket, next } = grant(keys, rows, at);
      await write(next, tx);
      return { granted: true, ticket } as const;
    }, signal);
  };

  return {
    async reserve(keys, signal): Promise<Reservation> {
      const bound = signal
        ? AbortSignal.any([signal, AbortSignal.timeout(RESERVE_WAIT_MAX_MS)])
        : AbortSignal.timeout(RESERVE_WAIT_MAX_MS);
      for (let backoffMs = 10; ; backoffMs = Math.min(backoffMs * 2, 250)) {
        const outcome = await attempt(keys, bound);
        if (outcome !== 'wait') return outcome;
        await nap(backoffMs, bound);
        if (signal?.aborted) throw cancelled('the call was cancelled while it waited for attempts in flight');
        if (bound.aborted) return { granted: false, waitS: 1 };
      }
    },

    async settle(ticket, how) {
      const names = sorted(ticket.keys);
      try {
        return await db.run(async (tx) => {
          let found = await db.select<Row>(LOCK_ROWS, [names], { tx });
          if (how.result === 'failure' && found.length < names.length) {
            // a row pruned while its attempt was in flight: the failure still counts
            await db.execute(INSERT_ROWS, [names], { tx });
            found = await db.select<Row>(LOCK_ROWS, [names], { tx });
          }
          const now = found[0]?.now.getTime() ?? Date.now();
          const { next, drop, locks } = settle(ticket, found.map(toRule), now, policy, how);
          if (next.length) await write(next, tx);
          if (drop.length)
            await db.execute('DELETE FROM login_throttle WHERE key = ANY($1::text[])', [drop], { tx });
          return { locks };
        });
      } finally {
        wakeAll();
      }
    },
  };
}
