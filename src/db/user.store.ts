import type { Transaction } from 'sequelize';
import { UniqueConstraintError } from 'sequelize';
import { alreadyExists } from '../errors.js';
import type { NewSession, UserCredentials, UserRecord, UserStore } from '../ports.js';
import { type BatcherOptions, createBatcher } from './batcher.js';
import type { Database } from './database.js';
import {
  END_USER_SESSIONS_SQL,
  INSERT_REFRESH_TOKEN_SQL,
  INSERT_SESSION_SQL,
  likePrefix,
  U_USER_COLUMNS,
  USER_COLUMNS,
} from './sql.js';

const EMAIL_TAKEN = 'an account with this email already exists';

/** Inserts a session and its first refresh token inside `transaction`. */
export async function insertSession(db: Database, transaction: Transaction, userId: string, s: NewSession) {
  await db.execute(INSERT_SESSION_SQL, [s.sessionId, userId], { transaction });
  await db.execute(INSERT_REFRESH_TOKEN_SQL, [s.refreshTokenHash, s.sessionId, null, s.refreshExpiresAt], {
    transaction,
  });
}

const rethrowUnique = (err: unknown): never => {
  if (err instanceof UniqueConstraintError) throw alreadyExists(EMAIL_TAKEN);
  throw err;
};

const BY_IDS_SQL = `SELECT ${USER_COLUMNS} FROM users WHERE id = ANY($1::uuid[]) AND deleted_at IS NULL`;

type ForCallerRow = UserRecord & { k: string; live: boolean };

const LIVE_SESSION = `EXISTS (SELECT 1 FROM sessions s JOIN users cu ON cu.id = s.user_id
  WHERE s.id = $2 AND s.user_id = $3 AND s.revoked_at IS NULL AND cu.deleted_at IS NULL)`;

/**
 * One statement that both checks a caller's session and reads the target (GetUser): for a single
 * lookup a plain statement whose generic plan PostgreSQL caches (an `unnest` join is re-planned on
 * every execution, ~2 ms of planning); for a batch the `unnest` form, planned once per batch.
 */
const forCallerOneSql = (column: 'id' | 'email') => `
  SELECT $1::text AS k, ${LIVE_SESSION} AS live, ${U_USER_COLUMNS}
  FROM (SELECT 1) AS one LEFT JOIN users u ON u.${column} = $4 AND u.deleted_at IS NULL`;

const forCallerSql = (targetType: 'uuid' | 'text', column: 'id' | 'email') => `
  SELECT k.k, (s.id IS NOT NULL) AS live, ${U_USER_COLUMNS}
  FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::${targetType}[]) AS k(k, sid, uid, target)
  LEFT JOIN sessions s ON s.id = k.sid AND s.user_id = k.uid AND s.revoked_at IS NULL
    AND EXISTS (SELECT 1 FROM users cu WHERE cu.id = k.uid AND cu.deleted_at IS NULL)
  LEFT JOIN users u ON u.${column} = k.target AND u.deleted_at IS NULL`;

export function createUserStore(db: Database, batching: BatcherOptions): UserStore {
  const one = async <T>(sql: string, bind: unknown[]) => (await db.read<T>(sql, bind))[0] ?? null;
  // GetUser's lookups, coalesced under load (see batcher.ts)
  const byId = createBatcher(
    async (ids: string[]) => new Map((await db.read<UserRecord>(BY_IDS_SQL, [ids])).map((u) => [u.id, u])),
    batching,
  );
  const byEmail = createBatcher(async (emails: string[]) => {
    const rows = await db.read<UserRecord>(
      `SELECT ${USER_COLUMNS} FROM users WHERE email = ANY($1::text[]) AND deleted_at IS NULL`,
      [emails],
    );
    return new Map(rows.map((u) => [u.email, u]));
  }, batching);

  const forCaller = (targetType: 'uuid' | 'text', column: 'id' | 'email') => {
    const batchSql = forCallerSql(targetType, column);
    const oneSql = forCallerOneSql(column);
    return createBatcher(async (keys: string[], signal) => {
      const parts = keys.map((k) => k.split(' '));
      const [first] = parts;
      const rows =
        keys.length === 1 && first
          ? await db.read<ForCallerRow>(
              oneSql,
              [keys[0], first[0], first[1], first.slice(2).join(' ')],
              signal,
            )
          : await db.read<ForCallerRow>(
              batchSql,
              [keys, parts.map((p) => p[0]), parts.map((p) => p[1]), parts.map((p) => p.slice(2).join(' '))],
              signal,
            );
      return new Map(
        rows.map(({ k, live, ...u }) => [
          k,
          { callerLive: live, user: u.id === null ? null : (u as UserRecord) },
        ]),
      );
    }, batching);
  };
  const forCallerById = forCaller('uuid', 'id');
  const forCallerByEmail = forCaller('text', 'email');

  return {
    async findForCaller(lookup, caller, signal) {
      const target = 'id' in lookup ? lookup.id : lookup.email;
      const key = `${caller.sessionId} ${caller.userId} ${target}`;
      const found = await ('id' in lookup ? forCallerById(key, signal) : forCallerByEmail(key, signal));
      return found ?? { callerLive: false, user: null };
    },

    createWithSession: (user, session) =>
      db
        .transaction(async (transaction) => {
          const [created] = await db.select<UserRecord>(
            `INSERT INTO users (id, email, password_hash, display_name, roles, created_at, updated_at)
             VALUES ($1, $2, $3, $4, ARRAY['user'], now(), now())
             RETURNING ${USER_COLUMNS}`,
            [user.id, user.email, user.passwordHash, user.displayName],
            { transaction },
          );
          await insertSession(db, transaction, user.id, session);
          return created as UserRecord;
        })
        .catch(rethrowUnique),

    findById: async (id) => (await byId(id)) ?? null,

    findByEmail: async (email) => (await byEmail(email)) ?? null,

    findCredentialsByEmail: (email) =>
      one<UserCredentials>(
        `SELECT ${USER_COLUMNS}, password_hash AS "passwordHash" FROM users WHERE email = $1 AND deleted_at IS NULL`,
        [email],
      ),

    findCredentialsById: (id) =>
      one<UserCredentials>(
        `SELECT ${USER_COLUMNS}, password_hash AS "passwordHash" FROM users WHERE id = $1 AND deleted_at IS NULL`,
        [id],
      ),

    findManyByIds: (ids) => db.read<UserRecord>(BY_IDS_SQL, [ids]),

    list({ afterId, prefix, limit }) {
      const where = ['deleted_at IS NULL'];
      const bind: unknown[] = [];
      if (afterId) {
        bind.push(afterId);
        where.push(`(created_at, id) > (SELECT created_at, id FROM users WHERE id = $${bind.length})`);
      }
      if (prefix) {
        bind.push(likePrefix(prefix));
        // served by users_email_prefix_idx and users_display_name_prefix_idx (text_pattern_ops)
        where.push(`(email LIKE $${bind.length} OR lower(display_name) LIKE $${bind.length})`);
      }
      bind.push(limit);
      return db.read<UserRecord>(
        `SELECT ${USER_COLUMNS} FROM users WHERE ${where.join(' AND ')} ORDER BY created_at, id LIMIT $${bind.length}`,
        bind,
      );
    },

    async replacePasswordHash(id, expected, next) {
      const n = await db.execute(
        'UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2 AND deleted_at IS NULL',
        [id, expected, next],
      );
      return n === 1;
    },

    changePassword: (id, expected, next, session) =>
      db.transaction(async (transaction) => {
        const n = await db.execute(
          `UPDATE users SET password_hash = $3, updated_at = now()
           WHERE id = $1 AND password_hash = $2 AND deleted_at IS NULL`,
          [id, expected, next],
          { transaction },
        );
        if (n !== 1) return false;
        await db.execute(END_USER_SESSIONS_SQL, [id, 'password change'], { transaction });
        await insertSession(db, transaction, id, session);
        return true;
      }),

    update: (id, patch, { endSessions }) =>
      db
        .transaction(async (transaction) => {
          const [updated] = await db.select<UserRecord>(
            `UPDATE users SET
               email = COALESCE($2, email),
               display_name = COALESCE($3, display_name),
               roles = COALESCE($4::text[], roles),
               updated_at = now()
             WHERE id = $1 AND deleted_at IS NULL
             RETURNING ${USER_COLUMNS}`,
            [id, patch.email ?? null, patch.displayName ?? null, patch.roles ?? null],
            { transaction },
          );
          if (updated && endSessions)
            await db.execute(END_USER_SESSIONS_SQL, [id, 'roles reduced'], { transaction });
          return updated ?? null;
        })
        .catch(rethrowUnique),

    softDelete: (id) =>
      db.transaction(async (transaction) => {
        const n = await db.execute(
          'UPDATE users SET deleted_at = now(), updated_at = now() WHERE id = $1 AND deleted_at IS NULL',
          [id],
          { transaction },
        );
        if (n !== 1) return false;
        await db.execute(END_USER_SESSIONS_SQL, [id, 'user deleted'], { transaction });
        return true;
      }),
  };
}
