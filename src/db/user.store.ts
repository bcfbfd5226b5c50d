import { UniqueConstraintError } from 'sequelize';
import type { UserCaller } from '../caller.js';
import { alreadyExists } from '../errors.js';
import type { ListQuery, UserCredentials, UserRecord, UserStore } from '../ports.js';
import { type BatcherOptions, createBatcher } from './batcher.js';
import type { Database } from './database.js';
import { likePrefix, U_USER_COLUMNS, USER_COLUMNS } from './sql.js';

const EMAIL_TAKEN = 'an account with this email already exists';

const rethrowUnique = (err: unknown): never => {
  if (err instanceof UniqueConstraintError) throw alreadyExists(EMAIL_TAKEN);
  throw err;
};

const BY_IDS_SQL = `SELECT ${USER_COLUMNS} FROM users WHERE id = ANY($1::uuid[]) AND deleted_at IS NULL`;
const BY_EMAILS_SQL = `SELECT ${USER_COLUMNS} FROM users WHERE email = ANY($1::text[]) AND deleted_at IS NULL`;
const CREDENTIALS_BY = (column: 'id' | 'email') =>
  `SELECT ${USER_COLUMNS}, password_hash AS "passwordHash" FROM users WHERE ${column} = $1 AND deleted_at IS NULL`;

/** GetUser's lookup: whose session asks, and for whom. */
interface ForCallerKey {
  sessionId: string;
  userId: string;
  target: string;
}
type ForCallerRow = UserRecord & { i: number; callerEmail: string | null; callerRoles: string[] | null };

/**
 * One statement that both checks a caller's session (returning the caller's current email and
 * roles, null when the session is not live) and reads the target (GetUser): for a single lookup a
 * plain statement whose generic plan PostgreSQL caches (an `unnest` join is re-planned on every
 * execution, ~2 ms of planning); for a batch the `unnest` form, planned once per batch. Rows come
 * back numbered (`i`, 1-based) in the order of the keys.
 */
const forCallerOneSql = (column: 'id' | 'email') => `
  SELECT 1 AS i, cu.email AS "callerEmail", cu.roles AS "callerRoles", ${U_USER_COLUMNS}
  FROM (SELECT 1) AS one
  LEFT JOIN (sessions s JOIN users cu ON cu.id = s.user_id AND cu.deleted_at IS NULL)
    ON s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL
  LEFT JOIN users u ON u.${column} = $3 AND u.deleted_at IS NULL`;

const forCallerBatchSql = (targetType: 'uuid' | 'text', column: 'id' | 'email') => `
  SELECT k.i::int AS i, cu.email AS "callerEmail", cu.roles AS "callerRoles", ${U_USER_COLUMNS}
  FROM unnest($1::uuid[], $2::uuid[], $3::${targetType}[]) WITH ORDINALITY AS k(sid, uid, target, i)
  LEFT JOIN (sessions s JOIN users cu ON cu.id = s.user_id AND cu.deleted_at IS NULL)
    ON s.id = k.sid AND s.user_id = k.uid AND s.revoked_at IS NULL
  LEFT JOIN users u ON u.${column} = k.target AND u.deleted_at IS NULL`;

/** The statement `list` sends, with its parameters (exported so a test can EXPLAIN exactly it). */
export function listStatement({ afterId, prefix, limit }: ListQuery): { text: string; values: unknown[] } {
  const where = ['deleted_at IS NULL'];
  const values: unknown[] = [];
  if (afterId) {
    values.push(afterId);
    where.push(`(created_at, id) > (SELECT created_at, id FROM users WHERE id = $${values.length})`);
  }
  if (prefix) {
    values.push(likePrefix(prefix.text));
    // served by users_display_name_prefix_idx and users_email_prefix_idx (text_pattern_ops)
    where.push(
      prefix.of === 'name'
        ? `lower(display_name) LIKE $${values.length}`
        : `(email LIKE $${values.length} OR lower(display_name) LIKE $${values.length})`,
    );
  }
  values.push(limit);
  return {
    text: `SELECT ${USER_COLUMNS} FROM users WHERE ${where.join(' AND ')} ORDER BY created_at, id LIMIT $${values.length}`,
    values,
  };
}

export function createUserStore(db: Database, batching: BatcherOptions): UserStore {
  const one = async <T>(sql: string, bind: unknown[], signal?: AbortSignal) =>
    (await db.read<T>(sql, bind, signal))[0] ?? null;
  const byKey = (rows: UserRecord[], key: 'id' | 'email') => new Map(rows.map((u) => [u[key], u]));
  const byId = createBatcher(
    { load: async (ids: string[]) => byKey(await db.read(BY_IDS_SQL, [ids]), 'id'), keyOf: (id) => id },
    batching,
  );
  const byEmail = createBatcher(
    {
      load: async (emails: string[]) => byKey(await db.read(BY_EMAILS_SQL, [emails]), 'email'),
      keyOf: (email) => email,
    },
    batching,
  );

  const forCaller = (targetType: 'uuid' | 'text', column: 'id' | 'email') => {
    const batchSql = forCallerBatchSql(targetType, column);
    const oneSql = forCallerOneSql(column);
    const keyOf = (k: ForCallerKey) => `${k.sessionId}\u0000${k.userId}\u0000${k.target}`;
    return createBatcher(
      {
        keyOf,
        async load(keys: ForCallerKey[], signal) {
          const [first] = keys;
          const rows =
            keys.length === 1 && first
              ? await db.read<ForCallerRow>(oneSql, [first.sessionId, first.userId, first.target], signal)
              : await db.read<ForCallerRow>(
                  batchSql,
                  [keys.map((k) => k.sessionId), keys.map((k) => k.userId), keys.map((k) => k.target)],
                  signal,
                );
          return new Map(
            rows.map(({ i, callerEmail, callerRoles, ...u }) => [
              keyOf(keys[i - 1] as ForCallerKey),
              {
                current: callerEmail === null ? null : { email: callerEmail, roles: callerRoles ?? [] },
                user: u.id === null ? null : (u as UserRecord),
              },
            ]),
          );
        },
      },
      batching,
    );
  };
  const forCallerById = forCaller('uuid', 'id');
  const forCallerByEmail = forCaller('text', 'email');

  return {
    async findForCaller(lookup, caller: UserCaller, signal) {
      const { sessionId, userId } = caller;
      const found = await ('id' in lookup
        ? forCallerById({ sessionId, userId, target: lookup.id }, signal)
        : forCallerByEmail({ sessionId, userId, target: lookup.email }, signal));
      return {
        caller: found?.current ? { ...caller, ...found.current } : null,
        user: found?.user ?? null,
      };
    },

    async insert(user, tx) {
      const [created] = await db
        .select<UserRecord>(
          `INSERT INTO users (id, email, password_hash, display_name, roles, created_at, updated_at)
           VALUES ($1, $2, $3, $4, ARRAY['user'], now(), now())
           RETURNING ${USER_COLUMNS}`,
          [user.id, user.email, user.passwordHash, user.displayName],
          { tx },
        )
        .catch(rethrowUnique);
      return created as UserRecord;
    },

    findById: async (id) => (await byId(id)) ?? null,
    findByEmail: async (email) => (await byEmail(email)) ?? null,
    findCredentialsByEmail: (email, signal) => one<UserCredentials>(CREDENTIALS_BY('email'), [email], signal),
    findCredentialsById: (id, signal) => one<UserCredentials>(CREDENTIALS_BY('id'), [id], signal),
    findManyByIds: (ids) => db.read<UserRecord>(BY_IDS_SQL, [ids]),

    list(query) {
      const { text, values } = listStatement(query);
      return db.read<UserRecord>(text, values);
    },

    async upgradePasswordHash(id, expected, next) {
      const n = await db.execute(
        'UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2 AND deleted_at IS NULL',
        [id, expected, next],
      );
      return n === 1;
    },

    async changePasswordHash(id, expected, next, tx) {
      const n = await db.execute(
        `UPDATE users SET password_hash = $3, updated_at = now()
         WHERE id = $1 AND password_hash = $2 AND deleted_at IS NULL`,
        [id, expected, next],
        { tx },
      );
      return n === 1;
    },

    async update(id, patch, tx) {
      const [updated] = await db
        .select<UserRecord>(
          `UPDATE users SET
             email = COALESCE($2, email),
             display_name = COALESCE($3, display_name),
             roles = COALESCE($4::text[], roles),
             updated_at = now()
           WHERE id = $1 AND deleted_at IS NULL
           RETURNING ${USER_COLUMNS}`,
          [id, patch.email ?? null, patch.displayName ?? null, patch.roles ?? null],
          { tx },
        )
        .catch(rethrowUnique);
      return updated ?? null;
    },

    async lockAdmins(tx) {
      const rows = await db.select<{ id: string }>(
        `SELECT id FROM users WHERE 'admin' = ANY(roles) AND deleted_at IS NULL ORDER BY id FOR UPDATE`,
        [],
        { tx },
      );
      return rows.map((r) => r.id);
    },

    async softDelete(id, tx) {
      const n = await db.execute(
        'UPDATE users SET deleted_at = now(), updated_at = now() WHERE id = $1 AND deleted_at IS NULL',
        [id],
        { tx },
      );
      return n === 1;
    },
  };
}
