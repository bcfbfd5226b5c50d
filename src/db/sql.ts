/** SQL fragments shared by the stores. */

export const USER_COLUMNS = `id, email, display_name AS "displayName", roles,
  created_at AS "createTime", updated_at AS "updateTime"`;

/** The same columns, qualified with the alias `u`. */
export const U_USER_COLUMNS = `u.id, u.email, u.display_name AS "displayName", u.roles,
  u.created_at AS "createTime", u.updated_at AS "updateTime"`;

export const INSERT_SESSION_SQL = 'INSERT INTO sessions (id, user_id, created_at) VALUES ($1, $2, now())';

export const INSERT_REFRESH_TOKEN_SQL = `INSERT INTO refresh_tokens (token_hash, session_id, parent_hash, created_at, expires_at)
  VALUES ($1, $2, $3, now(), $4)`;

export const END_USER_SESSIONS_SQL = `UPDATE sessions SET revoked_at = now(), revoke_reason = $2
  WHERE user_id = $1 AND revoked_at IS NULL`;

/** Escapes LIKE wildcards so user input is matched literally. */
export const likePrefix = (prefix: string): string => `${prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
