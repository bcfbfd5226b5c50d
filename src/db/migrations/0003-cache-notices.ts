/**
 * Cache invalidation notices (src/db/cache.ts, src/db/listener.ts): every change that can make a
 * cached answer wrong sends `pg_notify('connectsphere_cache', name)` from a trigger, in the changing
 * transaction, so the notice is delivered exactly when (and only if) the change commits, whatever
 * made it: this service, the operator command, a migration or a hand-written statement.
 *
 * Names: `s:<session id>` when a session is ended (revoked_at set or changed) or deleted;
 * `u:<user id>` when a user row changes in any way or is deleted (its cached record and every
 * cached session of that user, which carry its email and roles); `a:<service account id>` when a
 * service account changes or is deleted. PostgreSQL folds identical notices of one transaction
 * into one.
 */
import type { MigrationFn } from './migration.js';

// frozen with this migration: src/db/listener.ts's CACHE_CHANNEL must stay the same name
const CACHE_CHANNEL = 'connectsphere_cache';

const STATEMENTS = [
  `CREATE FUNCTION cache_notice() RETURNS trigger LANGUAGE plpgsql AS $$
   BEGIN
     PERFORM pg_notify('${CACHE_CHANNEL}', TG_ARGV[0] || ':' || OLD.id::text);
     RETURN NULL;
   END $$`,
  `CREATE TRIGGER sessions_cache_notice AFTER UPDATE ON sessions
     FOR EACH ROW WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at)
     EXECUTE FUNCTION cache_notice('s')`,
  `CREATE TRIGGER sessions_cache_notice_delete AFTER DELETE ON sessions
     FOR EACH ROW EXECUTE FUNCTION cache_notice('s')`,
  `CREATE TRIGGER users_cache_notice AFTER UPDATE ON users
     FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*)
     EXECUTE FUNCTION cache_notice('u')`,
  `CREATE TRIGGER users_cache_notice_delete AFTER DELETE ON users
     FOR EACH ROW EXECUTE FUNCTION cache_notice('u')`,
  `CREATE TRIGGER service_accounts_cache_notice AFTER UPDATE ON service_accounts
     FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*)
     EXECUTE FUNCTION cache_notice('a')`,
  `CREATE TRIGGER service_accounts_cache_notice_delete AFTER DELETE ON service_accounts
     FOR EACH ROW EXECUTE FUNCTION cache_notice('a')`,
];

export const up: MigrationFn = async ({ context }) => {
  for (const sql of STATEMENTS) await context.query(sql);
};
