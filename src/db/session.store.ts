import type { SessionStore } from '../ports.js';
import type { Database } from './database.js';
import { INSERT_REFRESH_TOKEN_SQL, INSERT_SESSION_SQL } from './user.store.js';

export function createSessionStore(db: Database): SessionStore {
  return {
    async create(userId, session) {
      await db.transaction(async (transaction) => {
        await db.execute(INSERT_SESSION_SQL, [session.sessionId, userId], { transaction });
        await db.execute(
          INSERT_REFRESH_TOKEN_SQL,
          [session.refreshTokenHash, session.sessionId, session.refreshExpiresAt],
          { transaction },
        );
      });
    },

    async isActive(sessionId, userId) {
      const rows = await db.select<{ ok: number }>(
        'SELECT 1 AS ok FROM sessions WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL',
        [sessionId, userId],
      );
      return rows.length === 1;
    },
  };
}
