/**
 * Attempt counters in PostgreSQL, so every instance enforces the same limits. Each reservation or
 * settlement is one short transaction that locks the keys' rows in key order (no deadlocks between
 * concurrent attempts), reads them fresh, and applies the rules of src/throttle.ts by the
 * database's clock.
 */
import type { AttemptThrottle } from '../ports.js';
import { refund, reserve, type ThrottleKey, type ThrottlePolicy, type ThrottleRow } from '../throttle.js';
import type { Database } from './database.js';

interface Row {
  key: string;
  failures: number;
  lastFailureAt: Date;
  lockedUntil: Date | null;
  now: Date;
}

const toRule = (r: Row): ThrottleRow => ({
  key: r.key,
  failures: r.failures,
  lastFailureAt: r.lastFailureAt.getTime(),
  lockedUntil: r.lockedUntil?.getTime() ?? null,
});

const LOCK_ROWS = `SELECT key, failures, last_failure_at AS "lastFailureAt", locked_until AS "lockedUntil", now() AS now
  FROM login_throttle WHERE key = ANY($1::text[]) ORDER BY key FOR UPDATE`;

const WRITE_ROWS = `UPDATE login_throttle t SET failures = v.failures, last_failure_at = v.last_failure_at,
    locked_until = v.locked_until
  FROM unnest($1::text[], $2::int[], $3::timestamptz[], $4::timestamptz[]) AS v(key, failures, last_failure_at, locked_until)
  WHERE t.key = v.key`;

export function createAttemptThrottle(db: Database, policy: ThrottlePolicy): AttemptThrottle {
  const sorted = (keys: readonly ThrottleKey[]) => [...new Set(keys.map((k) => k.key))].sort();
  const write = (rows: ThrottleRow[], tx: Parameters<Parameters<Database['run']>[0]>[0]) =>
    db.execute(
      WRITE_ROWS,
      [
        rows.map((r) => r.key),
        rows.map((r) => r.failures),
        rows.map((r) => new Date(r.lastFailureAt)),
        rows.map((r) => (r.lockedUntil === null ? null : new Date(r.lockedUntil))),
      ],
      { tx },
    );

  return {
    reserve: (keys, signal) =>
      db.run(async (tx) => {
        const names = sorted(keys);
        await db.execute(
          `INSERT INTO login_throttle (key, failures, last_failure_at)
           SELECT k, 0, now() FROM unnest($1::text[]) AS k ORDER BY k ON CONFLICT (key) DO NOTHING`,
          [names],
          { tx, signal },
        );
        const rows = await db.select<Row>(LOCK_ROWS, [names], { tx, signal });
        const now = rows[0]?.now.getTime() ?? Date.now();
        const { reservation, next } = reserve(keys, rows.map(toRule), now, policy);
        if (next.length) await write(next, tx);
        return reservation;
      }, signal),

    settle: (clear, refunded) =>
      db.run(async (tx) => {
        const rows = await db.select<Row>(LOCK_ROWS, [sorted([...clear, ...refunded])], { tx });
        const max = new Map(refunded.map((k) => [k.key, k.max]));
        const cleared = new Set(clear.map((k) => k.key));
        if (cleared.size)
          await db.execute('DELETE FROM login_throttle WHERE key = ANY($1::text[])', [[...cleared]], { tx });
        const next = rows
          .filter((r) => !cleared.has(r.key) && max.has(r.key))
          .map((r) => refund(toRule(r), max.get(r.key) as number));
        if (next.length) await write(next, tx);
      }),
  };
}
