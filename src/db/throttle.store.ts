import type { LoginThrottleStore } from '../ports.js';
import type { Database } from './database.js';

export function createLoginThrottleStore(db: Database): LoginThrottleStore {
  return {
    async check(email, signal) {
      const [row] = await db.read<{ waitS: number }>(
        `SELECT GREATEST(0, ceil(extract(epoch FROM locked_until - now())))::int AS "waitS"
         FROM login_attempts WHERE email = $1`,
        [email],
        signal,
      );
      return { waitS: row?.waitS ?? 0, hasFailures: row !== undefined };
    },

    async recordFailure(email, windowS) {
      const [row] = await db.select<{ failures: number }>(
        `INSERT INTO login_attempts (email, failures, last_failure_at) VALUES ($1, 1, now())
         ON CONFLICT (email) DO UPDATE SET
           failures = CASE WHEN login_attempts.last_failure_at < now() - make_interval(secs => $2) THEN 1
                           ELSE login_attempts.failures + 1 END,
           last_failure_at = now()
         RETURNING failures`,
        [email, windowS],
      );
      return row?.failures ?? 1;
    },

    async lock(email, seconds) {
      await db.execute(
        'UPDATE login_attempts SET locked_until = now() + make_interval(secs => $2) WHERE email = $1',
        [email, seconds],
      );
    },

    async reset(email) {
      await db.execute('DELETE FROM login_attempts WHERE email = $1', [email]);
    },
  };
}
