/**
 * DATABASE_URL's sslmode, sslrootcert, sslcert and sslkey against a real PostgreSQL with ssl=on: two
 * clusters of this file's own (whatever TEST_DATABASE_URL says), one with TLS (a server certificate
 * that names only `localhost`, and a CA for client certificates) and one without. What PostgreSQL
 * itself reports (pg_stat_ssl) proves whether the service's connections are encrypted and which
 * client certificate they showed; each server also runs real RPCs and stores their rows.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { expect } from 'chai';
import pg from 'pg';
import { type EmbeddedPostgres, runAsUser, startEmbeddedPostgres, tempDataDir } from '../src/db/embedded.js';
import { createLogger } from '../src/logger.js';
import { type CertFiles, createTestCa, type TestCa } from './helpers/certs.js';
import type { TestDatabase } from './helpers/postgres.js';
import { getUserOnSeveralWorkers, runUntilExit, spawnServer } from './helpers/process.js';
import { newAccount, startTestServer, type TestServer } from './helpers/server.js';

interface Cluster {
  pg: EmbeddedPostgres;
  dir: string;
}

const APP_NAME = 'connectsphere-identity';

async function startCluster(settings: Record<string, string>): Promise<Cluster> {
  const dir = tempDataDir('cs-tls-pg-');
  const server = await startEmbeddedPostgres({
    dataDir: dir,
    port: 0,
    logger: createLogger('warn'),
    settings,
  });
  return { pg: server, dir };
}

/** Runs `work` as the superuser over the cluster's Unix socket (never TLS), in `database`. */
async function asAdmin<T>(c: Cluster, database: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const url = new URL(c.pg.adminUrl);
  url.pathname = `/${database}`;
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/**
 * A fresh database owned by the service's role, reached over TCP at `host` with the query `params`
 * (`sslmode=…`): what the server under test gets as DATABASE_URL.
 */
async function databaseOn(c: Cluster, host: string, params: Record<string, string>): Promise<TestDatabase> {
  const name = `cs_tls_${randomBytes(5).toString('hex')}`;
  await asAdmin(c, 'postgres', (a) => a.query(`CREATE DATABASE ${name} OWNER connectsphere`));
  const password = new URL(c.pg.url).password;
  const query = new URLSearchParams(params).toString();
  return {
    url: `postgres://connectsphere:${password}@${host}:${c.pg.port}/${name}${query ? `?${query}` : ''}`,
    name,
    drop: () =>
      asAdmin(c, 'postgres', (a) => a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => {}),
  };
}

type Connection = { ssl: boolean; client_dn: string | null };

/** What PostgreSQL says about the service's connections to `database`. */
const connectionsTo = (c: Cluster, database: string) =>
  asAdmin(c, 'postgres', async (a) => {
    const { rows } = await a.query<Connection>(
      `SELECT s.ssl, s.client_dn FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
       WHERE a.application_name = $1 AND a.datname = $2`,
      [APP_NAME, database],
    );
    return rows;
  });

/** Register, then GetUser with the new token; the row must be in the database. */
async function registerAndGet(s: TestServer, c: Cluster, database: TestDatabase) {
  const acct = newAccount('tls');
  const reg = await s.client.auth.register(acct);
  const me = s.client.withToken(reg.tokens?.accessToken ?? '');
  const got = await me.users.getUser({ lookup: { $case: 'email', value: acct.email } });
  expect(got.id).to.equal(reg.user?.id);
  const rows = await asAdmin(c, database.name, (a) =>
    a.query('SELECT id FROM users WHERE email = $1', [acct.email]).then((r) => r.rows),
  );
  expect(rows, 'the registered row').to.deep.equal([{ id: reg.user?.id }]);
}

/** Each of the service's connections is encrypted (showing `clientDn`), or each is not. */
function expectAll(connections: Connection[], tls: { ssl: boolean; clientDn?: string }) {
  const expected = { ssl: tls.ssl, client_dn: tls.clientDn ?? null };
  expect(connections, 'the service has connections to its database').to.not.be.empty;
  expect(connections).to.deep.equal(connections.map(() => expected));
}

describe('encrypted database connections (DATABASE_URL sslmode)', function () {
  this.timeout(60_000);
  let ca: TestCa;
  let otherCa: TestCa;
  let client: CertFiles;
  let withTls: Cluster;
  let withoutTls: Cluster;
  const started: TestServer[] = [];
  const databases: TestDatabase[] = [];

  before(async () => {
    [ca, otherCa] = await Promise.all([createTestCa(), createTestCa('Some Other CA')]);
    const serverCert = await ca.issue('server', { names: ['localhost'] });
    client = await ca.issue('client', { cn: 'identity-db-client', client: true });
    // PostgreSQL reads its key as the user it runs as (postgres, when we are root), only if 0600.
    const runAs = await runAsUser();
    if (runAs.uid !== undefined) fs.chownSync(serverCert.key, runAs.uid, runAs.gid ?? -1);
    fs.chmodSync(serverCert.key, 0o600);
    [withTls, withoutTls] = await Promise.all([
      startCluster({
        ssl: 'on',
        ssl_cert_file: serverCert.cert,
        ssl_key_file: serverCert.key,
        ssl_ca_file: ca.cert, // asks clients for a certificate (optional here) and checks it
      }),
      startCluster({ ssl: 'off' }),
    ]);
  });
  after(async () => {
    for (const s of started) await s.stop();
    for (const d of databases) await d.drop();
    for (const c of [withTls, withoutTls]) {
      await c?.pg.stop();
      if (c) fs.rmSync(c.dir, { recursive: true, force: true });
    }
    ca?.remove();
    otherCa?.remove();
  });

  /**
   * A server on a fresh database of `c` at `host` with `params` (stopped, its database dropped, after
   * the file); runs Register and GetUser through it and returns what PostgreSQL says of its connections.
   */
  async function serve(c: Cluster, host: string, params: Record<string, string>) {
    const database = await databaseOn(c, host, params);
    const s = await startTestServer({}, { database }); // s.stop() drops the database
    started.push(s);
    await registerAndGet(s, c, database);
    return connectionsTo(c, database.name);
  }

  /** The start-up error of a server on a fresh database of `c` at `host` with `params`; it must not start. */
  async function startFailure(c: Cluster, host: string, params: Record<string, string>): Promise<string> {
    const database = await databaseOn(c, host, params);
    let message: string | undefined;
    try {
      await (await startTestServer({}, { database })).stop();
    } catch (err) {
      message = (err as Error).message;
    } finally {
      await database.drop();
    }
    expect(message, 'the server started').to.be.a('string');
    expect(message, 'the password').to.not.include(new URL(database.url).password);
    return message as string;
  }

  it('disable: plaintext, even to a server that offers TLS', async () => {
    expectAll(await serve(withTls, 'localhost', { sslmode: 'disable' }), { ssl: false });
  });

  it('prefer: TLS when the server offers it; no sslmode means prefer', async () => {
    expectAll(await serve(withTls, '127.0.0.1', { sslmode: 'prefer' }), { ssl: true });
    expectAll(await serve(withTls, '127.0.0.1', {}), { ssl: true });
  });

  it('prefer: plaintext when the server has ssl=off', async () => {
    expectAll(await serve(withoutTls, '127.0.0.1', { sslmode: 'prefer' }), { ssl: false });
  });

  it('require: TLS without a CA (the certificate is not checked); no start without TLS', async () => {
    expectAll(await serve(withTls, '127.0.0.1', { sslmode: 'require' }), { ssl: true });
    expect(await startFailure(withoutTls, '127.0.0.1', { sslmode: 'require' })).to.equal(
      'DATABASE_URL (sslmode=require): the database server does not offer TLS (its ssl setting is off)',
    );
  });

  it('require with an sslrootcert checks the chain like verify-ca (as libpq does)', async () => {
    expectAll(await serve(withTls, '127.0.0.1', { sslmode: 'require', sslrootcert: ca.cert }), { ssl: true });
    expect(
      await startFailure(withTls, '127.0.0.1', { sslmode: 'require', sslrootcert: otherCa.cert }),
    ).to.match(/^DATABASE_URL \(sslmode=require, checked as verify-ca\): certificate check failed/);
  });

  it('verify-ca: the right CA is enough, whatever host name the certificate gives', async () => {
    // the certificate names only localhost; verify-ca does not look at names
    expectAll(await serve(withTls, '127.0.0.1', { sslmode: 'verify-ca', sslrootcert: ca.cert }), {
      ssl: true,
    });
  });

  it('verify-ca: a server certificate from another CA stops the server at start, saying so', async () => {
    expect(
      await startFailure(withTls, 'localhost', { sslmode: 'verify-ca', sslrootcert: otherCa.cert }),
    ).to.match(
      /^DATABASE_URL \(sslmode=verify-ca\): certificate check failed: the database server's certificate is not trusted by sslrootcert \(/,
    );
  });

  it('verify-full: the right CA and a host the certificate names', async () => {
    expectAll(await serve(withTls, 'localhost', { sslmode: 'verify-full', sslrootcert: ca.cert }), {
      ssl: true,
    });
  });

  it('verify-full: a host the certificate does not name stops the server at start, saying so', async () => {
    expect(
      await startFailure(withTls, '127.0.0.1', { sslmode: 'verify-full', sslrootcert: ca.cert }),
    ).to.equal(
      "DATABASE_URL (sslmode=verify-full): host name check failed: the database server's certificate does not name 127.0.0.1 (it names DNS:localhost)",
    );
  });

  it('sslcert and sslkey: the service shows its client certificate', async () => {
    const verified = { sslmode: 'verify-full', sslrootcert: ca.cert };
    expectAll(await serve(withTls, 'localhost', { ...verified, sslcert: client.cert, sslkey: client.key }), {
      ssl: true,
      clientDn: '/CN=identity-db-client',
    });
    expectAll(await serve(withTls, 'localhost', verified), { ssl: true }); // and without them, none
  });

  it('a missing certificate file stops the server at start, naming the parameter', async () => {
    const missing = `${ca.dir}/missing.pem`;
    expect(
      await startFailure(withTls, 'localhost', { sslmode: 'verify-full', sslrootcert: missing }),
    ).to.equal(`DATABASE_URL (sslmode=verify-full): cannot read sslrootcert file "${missing}": ENOENT`);
  });

  it('the cluster primary hands the TLS parameters to its workers (WORKERS=2)', async () => {
    const params = { sslmode: 'verify-full', sslrootcert: ca.cert, sslcert: client.cert, sslkey: client.key };
    const database = await databaseOn(withTls, 'localhost', params);
    databases.push(database);
    const proc = await spawnServer({ DATABASE_URL: database.url, WORKERS: '2' });
    try {
      await proc.waitForLine(/"workers":2,"msg":"SERVING"/);
      expect((await getUserOnSeveralWorkers(proc)).size, 'GetUser served by both workers').to.equal(2);
      // The primary closed its own pool before forking: these are the workers' connections.
      const connections = await connectionsTo(withTls, database.name);
      expect(connections.length, 'a connection of each worker at least').to.be.at.least(2);
      expectAll(connections, { ssl: true, clientDn: '/CN=identity-db-client' });
    } finally {
      proc.child.kill('SIGTERM');
      await proc.exited;
    }
  });

  it('as a process: exit 1 with the message, and no password in the output', async () => {
    const database = await databaseOn(withTls, '127.0.0.1', { sslmode: 'verify-full', sslrootcert: ca.cert });
    databases.push(database);
    const { code, output } = await runUntilExit({ DATABASE_URL: database.url });
    expect(code).to.equal(1);
    expect(output).to.include('host name check failed').and.include('"msg":"start-up failed"');
    expect(output).to.not.include(new URL(database.url).password);
  });

  it('in production, a DATABASE_URL to another host without verify-ca/verify-full is warned about (not refused)', async () => {
    const env = {
      NODE_ENV: 'production',
      SECRET_KEY: randomBytes(48).toString('base64'),
      BCRYPT_ROUNDS: '10',
      DB_CONNECT_TIMEOUT_MS: '2000',
      // .invalid never resolves (RFC 6761): the warning comes before any connection is tried
      DATABASE_URL: 'postgres://svc:hunter2@db.invalid:5432/identity?sslmode=require',
    };
    const { code, output } = await runUntilExit(env);
    expect(code, 'a failed connection (1), not a refused configuration (2)').to.equal(1);
    const warning = output.split('\n').find((l) => l.includes('"level":40')) ?? 'no warning logged';
    expect(warning).to.include(
      'DATABASE_URL: sslmode=require to db.invalid does not verify the server (anyone on the path can pose as it); in production use sslmode=verify-full with sslrootcert',
    );
    expect(output).to.not.include('hunter2');
  });
});
