import type { LivePrincipal, RotateResult, SessionStore, UserRecord } from '../ports.js';
import { type BatcherOptions, createBatcher } from './batcher.js';
import type { Database } from './database.js';
import { INSERT_REFRESH_TOKEN_SQL, U_USER_COLUMNS } from './sql.js';
import { insertSession } from './user.store.js';

/** Marks a live, unexpired refresh token of a live session of an active user as used: the row lock
 * makes exactly one of concurrent callers match. `$1` picks the token(s), see the callers. */
const claimSql = (match: string) => `
  UPDATE refresh_tokens rt SET used_at = now()
  FROM sessions s JOIN users u ON u.id = s.user_id
  WHERE ${match} AND rt.used_at IS NULL AND rt.expires_at > now()
    AND s.id = rt.session_id AND s.revoked_at IS NULL AND u.deleted_at IS NULL
  RETURNING s.id AS "sessionId", ${U_USER_COLUMNS}`;

const CLAIM_PRESENTED = claimSql('rt.token_hash = $1');
/** The live token whose parent is the presented one: it was issued by the rotation the caller missed. */
const CLAIM_SUCCESSOR = claimSql('rt.session_id = $2 AND rt.parent_hash = $1');

interface Presented {
  sessionId: string;
  used: boolean;
  expired: boolean;
  revoked: boolean;
  inGrace: boolean;
}

interface LiveSessionRow extends LivePrincipal {
  id: string;
  userId: string;
}

export function createSessionStore(db: Database, batching: BatcherOptions): SessionStore {
  // Hot lookups, coalesced under load (see batcher.ts). Each is still one primary-key probe per session.
  const liveSession = createBatcher(async (ids: string[], signal) => {
    const rows = await db.read<{ id: string; userId: string }>(
      'SELECT id, user_id AS "userId" FROM sessions WHERE id = ANY($1::uuid[]) AND revoked_at IS NULL',
      [ids],
      signal,
    );
    return new Map(rows.map((r) => [r.id, r.userId]));
  }, batching);
  const livePrincipal = createBatcher(async (ids: string[], signal) => {
    const rows = await db.read<LiveSessionRow>(
      `SELECT s.id, s.user_id AS "userId", u.email, u.roles FROM sessions s JOIN users u ON u.id = s.user_id
       WHERE s.id = ANY($1::uuid[]) AND s.revoked_at IS NULL AND u.deleted_at IS NULL`,
      [ids],
      signal,
    );
    return new Map(rows.map((r) => [r.id, r]));
  }, batching);

  return {
    create: (userId, session) =>
      db.transaction((transaction) => insertSession(db, transaction, userId, session)),

    isActive: async (sessionId, userId, signal) => (await liveSession(sessionId, signal)) === userId,

    async livePrincipal(sessionId, userId, signal) {
      const row = await livePrincipal(sessionId, signal);
      return row && row.userId === userId ? { email: row.email, roles: row.roles } : null;
    },

    rotate: (presentedHash, next, graceS) =>
      db.transaction(async (transaction): Promise<RotateResult> => {
        const issueNext = async (won: { sessionId: string } & UserRecord, outcome: 'rotated' | 'grace') => {
          await db.execute(
            INSERT_REFRESH_TOKEN_SQL,
            [next.hash, won.sessionId, presentedHash, next.expiresAt],
            {
              transaction,
            },
          );
          const { sessionId, ...user } = won;
          return { outcome, sessionId, user };
        };

        const [won] = await db.select<{ sessionId: string } & UserRecord>(CLAIM_PRESENTED, [presentedHash], {
          transaction,
        });
        if (won) return issueNext(won, 'rotated');

        // Not claimable: unknown, expired, ended, or already used. Lock the session to decide.
        const [p] = await db.select<Presented>(
          `SELECT rt.session_id AS "sessionId", rt.used_at IS NOT NULL AS used,
                  rt.expires_at <= now() AS expired, s.revoked_at IS NOT NULL AS revoked,
                  COALESCE(rt.used_at > now() - make_interval(secs => $2), false) AS "inGrace"
           FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id
           WHERE rt.token_hash = $1
           FOR UPDATE OF s`,
          [presentedHash, graceS],
          { transaction },
        );
        if (!p || p.revoked || !p.used) return { outcome: 'invalid' };
        if (graceS > 0 && p.inGrace) {
          const [successor] = await db.select<{ sessionId: string } & UserRecord>(
            CLAIM_SUCCESSOR,
            [presentedHash, p.sessionId],
            { transaction },
          );
          if (successor) return issueNext(successor, 'grace');
        }
        // Replay: whoever holds this token is not the session's legitimate client, or both are
        // racing. End the session; this commits although the caller gets an error.
        await db.execute(
          `UPDATE sessions SET revoked_at = now(), revoke_reason = 'refresh token reuse'
           WHERE id = $1 AND revoked_at IS NULL`,
          [p.sessionId],
          { transaction },
        );
        return { outcome: 'replay' };
      }),

    async endByRefreshToken(hash) {
      await db.execute(
        `UPDATE sessions SET revoked_at = now(), revoke_reason = 'logout'
         WHERE id = (SELECT session_id FROM refresh_tokens WHERE token_hash = $1) AND revoked_at IS NULL`,
        [hash],
      );
    },
  };
}
