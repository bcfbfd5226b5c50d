/**
 * A PgBouncer of the test's own: its own config and auth file in a temporary directory, its own
 * port on 127.0.0.1, no Unix socket, in front of one database of the test's PostgreSQL. It never
 * touches a system PgBouncer (port 6432, /etc/pgbouncer) that a package install may have started.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort, runAsUser } from '../../src/db/embedded.js';
import { connectionOptions } from '../../src/db/url.js';

/** The pgbouncer binary on PATH or in /usr/sbin (Debian puts it there), or null. */
export function findPgbouncer(): string | null {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/sbin', '/usr/local/sbin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const file = path.join(dir, 'pgbouncer');
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return file;
    } catch {}
  }
  return null;
}

export interface PgBouncer {
  port: number;
  /** `pgbouncer --version`'s first line, e.g. "PgBouncer 1.18.0". */
  version: string;
  /** The URL the service gets: the same database and user, through PgBouncer (no sslmode: `prefer`). */
  url: string;
  /** stderr lines so far. */
  output: string[];
  /** A command on PgBouncer's admin console (SHOW SERVERS, SHOW CLIENTS, ...): its rows. */
  admin<T = Record<string, unknown>>(command: string): Promise<T[]>;
  /** Stops this PgBouncer (and nothing else). */
  stop(): Promise<void>;
}

const quote = (v: string) => `"${v.replace(/"/g, '""')}"`;

/**
 * Starts PgBouncer in front of `databaseUrl` (a direct URL of the test's PostgreSQL), with the
 * `settings` of its [pgbouncer] section (e.g. `pool_mode`, `default_pool_size`).
 */
export async function startPgbouncer(
  binary: string,
  databaseUrl: string,
  settings: Record<string, string | number>,
): Promise<PgBouncer> {
  const target = connectionOptions(databaseUrl);
  // PgBouncer checks the client's password itself (SCRAM against the plain text here) and logs in
  // to PostgreSQL with the same one; a passwordless TEST_DATABASE_URL (trust) gets one for the
  // client side only.
  const password = target.password || randomBytes(12).toString('hex');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-pgbouncer-'));
  fs.chmodSync(dir, 0o711);
  const port = await freePort();
  const ini = [
    '[databases]',
    // host may be a Unix socket directory (the embedded test PostgreSQL) or an address
    `${target.database} = host=${target.host} port=${target.port} dbname=${target.database}`,
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${port}`,
    'unix_socket_dir =',
    'auth_type = scram-sha-256',
    `auth_file = ${path.join(dir, 'users.txt')}`,
    `admin_users = ${target.username}`,
    ...Object.entries(settings).map(([k, v]) => `${k} = ${v}`),
    '',
  ].join('\n');
  fs.writeFileSync(path.join(dir, 'pgbouncer.ini'), ini, { mode: 0o600 });
  fs.writeFileSync(path.join(dir, 'users.txt'), `${quote(target.username)} ${quote(password)}\n`, {
    mode: 0o600,
  });
  // PgBouncer refuses to run as root: then it runs as the postgres user (as the embedded PostgreSQL does)
  const runAs = await runAsUser();
  const args: string[] = [];
  if (runAs.uid !== undefined) {
    for (const f of ['pgbouncer.ini', 'users.txt'])
      fs.chownSync(path.join(dir, f), runAs.uid, runAs.gid ?? -1);
    args.push('-u', 'postgres');
  }
  const version = await new Promise<string>((resolve) => {
    const v = spawn(binary, ['--version'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    v.stdout.on('data', (c) => {
      out += c;
    });
    v.on('close', () => resolve(out.split('\n')[0]?.trim() ?? ''));
  });

  const child: ChildProcess = spawn(binary, [...args, path.join(dir, 'pgbouncer.ini')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const output: string[] = [];
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ready = new Promise<void>((resolve, reject) => {
    let buf = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      const lines = (buf + chunk).split('\n');
      buf = lines.pop() ?? '';
      for (const line of lines) {
        output.push(line);
        if (/process up/.test(line)) resolve();
      }
    });
    void exited.then(() => reject(new Error(`pgbouncer exited during start-up:\n${output.join('\n')}`)));
  });
  const cleanup = () => fs.rmSync(dir, { recursive: true, force: true });
  try {
    await ready;
  } catch (err) {
    cleanup();
    throw err;
  }

  const tlsRequired = ['require', 'verify-ca', 'verify-full'].includes(String(settings.client_tls_sslmode));
  const auth = `${encodeURIComponent(target.username)}:${encodeURIComponent(password)}`;
  const url = `postgres://${auth}@127.0.0.1:${port}/${target.database}`;
  return {
    port,
    version,
    url,
    output,
    async admin<T>(command: string) {
      const client = new pg.Client({
        connectionString: `postgres://${auth}@127.0.0.1:${port}/pgbouncer`,
        // the test's own console on loopback: encrypted when PgBouncer requires it, not verified
        ssl: tlsRequired ? { rejectUnauthorized: false } : false,
      });
      await client.connect();
      try {
        return (await client.query(command)).rows as T[];
      } finally {
        await client.end();
      }
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM'); // immediate shutdown
        const kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(kill);
      }
      cleanup();
    },
  };
}
