/** SQL fragments shared by the stores. */

/** The columns of a UserRecord, optionally qualified with a table alias. */
const userColumns = (alias = '') =>
  `${alias}id, ${alias}email, ${alias}display_name AS "displayName", ${alias}roles,
  ${alias}created_at AS "createTime", ${alias}updated_at AS "updateTime"`;

export const USER_COLUMNS = userColumns();
/** The same columns of the table aliased `u`. */
export const U_USER_COLUMNS = userColumns('u.');

/** Escapes LIKE wildcards so user input is matched literally. */
export const likePrefix = (prefix: string): string => `${prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
