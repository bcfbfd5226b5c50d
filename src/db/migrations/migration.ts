/**
 * What a migration is: a file `NNNN-what-it-does.ts` in this folder exporting `up` (and `down` only
 * when reverting is cheap and loses nothing), listed in `index.ts`. umzug calls `up({ context })`.
 *
 * Every migration runs inside the one transaction of a schema change (src/db/migrate.ts), under the
 * schema advisory lock, together with the other pending ones and the rows that record them in
 * `schema_migrations`: all of them apply or none does. So a migration may not use what PostgreSQL
 * refuses inside a transaction (`CREATE INDEX CONCURRENTLY`, `VACUUM`, `ALTER TYPE ... ADD VALUE`
 * before PostgreSQL 12, ...); such migrations are not supported. The statements run without a
 * statement timeout (DB_STATEMENT_TIMEOUT_MS does not apply to schema changes).
 */

export interface MigrationContext {
  /**
   * Runs one statement in the migration transaction and returns its rows (none for DDL). `bind`
   * fills `$1`, `$2`, ...; without it the text is sent as it is (dollar quoting works).
   */
  query<T = Record<string, unknown>>(sql: string, bind?: unknown[]): Promise<T[]>;
}

export type MigrationFn = (params: { name: string; context: MigrationContext }) => Promise<void>;

export interface Migration {
  /** The file's name without `.ts`: its identity in `schema_migrations`, never changed once released. */
  name: string;
  up: MigrationFn;
  down?: MigrationFn;
}
