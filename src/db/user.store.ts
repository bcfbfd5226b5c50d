import { UniqueConstraintError } from 'sequelize';
import { alreadyExists } from '../errors.js';
import type { NewSession, UserCredentials, UserRecord, UserStore } from '../ports.js';
import type { Database } from './database.js';

const USER_COLUMNS = `id, email, display_name AS "displayName", roles,
  created_at AS "createTime", updated_at AS "updateTime"`;

export const INSERT_SESSION_SQL = `INSERT INTO sessions (id, user_id, created_at) VALUES ($1, $2, now())`;
export const INSERT_REFRESH_TOKEN_SQL = `INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at)
  VALUES ($1, $2, now(), $3)`;

export function createUserStore(db: Database): UserStore {
  return {
    async createWithSession(user, session: NewSession) {
      try {
        return await db.transaction(async (transaction) => {
          const [created] = await db.select<UserRecord>(
            `INSERT INTO users (id, email, password_hash, display_name, roles, created_at, updated_at)
             VALUES ($1, $2, $3, $4, ARRAY['user'], now(), now())
             RETURNING ${USER_COLUMNS}`,
            [user.id, user.email, user.passwordHash, user.displayName],
            { transaction },
          );
          await db.execute(INSERT_SESSION_SQL, [session.sessionId, user.id], { transaction });
          await db.execute(
            INSERT_REFRESH_TOKEN_SQL,
            [session.refreshTokenHash, session.sessionId, session.refreshExpiresAt],
            { transaction },
          );
          return created as UserRecord;
        });
      } catch (err) {
        if (err instanceof UniqueConstraintError)
          throw alreadyExists('an account with this email already exists');
        throw err;
      }
    },

    async findById(id) {
      const rows = await db.select<UserRecord>(
        `SELECT ${USER_COLUMNS} FROM users WHERE id = $1 AND deleted_at IS NULL`,
        [id],
      );
      return rows[0] ?? null;
    },

    async findByEmail(email) {
      const rows = await db.select<UserRecord>(
        `SELECT ${USER_COLUMNS} FROM users WHERE email = $1 AND deleted_at IS NULL`,
        [email],
      );
      return rows[0] ?? null;
    },

    async findCredentialsByEmail(email) {
      const rows = await db.select<UserCredentials>(
        `SELECT ${USER_COLUMNS}, password_hash AS "passwordHash" FROM users WHERE email = $1 AND deleted_at IS NULL`,
        [email],
      );
      return rows[0] ?? null;
    },

    async replacePasswordHash(id, expected, next) {
      const n = await db.execute(
        `UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2 AND deleted_at IS NULL`,
        [id, expected, next],
      );
      return n === 1;
    },
  };
}
