/**
 * Operator commands, run against the same database the server uses:
 *
 *   npm run cli -- grant-admin ada@example.com
 *   npm run cli -- revoke-admin ada@example.com     (also ends the user's sessions)
 *   npm run cli -- prune                            (one round of the housekeeping job, now)
 *   npm run cli -- service-account create billing --scopes users.read,tokens.introspect [--cert-name N]
 *   npm run cli -- service-account list | rotate NAME | delete NAME
 *   npm run migrate [-- --status]                   (= npm run cli -- migrate [--status])
 *
 * With DATABASE_URL empty it attaches to the embedded PostgreSQL of a running server on DATA_DIR,
 * or starts that database for the duration of the command. Exit codes: 0 done, 1 refused or
 * failed (the message says why), 64 usage.
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import { createServiceAccountAdmin } from '../services/auth/service-accounts.service.js';
import { createUserService } from '../services/user/user.service.js';
import { type AppConfig, loadConfig, loadDotEnv } from './config.js';
import { createAuditLog } from './db/audit.store.js';
import type { Database } from './db/database.js';
import { pruneOnce } from './db/housekeeping.js';
import { migrationStatus } from './db/migrate.js';
import { type OpenedDatabase, openDatabase } from './db/open.js';
import { createServiceAccountStore } from './db/service-account.store.js';
import { createSessionStore } from './db/session.store.js';
import { createAttemptThrottle } from './db/throttle.store.js';
import { createUserStore } from './db/user.store.js';
import { AppError } from './errors.js';
import { createLogger } from './logger.js';
import { createPageTokenCodec } from './security/page-tokens.js';
import { createPasswordHasher } from './security/passwords.js';
import { createCurrentPasswordCheck } from './security/reauth.js';

interface Command {
  /** Positional arguments (`[x]`: optional; a trailing `...` means "and options"). */
  args: string[];
  help: string;
  /** 'leave': open the database without applying or checking migrations (DB_SYNC does not apply). */
  schema?: 'leave';
  run(db: Database, config: AppConfig, args: string[], opened: OpenedDatabase): Promise<string>;
}

/** Who runs operator commands, as the audit trail records it: `cli:<OS user>`. */
const OPERATOR = `cli:${(() => {
  try {
    return os.userInfo().username;
  } catch {
    return 'unknown';
  }
})()}`;

function serviceAccounts(db: Database, config: AppConfig) {
  const batching = { maxBatch: 1, maxInFlight: 1, maxWaitMs: config.DB_POOL_ACQUIRE_MS };
  return createServiceAccountAdmin({
    accounts: createServiceAccountStore(db, batching),
    secretOverlapS: config.SERVICE_SECRET_OVERLAP_S,
    transactions: db,
    audit: createAuditLog(db),
    operator: OPERATOR,
  });
}

const SERVICE_ACCOUNT_USAGE = `service-account create <name> --scopes <scope,...> [--cert-name <name>]
  service-account list | rotate <name> | revoke-secret <name> | revoke-tokens <name> | delete <name>
  scopes: users.read (public profiles), users.read.private (full records, lookups by email), tokens.introspect (ValidateToken)`;

async function serviceAccount(db: Database, config: AppConfig, argv: string[]): Promise<string> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { scopes: { type: 'string' }, 'cert-name': { type: 'string' } },
  });
  const [action, name, ...extra] = positionals;
  const accounts = serviceAccounts(db, config);
  const usage = () => new UsageError(SERVICE_ACCOUNT_USAGE);
  if (extra.length) throw usage();
  switch (action) {
    case 'create': {
      if (!name || values.scopes === undefined) throw usage();
      const created = await accounts.create({
        name,
        scopes: values.scopes
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean),
        certName: values['cert-name'],
      });
      return `${JSON.stringify(created, null, 2)}\n# the client_secret is shown this once: store it now`;
    }
    case 'list': {
      if (name) throw usage();
      const list = await accounts.list();
      return JSON.stringify(
        list.map((a) => ({
          name: a.name,
          client_id: a.clientId,
          scopes: a.scopes,
          cert_names: [`${a.name}.service`, ...(a.certName ? [a.certName] : [])],
          created: a.createTime.toISOString(),
          rotated: a.rotateTime?.toISOString() ?? null,
        })),
        null,
        2,
      );
    }
    case 'rotate':
      if (!name) throw usage();
      return `${JSON.stringify(await accounts.rotate(name), null, 2)}\n# the new client_secret is shown this once; the previous one works for SERVICE_SECRET_OVERLAP_S more seconds`;
    case 'revoke-secret':
      if (!name) throw usage();
      return `${JSON.stringify(await accounts.revokeSecret(name), null, 2)}\n# the new client_secret is shown this once; the previous one no longer works`;
    case 'revoke-tokens': {
      if (!name) throw usage();
      const revoked = await accounts.revokeTokens(name);
      return `${JSON.stringify(revoked, null, 2)}\n# every token issued to ${name} so far is refused now; new ones work`;
    }
    case 'delete':
      if (!name) throw usage();
      await accounts.remove(name);
      return `deleted service account ${name}: its tokens stop working now`;
    default:
      throw usage();
  }
}

class UsageError extends Error {}

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
    auditPageTokens: createPageTokenCodec(config.SECRET_KEY, 'list-audit-events'),
    audit: createAuditLog(db),
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
    const user = await userService(db, config).setRole(email as string, 'admin', grant, OPERATOR);
    return `${user.email} (${user.id}) now has roles: ${user.roles.join(', ')}`;
  };

const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;

/** `migrate`: applies what is pending, one progress line per migration; `migrate status`: lists. */
async function migrate(db: Database, opened: OpenedDatabase, [mode]: string[]): Promise<string> {
  if (mode === 'status' || mode === '--status') {
    const { applied, pending, unknown } = await migrationStatus(db);
    const lines = [
      ...applied.map(
        (m) =>
          `applied  ${m.name}  ${m.appliedAt.toISOString()}${unknown.includes(m.name) ? '  (not known to this version: a newer one applied it)' : ''}`,
      ),
      ...pending.map((name) => `pending  ${name}`),
      `${applied.length} applied, ${pending.length} pending${pending.length ? ': run `npm run migrate` to apply them' : ': the schema is up to date'}`,
    ];
    return lines.join('\n');
  }
  if (mode !== undefined) throw new UsageError('migrate [status | --status]');
  const applied = await opened.migrate((p) =>
    process.stdout.write(p.event === 'running' ? `${p.name}: applying\n` : `${p.name}: done in ${p.ms} ms\n`),
  );
  const status = await migrationStatus(db);
  const state = status.pending.length
    ? `still ${plural(status.pending.length, 'pending migration')}`
    : `the schema is up to date (${status.applied.length} applied in all)`;
  if (!applied.length) return `nothing to apply: ${state}`;
  return `applied ${plural(applied.length, 'migration')} in one transaction (${applied.join(', ')}); ${state}`;
}

const COMMANDS: Record<string, Command> = {
  migrate: {
    args: ['[--status]'],
    help: 'apply the pending schema migrations (one transaction, under the schema lock); --status: list applied and pending',
    schema: 'leave',
    run: (db, _config, args, opened) => migrate(db, opened, args),
  },
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
  'service-account': {
    args: ['...'],
    help: 'create, list, rotate or delete a service account (run it without arguments for the details)',
    run: (db, config, args) => serviceAccount(db, config, args),
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
  const required = command?.args.filter((a) => !a.startsWith('[')).length ?? 0;
  const fits =
    command?.args.includes('...') || (args.length >= required && args.length <= (command?.args.length ?? 0));
  if (!command || !fits || args.some((a) => a.trim() === '')) {
    process.stderr.write(`${USAGE}\n`);
    return 64;
  }
  loadDotEnv();
  const config = loadConfig();
  const logger = createLogger(config.LOG_LEVEL === 'info' ? 'warn' : config.LOG_LEVEL);
  const opened = await openDatabase(config, logger, {
    attachToRunningServer: true,
    schema: command.schema ?? 'by-config',
  });
  try {
    process.stdout.write(`${await command.run(opened.db, config, args, opened)}\n`);
    return 0;
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(
        `usage: npm run cli -- ${err instanceof UsageError ? err.message : SERVICE_ACCOUNT_USAGE}\n`,
      );
      return 64;
    }
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
