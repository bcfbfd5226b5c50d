/**
 * Opens the database the configuration names: DATABASE_URL, or else the embedded PostgreSQL under
 * DATA_DIR (optionally the one a running server already started there); then checks it answers
 * and prepares its schema: with DB_SYNC it applies the pending migrations (src/db/migrate.ts),
 * without it refuses a database that has any pending. The one way the server, the cluster primary
 * and the operator command reach their database.
 */
import type { AppConfig } from '../config.js';
import type { Logger } from '../logger.js';
import {
  createDatabase,
  type Database,
  type DbConfig,
  explainStartupRefusal,
  type PoolObserver,
} from './database.js';
import { attachEmbeddedPostgres, type EmbeddedPostgres, startEmbeddedPostgres } from './embedded.js';
import { applyMigrations, type MigrationProgress, requireMigrated } from './migrate.js';
import { explainTlsFailure, productionTlsWarning } from './tls.js';
import { connectionOptions } from './url.js';

export interface OpenedDatabase {
  /** Where it is (for processes that open their own pool, such as cluster workers). */
  url: string;
  db: Database;
  /** Set when this process started the embedded database (and so must stop it). */
  embedded: EmbeddedPostgres | undefined;
  /**
   * Applies the pending migrations (one transaction under the schema lock) on a connection of its
   * own without DB_STATEMENT_TIMEOUT_MS: waiting for another instance's schema change, or a long
   * migration, is not a stuck query. Resolves with the names applied.
   */
  migrate(onProgress?: (progress: MigrationProgress) => void): Promise<string[]>;
  /** Closes the pool, then stops the embedded database if this process started it. */
  close(): Promise<void>;
}

export type OpenConfig = DbConfig &
  Pick<AppConfig, 'DATABASE_URL' | 'DATA_DIR' | 'EMBEDDED_PG_PORT' | 'NODE_ENV'>;

export async function openDatabase(
  config: OpenConfig,
  logger: Logger,
  options: {
    attachToRunningServer?: boolean;
    /** 'leave': neither apply nor check migrations (the migrate command does that itself). */
    schema?: 'by-config' | 'leave';
    poolObserver?: PoolObserver;
  } = {},
): Promise<OpenedDatabase> {
  let url =
    config.DATABASE_URL || (options.attachToRunningServer ? attachEmbeddedPostgres(config.DATA_DIR) : null);
  let embedded: EmbeddedPostgres | undefined;
  if (!url) {
    embedded = await startEmbeddedPostgres({
      dataDir: config.DATA_DIR,
      port: config.EMBEDDED_PG_PORT,
      logger,
      logStatements: config.DB_ECHO,
    });
    url = embedded.url;
  }
  const { tls, host, username } = connectionOptions(url);
  const warning = config.NODE_ENV === 'production' ? productionTlsWarning(tls, host) : null;
  if (warning) logger.warn(warning);
  const db = createDatabase(url, config, logger, options.poolObserver);
  const close = async () => {
    try {
      await db.close();
    } finally {
      await embedded?.stop();
    }
  };
  const migrate = async (onProgress?: (progress: MigrationProgress) => void) => {
    const schemaDb = createDatabase(
      url,
      { ...config, DB_POOL_MIN: 0, DB_POOL_MAX: 1, DB_STATEMENT_TIMEOUT_MS: 0 },
      logger,
    );
    try {
      const { applied, unknown } = await applyMigrations(schemaDb, { onProgress });
      // the embedded database gives the audit trail to its owner role itself (migration 0005)
      await embedded?.secureAuditTrail();
      if (unknown.length) {
        logger.warn(
          { unknown },
          'the database has migrations this version does not know (a newer version applied them)',
        );
      }
      return applied;
    } finally {
      await schemaDb.close();
    }
  };
  try {
    await db.ping();
    if (options.schema !== 'leave') {
      if (!config.DB_SYNC) await requireMigrated(db);
      else {
        const applied = await migrate((p) => {
          if (p.event === 'ran') logger.info({ migration: p.name, ms: p.ms }, 'migration ran');
        });
        if (applied.length) logger.info({ applied }, 'schema migrated');
        else logger.debug('schema up to date');
      }
      await embedded?.secureAuditTrail();
    }
  } catch (err) {
    await close();
    // A certificate that does not verify, a server without TLS, a missing file, a startup
    // parameter PgBouncer refuses: said plainly.
    const problem =
      explainTlsFailure(err, tls, host) ??
      explainStartupRefusal(err, {
        role: username,
        statementTimeoutMs: config.DB_STATEMENT_TIMEOUT_MS,
      });
    throw problem ? new Error(problem) : err;
  }
  return { url, db, embedded, migrate, close };
}
