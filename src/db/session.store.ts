import type { UserCaller } from '../caller.js';
import type {
  EndedSession,
  RevokeReason,
  RotateResult,
  SessionInfo,
  SessionStore,
  UserRecord,
} from '../ports.js';
import { type BatcherOptions, createBatcher } from './batcher.js';
import type { Database } from './database.js';
import { U_USER_COLUMNS } from './sql.js';

const END_SESSION_SQL =
  'UPDATE sessions SET revoked_at = now(), revoke_reason = $2 WHERE id = $1 AND revoked_at IS NULL';
/** Revoke reasons are a closed union: the compiler refuses any other text. */
const reason = (r: RevokeReason) => r;

const INSERT_REFRESH_TOKEN_SQL = `INSERT INTO refresh_tokens (token_hash, session_id, parent_hash, created_at, expires_at)
  VALUES ($1, $2, $3, now(), $4)`;

/** Marks a live, unexpired refresh token of a live session of an active user as used: the row lock
 * makes exactly one of concurrent callers match. `$1` picks the token(s), see the callers. */
const claimSql = (match: string) => `
  UPDATE refresh_tokens rt SET used_at = now()
  FROM sessions s JOIN users u ON u.id = s.user_id
  WHERE ${match} AND rt.used_at IS NULL AND rt.expires_at > now()
    AND s.id = rt.session_id AND s.revoked_at IS NULL AND u.deleted_at IS NULL
    AND s.created_at > now() - make_interval(secs => $2)
  RETURNING s.id AS "sessionId", ${U_USER_COLUMNS}`;

/** `$1` the presented token's hash, `$2` SESSION_MAX_LIFETIME_S. */
const CLAIM_PRESENTED = claimSql('rt.token_hash = $1');
/** The live token whose parent is the presented one: it was issued by the rotation the caller missed. */
const CLAIM_SUCCESSOR = claimSql('rt.session_id = $3 AND rt.parent_hash = $1');

interface Presented {
  sessionId: string;
  userId: string;
  used: boolean;
  expired: boolean;
  revoked: boolean;
  inGrace: boolean;
}

interface LiveSessionRow {
  id: string;
  userId: string;
  email: string;
  roles: string[];
}

export function createSessionStore(db: Database, batching: BatcherOptions): SessionStore {
  // Hot lookups, coalesced under load (see batcher.ts). Each is still one primary-key probe per session.
  const liveSession = createBatcher(
    {
      async load(ids: string[], signal) {
        const rows = await db.read<LiveSessionRow>(
          `SELECT s.id, s.user_id AS "userId", u.email, u.roles FROM sessions s JOIN users u ON u.id = s.user_id
           WHERE s.id = ANY($1::uuid[]) AND s.revoked_at IS NULL AND u.deleted_at IS NULL`,
          [ids],
          signal,
        );
        return new Map(rows.map((r) => [r.id, r]));
      },
      keyOf: (id) => id,
    },
    batching,
  );

  return {
    async create(userId, session, tx) {
      const write = async (t: typeof tx) => {
        await db.execute(
          `INSERT INTO sessions (id, user_id, created_at, client_address, user_agent)
           VALUES ($1, $2, now(), $3, $4)`,
          [session.sessionId, userId, session.clientAddress, session.userAgent],
          { tx: t },
        );
        await db.execute(
          INSERT_REFRESH_TOKEN_SQL,
          [session.refreshTokenHash, session.sessionId, null, session.refreshExpiresAt],
          { tx: t },
        );
      };
      await (tx ? write(tx) : db.run(write));
    },

    async endAllForUser(userId, reason, tx, exceptSessionId) {
      await db.execute(
        `UPDATE sessions SET revoked_at = now(), revoke_reason = $2
         WHERE user_id = $1 AND revoked_at IS NULL AND id IS DISTINCT FROM $3::uuid`,
        [userId, reason, exceptSessionId ?? null],
        { tx },
      );
    },

    async end(sessionId, userId, why, tx) {
      const n = await db.execute(`${END_SESSION_SQL} AND user_id = $3`, [sessionId, reason(why), userId], {
        tx,
      });
      return n === 1;
    },

    listLive: (userId) =>
      db
        .read<SessionInfo>(
          `SELECT id, created_at AS "createTime", last_refresh_at AS "lastRefreshTime",
                COALESCE(client_address, '') AS "clientAddress", COALESCE(user_agent, '') AS "userAgent"
         FROM sessions WHERE user_id = $1 AND revoked_at IS NULL ORDER BY created_at DESC, id`,
          [userId],
        )
        .then((rows) => rows.map((r) => ({ ...r, lastRefreshTime: r.lastRefreshTime ?? undefined }))),

    async liveCaller(caller: UserCaller, signal) {
      const row = await liveSession(caller.sessionId, signal);
      return row && row.userId === caller.userId ? { ...caller, email: row.email, roles: row.roles } : null;
    },

    async rotate(presentedHash, next, { graceS, maxLifetimeS }, tx): Promise<RotateResult> {
      {
        const issueNext = async (won: { sessionId: string } & UserRecord, outcome: 'rotated' | 'grace') => {
          await db.execute(
            INSERT_REFRESH_TOKEN_SQL,
            [next.hash, won.sessionId, presentedHash, next.expiresAt],
            { tx },
          );
          await db.execute('UPDATE sessions SET last_refresh_at = now() WHERE id = $1', [won.sessionId], {
            tx,
          });
          const { sessionId, ...user } = won;
          return { outcome, sessionId, user };
        };

        const [won] = await db.select<{ sessionId: string } & UserRecord>(
          CLAIM_PRESENTED,
          [presentedHash, maxLifetimeS],
          { tx },
        );
        if (won) return issueNext(won, 'rotated');

        // Not claimable: unknown, expired, ended, or already used. Lock the session to decide.
        const [p] = await db.select<Presented>(
          `SELECT rt.session_id AS "sessionId", s.user_id AS "userId", rt.used_at IS NOT NULL AS used,
                  rt.expires_at <= now() AS expired, s.revoked_at IS NOT NULL AS revoked,
                  COALESCE(rt.used_at > now() - make_interval(secs => $2), false) AS "inGrace"
           FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id
           WHERE rt.token_hash = $1
           FOR UPDATE OF s`,
          [presentedHash, graceS],
          { tx },
        );
        if (!p || p.revoked || !p.used) return { outcome: 'invalid' };
        if (graceS > 0 && p.inGrace) {
          const [successor] = await db.select<{ sessionId: string } & UserRecord>(
            CLAIM_SUCCESSOR,
            [presentedHash, maxLifetimeS, p.sessionId],
            { tx },
          );
          if (successor) return issueNext(successor, 'grace');
        }
        // Replay: whoever holds this token is not the session's legitimate client, or both are
        // racing. End the session; this commits although the caller gets an error.
        await db.execute(END_SESSION_SQL, [p.sessionId, reason('refresh token reuse')], { tx });
        return { outcome: 'replay', sessionId: p.sessionId, userId: p.userId };
      }
    },

    async endByRefreshToken(hash, tx) {
      const [ended] = await db.select<EndedSession>(
        `UPDATE sessions SET revoked_at = now(), revoke_reason = $2
         WHERE id = (SELECT session_id FROM refresh_tokens WHERE token_hash = $1) AND revoked_at IS NULL
         RETURNING id AS "sessionId", user_id AS "userId"`,
        [hash, reason('logout')],
        { tx },
      );
      return ended ?? null;
    },
  };
}
