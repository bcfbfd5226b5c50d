import type { Transaction } from 'sequelize';
import { UniqueConstraintError } from 'sequelize';
import { alreadyExists } from '../errors.js';
import type { NewSession, UserCredentials, UserRecord, UserStore } from '../ports.js';
import type { Database } from './database.js';
import {
  END_USER_SESSIONS_SQL,
  INSERT_REFRESH_TOKEN_SQL,
  INSERT_SESSION_SQL,
  likePrefix,
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

export function createUserStore(db: Database): UserStore {
  const one = async <T>(sql: string, bind: unknown[]) => (await db.read<T>(sql, bind))[0] ?? null;

  return {
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

    findById: (id) =>
      one<UserRecord>(`SELECT ${USER_COLUMNS} FROM users WHERE id = $1 AND deleted_at IS NULL`, [id]),

    findByEmail: (email) =>
      one<UserRecord>(`SELECT ${USER_COLUMNS} FROM users WHERE email = $1 AND deleted_at IS NULL`, [email]),

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

    findManyByIds: (ids) =>
      db.read<UserRecord>(
        `SELECT ${USER_COLUMNS} FROM users WHERE id = ANY($1::uuid[]) AND deleted_at IS NULL`,
        [ids],
      ),

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
