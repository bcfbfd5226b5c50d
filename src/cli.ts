/**
 * Operator commands, run against the same database the server uses:
 *
 *   npm run cli -- grant-admin ada@example.com
 *   npm run cli -- revoke-admin ada@example.com     (also ends the user's sessions)
 *   npm run cli -- prune                            (one round of the housekeeping job, now)
 *
 * With DATABASE_URL empty it attaches to the embedded PostgreSQL of a running server on DATA_DIR,
 * or starts that database for the duration of the command. Exit codes: 0 done, 1 refused or
 * failed (the message says why), 64 usage.
 */
import { createUserService } from '../services/user/user.service.js';
import { type AppConfig, loadConfig, loadDotEnv } from './config.js';
import type { Database } from './db/database.js';
import { pruneOnce } from './db/housekeeping.js';
import { openDatabase } from './db/open.js';
import { createSessionStore } from './db/session.store.js';
import { createAttemptThrottle } from './db/throttle.store.js';
import { createUserStore } from './db/user.store.js';
import { AppError } from './errors.js';
import { createLogger } from './logger.js';
import { createPageTokenCodec } from './security/page-tokens.js';
import { createPasswordHasher } from './security/passwords.js';
import { createCurrentPasswordCheck } from './security/reauth.js';

interface Command {
  args: string[];
  help: string;
  run(db: Database, config: AppConfig, args: string[]): Promise<string>;
}

function userService(db: Database, config: AppConfig) {
  const batching = { maxBatch: 1, maxInFlight: 1, maxWaitMs: config.DB_POOL_ACQUIRE_MS };
  const throttle = createAttemptThrottle(db, {
    baseS: config.LOGIN_LOCKOUT_BASE_S,
    maxS: config.LOGIN_LOCKOUT_MAX_S,
    windowS: config.LOGIN_FAILURE_WINDOW_S,
  });
  return createUserService({
    transactions: db,
    users: createUserStore(db, batching),
    sessions: createSessionStore(db, batching),
    pageTokens: createPageTokenCodec(config.SECRET_KEY),
    checkCurrentPassword: createCurrentPasswordCheck({
      throttle,
      hasher: createPasswordHasher(config),
      maxFailures: config.LOGIN_MAX_FAILURES,
    }),
  });
}

const setAdmin =
  (grant: boolean): Command['run'] =>
  async (db, config, [email]) => {
    const user = await userService(db, config).setRole(email as string, 'admin', grant);
    return `${user.email} (${user.id}) now has roles: ${user.roles.join(', ')}`;
  };

const COMMANDS: Record<string, Command> = {
  'grant-admin': {
    args: ['<email>'],
    help: 'give the user the admin role (effective at once for our RPCs; in new tokens at the next refresh)',
    run: setAdmin(true),
  },
  'revoke-admin': {
    args: ['<email>'],
    help: "take the admin role away and end the user's sessions (never from the last admin)",
    run: setAdmin(false),
  },
  prune: {
    args: [],
    help: 'delete expired sessions, refresh tokens and throttle counters now (what the housekeeping job does)',
    async run(db, config) {
      const counts = await pruneOnce(db, config);
      if (counts.skipped)
        throw new AppError('FAILED_PRECONDITION', 'another instance is pruning right now; try again');
      return `deleted ${counts.sessions} sessions, ${counts.refreshTokens} refresh tokens, ${counts.throttle} throttle counters`;
    },
  },
};

const USAGE = `usage: npm run cli -- <command> [arguments]
commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${`${name} ${c.args.join(' ')}`.padEnd(26)} ${c.help}`)
  .join('\n')}`;

async function main(argv: string[]): Promise<number> {
  const [name = '', ...args] = argv;
  const command = COMMANDS[name];
  if (!command || args.length !== command.args.length || args.some((a) => a.trim() === '')) {
    process.stderr.write(`${USAGE}\n`);
    return 64;
  }
  loadDotEnv();
  const config = loadConfig();
  const logger = createLogger(config.LOG_LEVEL === 'info' ? 'warn' : config.LOG_LEVEL);
  const opened = await openDatabase(config, logger, { attachToRunningServer: true });
  try {
    process.stdout.write(`${await command.run(opened.db, config, args)}\n`);
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
