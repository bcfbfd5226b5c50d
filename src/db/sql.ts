/** SQL fragments shared by the stores. */

/** The columns of a UserRecord, optionally qualified with a table alias. */
const userColumns = (alias = '') =>
  `${alias}id, ${alias}email, ${alias}display_name AS "displayName", ${alias}roles,
  ${alias}created_at AS "createTime", ${alias}updated_at AS "updateTime"`;

export const USER_COLUMNS = userColumns();
/** The same columns of the table aliased `u`. */
export const U_USER_COLUMNS = userColumns('u.');

export const INSERT_SESSION_SQL = 'INSERT INTO sessions (id, user_id, created_at) VALUES ($1, $2, now())';

export const INSERT_REFRESH_TOKEN_SQL = `INSERT INTO refresh_tokens (token_hash, session_id, parent_hash, created_at, expires_at)
  VALUES ($1, $2, $3, now(), $4)`;

export const END_USER_SESSIONS_SQL = `UPDATE sessions SET revoked_at = now(), revoke_reason = $2
  WHERE user_id = $1 AND revoked_at IS NULL`;

/** Escapes LIKE wildcards so user input is matched literally. */
export const likePrefix = (prefix: string): string => `${prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
