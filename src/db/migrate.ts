/**
 * The schema's versions (src/db/migrations/), applied by umzug. One schema change is one
 * transaction: it first takes a transaction-scoped advisory lock (so it also works behind PgBouncer
 * in transaction pooling mode), then creates `schema_migrations` if missing, then runs every pending
 * migration and records each in `schema_migrations`, and commits. Instances that start together on
 * one database queue on the lock; each one after the first finds nothing pending. A migration that
 * fails rolls back the whole change: nothing is applied, nothing recorded.
 */
import { MigrationError, Umzug, type UmzugStorage } from 'umzug';
import { AppError, failedPrecondition } from '../errors.js';
import type { Database } from './database.js';
import { MIGRATIONS } from './migrations/index.js';
import type { Migration, MigrationContext } from './migrations/migration.js';

/**
 * `pg_advisory_xact_lock` key of schema changes: "cs-schem" as a 64-bit number, the same on every
 * instance and distinct from housekeeping's 0x63737072. A string: a JavaScript number cannot hold it.
 */
export const SCHEMA_LOCK = BigInt('0x63732d736368656d').toString();

const CREATE_TABLE = `CREATE TABLE IF NOT EXISTS schema_migrations (
  name text PRIMARY KEY,
  applied_at timestamptz NOT NULL DEFAULT now()
)`;

export type MigrationProgress =
  | { event: 'running'; name: string }
  | { event: 'ran'; name: string; ms: number };

export interface MigrationOptions {
  /** This version's migrations (tests add their own). */
  migrations?: readonly Migration[];
  /** Called before and after each migration (before the commit: a later failure rolls it back). */
  onProgress?: (progress: MigrationProgress) => void;
}

export interface MigrationStatus {
  /** Recorded in `schema_migrations`, in the order they were applied. */
  applied: { name: string; appliedAt: Date }[];
  /** Of this version's migrations, those not applied yet, in the order they will apply. */
  pending: string[];
  /** Applied but not among this version's migrations: a newer version migrated this database. */
  unknown: string[];
}

/** schema_migrations as umzug's storage, on the change's transaction. */
function tableStorage(query: MigrationContext['query']): UmzugStorage<MigrationContext> {
  return {
    async executed() {
      return (await query<{ name: string }>('SELECT name FROM schema_migrations')).map((r) => r.name);
    },
    async logMigration({ name }) {
      await query('INSERT INTO schema_migrations (name) VALUES ($1)', [name]);
    },
    async unlogMigration({ name }) {
      await query('DELETE FROM schema_migrations WHERE name = $1', [name]);
    },
  };
}

/**
 * Applies the pending migrations in one transaction under the schema lock; resolves with the names
 * applied (none when the schema was up to date) once committed.
 */
export function applyMigrations(
  db: Database,
  { migrations = MIGRATIONS, onProgress }: MigrationOptions = {},
): Promise<{ applied: string[]; unknown: string[] }> {
  return db.run(async (tx) => {
    const query: MigrationContext['query'] = (sql, bind) => db.select(sql, bind, { tx });
    await query('SELECT pg_advisory_xact_lock($1::bigint)', [SCHEMA_LOCK]);
    await query(CREATE_TABLE);
    const storage = tableStorage(query);
    const umzug = new Umzug<MigrationContext>({
      migrations: migrations.map((m) => ({ ...m })),
      context: { query },
      storage,
      logger: undefined,
    });
    const started = new Map<string, number>();
    umzug.on('migrating', ({ name }) => {
      started.set(name, Date.now());
      onProgress?.({ event: 'running', name });
    });
    umzug.on('migrated', ({ name }) => {
      onProgress?.({ event: 'ran', name, ms: Date.now() - (started.get(name) ?? Date.now()) });
    });
    let applied: string[];
    try {
      applied = (await umzug.up()).map((m) => m.name);
    } catch (err) {
      if (!(err instanceof MigrationError)) throw err;
      const cause = err.cause instanceof Error ? err.cause.message : String(err.cause);
      throw failedPrecondition(
        `migration ${err.migration.name} failed, so none was applied (rolled back): ${cause}`,
      );
    }
    const known = new Set(migrations.map((m) => m.name));
    const unknown = (await storage.executed({ context: { query } })).filter((n) => !known.has(n)).sort();
    return { applied, unknown };
  });
}

/** What is applied and what is pending; reads only (no lock, creates nothing). */
export async function migrationStatus(
  db: Database,
  migrations: readonly Migration[] = MIGRATIONS,
): Promise<MigrationStatus> {
  const [table] = await db.select<{ present: boolean }>(
    "SELECT to_regclass('schema_migrations') IS NOT NULL AS present",
  );
  const rows = table?.present
    ? await db.select<{ name: string; applied_at: Date }>(
        'SELECT name, applied_at FROM schema_migrations ORDER BY applied_at, name',
      )
    : [];
  const done = new Set(rows.map((r) => r.name));
  const known = new Set(migrations.map((m) => m.name));
  return {
    applied: rows.map((r) => ({ name: r.name, appliedAt: r.applied_at })),
    pending: migrations.map((m) => m.name).filter((n) => !done.has(n)),
    unknown: rows.map((r) => r.name).filter((n) => !known.has(n)),
  };
}

/** The start-up refusal with DB_SYNC=false while migrations are pending. */
export class PendingMigrationsError extends AppError {
  constructor(readonly pending: string[]) {
    super(
      'FAILED_PRECONDITION',
      `the database schema is not up to date: ${pending.length} pending migration${pending.length === 1 ? '' : 's'} ` +
        `(${pending.join(', ')}); run \`npm run migrate\` (or start with DB_SYNC=true)`,
    );
    this.name = 'PendingMigrationsError';
  }
}

/** DB_SYNC=false: throws PendingMigrationsError naming what is pending. */
export async function requireMigrated(db: Database, migrations: readonly Migration[] = MIGRATIONS) {
  const { pending } = await migrationStatus(db, migrations);
  if (pending.length) throw new PendingMigrationsError(pending);
}
