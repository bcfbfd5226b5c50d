/**
 * Operator commands, run against the same database the server uses:
 *
 *   npm run cli -- grant-admin ada@example.com
 *   npm run cli -- revoke-admin ada@example.com     (also ends the user's sessions)
 *
 * With DATABASE_URL empty it attaches to the embedded PostgreSQL of a running server on DATA_DIR,
 * or starts that database for the duration of the command.
 */
import { createUserService } from '../services/user/user.service.js';
import { loadConfig, loadDotEnv } from './config.js';
import { openDatabase } from './db/open.js';
import { createSessionStore } from './db/session.store.js';
import { createUserStore } from './db/user.store.js';
import { AppError } from './errors.js';
import { createLogger } from './logger.js';
import { createPageTokenCodec } from './security/page-tokens.js';

const USAGE = `usage: npm run cli -- <command> <email>
commands:
  grant-admin <email>    give the user the admin role (effective at their next token refresh or login)
  revoke-admin <email>   take the admin role away and end the user's sessions`;

async function main(argv: string[]): Promise<number> {
  const [command, email, ...extra] = argv;
  const grant = command === 'grant-admin';
  if ((!grant && command !== 'revoke-admin') || !email || extra.length) {
    process.stderr.write(`${USAGE}\n`);
    return 64;
  }
  loadDotEnv();
  const config = loadConfig();
  const logger = createLogger(config.LOG_LEVEL === 'info' ? 'warn' : config.LOG_LEVEL);
  const opened = await openDatabase(config, logger, { attachToRunningServer: true });
  try {
    const batching = { maxBatch: 1, maxInFlight: 1, maxWaitMs: config.DB_POOL_ACQUIRE_MS };
    const users = createUserService({
      transactions: opened.db,
      users: createUserStore(opened.db, batching),
      sessions: createSessionStore(opened.db, batching),
      pageTokens: createPageTokenCodec(config.SECRET_KEY),
    });
    const user = await users.setRole(email, 'admin', grant);
    process.stdout.write(`${user.email} (${user.id}) now has roles: ${user.roles.join(', ')}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`${err instanceof AppError ? err.message : String(err)}\n`);
    return 1;
  } finally {
    await opened.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
