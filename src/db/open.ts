/**
 * Opens the database the configuration names: DATABASE_URL, or else the embedded PostgreSQL under
 * DATA_DIR (optionally the one a running server already started there); then checks it answers
 * and, with DB_SYNC, creates what is missing. The one way the server, the cluster primary and the
 * operator command reach their database.
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
import { explainTlsFailure, productionTlsWarning } from './tls.js';
import { connectionOptions } from './url.js';

export interface OpenedDatabase {
  /** Where it is (for processes that open their own pool, such as cluster workers). */
  url: string;
  db: Database;
  /** Set when this process started the embedded database (and so must stop it). */
  embedded: EmbeddedPostgres | undefined;
  /** Closes the pool, then stops the embedded database if this process started it. */
  close(): Promise<void>;
}

export type OpenConfig = DbConfig &
  Pick<AppConfig, 'DATABASE_URL' | 'DATA_DIR' | 'EMBEDDED_PG_PORT' | 'NODE_ENV'>;

export async function openDatabase(
  config: OpenConfig,
  logger: Logger,
  options: { attachToRunningServer?: boolean; poolObserver?: PoolObserver } = {},
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
  try {
    await db.ping();
    if (config.DB_SYNC) await db.sync();
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
  return { url, db, embedded, close };
}
