/**
 * The housekeeping job: every PRUNE_INTERVAL_S, delete what no rule needs any more, in bounded
 * batches (short transactions, no long locks), and log the counts:
 * - refresh tokens that expired more than PRUNE_AFTER_DAYS ago (a used but unexpired token stays:
 *   presenting it again is how a replay is detected);
 * - sessions that ended, or whose every refresh token expired, more than PRUNE_AFTER_DAYS ago
 *   (their tokens go with them);
 * - throttle counters whose window and lock are both over;
 * - audit events older than AUDIT_RETENTION_DAYS, through `audit_events_prune` (migration 0005):
 *   the service role may not delete audit rows itself, and the function never deletes events
 *   younger than the floor in `audit_settings` (30 days), whatever retention it is asked for.
 * Only one instance works at a time: each batch runs under a transaction-level advisory lock, and an
 * instance that does not get it skips the round.
 */
import type { AppConfig } from '../config.js';
import type { Logger } from '../logger.js';
import type { Database } from './database.js';

/** `pg_try_advisory_xact_lock` key: "cs-prune" as a 32-bit number, the same on every instance. */
const PRUNE_LOCK = 0x63737072;
const BATCH = 1000;

const STATEMENTS = {
  refreshTokens: `DELETE FROM refresh_tokens WHERE token_hash IN (
      SELECT token_hash FROM refresh_tokens WHERE expires_at < now() - make_interval(days => $1) LIMIT ${BATCH})`,
  sessions: `DELETE FROM sessions WHERE id IN (
      SELECT s.id FROM sessions s
      WHERE s.revoked_at < now() - make_interval(days => $1)
         OR (s.created_at < now() - make_interval(days => $1)
             AND NOT EXISTS (SELECT 1 FROM refresh_tokens t
                             WHERE t.session_id = s.id AND t.expires_at >= now() - make_interval(days => $1)))
      LIMIT ${BATCH})`,
  throttle: `DELETE FROM login_throttle WHERE key IN (
      SELECT key FROM login_throttle
      WHERE last_failure_at < now() - make_interval(secs => $1)
        AND (locked_until IS NULL OR locked_until < now() - make_interval(secs => $1))
      LIMIT ${BATCH})`,
  auditEvents: `SELECT audit_events_prune($1, ${BATCH}) AS deleted`,
} as const;

export type PruneCounts = Record<keyof typeof STATEMENTS, number> & { skipped: boolean };

export type HousekeepingConfig = Pick<
  AppConfig,
  'PRUNE_AFTER_DAYS' | 'PRUNE_INTERVAL_S' | 'LOGIN_FAILURE_WINDOW_S' | 'AUDIT_RETENTION_DAYS'
>;

/** One round: every kind, batch after batch until a batch comes back short. */
export async function pruneOnce(db: Database, config: HousekeepingConfig): Promise<PruneCounts> {
  const counts: PruneCounts = { refreshTokens: 0, sessions: 0, throttle: 0, auditEvents: 0, skipped: false };
  const args: Record<keyof typeof STATEMENTS, unknown[]> = {
    refreshTokens: [config.PRUNE_AFTER_DAYS],
    sessions: [config.PRUNE_AFTER_DAYS],
    throttle: [config.LOGIN_FAILURE_WINDOW_S],
    auditEvents: [config.AUDIT_RETENTION_DAYS],
  };
  for (const kind of ['sessions', 'refreshTokens', 'throttle', 'auditEvents'] as const) {
    for (;;) {
      const n = await db.run(async (tx) => {
        const [lock] = await db.select<{ ok: boolean }>(
          'SELECT pg_try_advisory_xact_lock($1) AS ok',
          [PRUNE_LOCK],
          { tx },
        );
        if (!lock?.ok) return -1;
        if (kind === 'auditEvents') {
          const [row] = await db.select<{ deleted: number }>(STATEMENTS[kind], args[kind], { tx });
          return row?.deleted ?? 0;
        }
        return db.execute(STATEMENTS[kind], args[kind], { tx });
      });
      if (n < 0) return { ...counts, skipped: true };
      counts[kind] += n;
      if (n < BATCH) break;
    }
  }
  return counts;
}

export function startHousekeeping(db: Database, config: HousekeepingConfig, logger: Logger) {
  const log = logger.child({ component: 'housekeeping' });
  let running: Promise<void> | undefined;
  const round = () => {
    running ??= pruneOnce(db, config)
      .then(
        (counts) => {
          if (counts.skipped) log.debug('another instance is pruning; skipped');
          else
            log.info(
              { deleted: counts },
              'pruned expired sessions, refresh tokens, throttle counters and old audit events',
            );
        },
        (err: unknown) => log.warn({ err }, 'housekeeping failed; will try again'),
      )
      .finally(() => {
        running = undefined;
      });
    return running;
  };
  const timer =
    config.PRUNE_INTERVAL_S > 0 ? setInterval(round, config.PRUNE_INTERVAL_S * 1000).unref() : undefined;
  return {
    /** Runs a round now (tests, the operator command). */
    runNow: round,
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
