/**
 * The real service through a real PgBouncer in transaction pooling mode (Debian's 1.18 here), which
 * this file starts itself in front of its own database: three instances, several client connections
 * each, over two server connections. With DB_PREPARED_STATEMENTS=false everything works; with
 * named prepared statements (the default) the hot path breaks there, which is why the knob exists.
 * Skips, saying why, when no pgbouncer binary is installed (`.ci/run` installs it).
 */
import fs from 'node:fs';
import { expect } from 'chai';
import pg from 'pg';
import { Code } from '../src/client.js';
import { runAsUser } from '../src/db/embedded.js';
import type { TokenPair } from '../src/gen/connectsphere/auth/v1/auth.js';
import { createTestCa } from './helpers/certs.js';
import { findPgbouncer, type PgBouncer, startPgbouncer } from './helpers/pgbouncer.js';
import { createTestDatabase, type TestDatabase } from './helpers/postgres.js';
import { expectCode, newAccount, startTestServer, type TestServer } from './helpers/server.js';
import { until } from './helpers/wait.js';

const PGBOUNCER = findPgbouncer();
const NO_PGBOUNCER =
  'no pgbouncer binary on PATH or in /usr/sbin (apt-get install pgbouncer; .ci/run installs it when it can)';

/**
 * What every server behind PgBouncer here gets: no statement_timeout startup parameter (PgBouncer
 * refuses it; the database sets it instead) and no background queries (no health pings, no
 * housekeeping), so the statements each server connection ran last are the test's calls.
 */
// CACHE=off: through transaction pooling the cache's listener never trusts its LISTEN and retries
// (a probe notice every few seconds), which would land among the statements the tests inspect;
// the cache's own behaviour here has a test of its own
const BEHIND = {
  DB_STATEMENT_TIMEOUT_MS: '0',
  DB_HEALTH_INTERVAL_MS: '0',
  PRUNE_INTERVAL_S: '0',
  CACHE: 'off',
};
/** A fragment of GetUser's single-lookup statement (src/db/user.store.ts), the hot path. */
const HOT_PATH = 'FROM (SELECT 1) AS one';

async function direct<T>(url: string, text: string, values: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(text, values)).rows as T[];
  } finally {
    await client.end();
  }
}

interface Row {
  database: string;
  remote_pid: number;
  tls: string;
}

describe(
  PGBOUNCER ? 'behind PgBouncer in transaction pooling mode' : `behind PgBouncer (skipped: ${NO_PGBOUNCER})`,
  () => {
    let bouncer: PgBouncer | undefined;
    let database: TestDatabase | undefined;
    /** The database as the servers reach it: through PgBouncer. */
    let through: TestDatabase;
    const started: TestServer[] = [];

    before(async function () {
      if (!PGBOUNCER) {
        console.log(`      skipped: ${NO_PGBOUNCER}`);
        this.skip();
      }
      this.timeout(60_000);
      database = await createTestDatabase();
      // where statement_timeout goes behind PgBouncer (README, PgBouncer): the database's side
      await direct(database.url, `ALTER DATABASE ${database.name} SET statement_timeout = '15s'`);
      bouncer = await startPgbouncer(PGBOUNCER, database.url, {
        pool_mode: 'transaction',
        default_pool_size: 2, // every client connection of every instance shares these two
        min_pool_size: 2,
        server_round_robin: 1, // consecutive transactions take turns on the two server connections
      });
      through = { ...database, url: bouncer.url };
    });

    afterEach(async () => {
      for (const s of started.splice(0)) await s.stop({ keepDatabase: true });
    });

    after(async () => {
      await bouncer?.stop();
      await database?.drop();
    });

    const serve = async (env: Record<string, string>, db = through) => {
      const s = await startTestServer({ ...BEHIND, ...env }, { database: db });
      started.push(s);
      return s;
    };
    const ours = <T extends { database: string }>(rows: T[]) =>
      rows.filter((r) => r.database === database?.name);

    it('with DB_PREPARED_STATEMENTS=false runs the whole flow, the hot path from three instances over two shared server connections', async function () {
      this.timeout(60_000);
      const b = bouncer as PgBouncer;
      const instances = [
        await serve({ DB_PREPARED_STATEMENTS: 'false' }),
        await serve({ DB_PREPARED_STATEMENTS: 'false' }),
        await serve({ DB_PREPARED_STATEMENTS: 'false' }),
      ];
      const [a, bb, c] = instances as [TestServer, TestServer, TestServer];

      // Register and Login, each account on another instance
      type Person = ReturnType<typeof newAccount> & { id: string; tokens: TokenPair | undefined };
      const people: Person[] = [];
      for (const s of instances) {
        const acct = newAccount('pgb');
        const reg = await s.client.auth.register(acct);
        const login = await a.client.auth.login({ email: acct.email, password: acct.password });
        people.push({ ...acct, id: reg.user?.id as string, tokens: login.tokens });
      }
      const [ada] = people as [Person];
      const as = (s: TestServer, p: Person) => s.client.withToken(p.tokens?.accessToken as string);

      // GetUser, the hot path, many times: everyone looks up everyone on every instance, one call at
      // a time and all at once (the batcher then holds two client connections per instance)
      await until(
        'PgBouncer holds both server connections',
        async () => ours(await b.admin<Row>('SHOW SERVERS')).length === 2,
      );
      for (let round = 0; round < 5; round++) {
        for (const s of instances) {
          const got = await as(s, ada).users.getUser({ lookup: { $case: 'id', value: ada.id } });
          expect(got.email).to.equal(ada.email);
        }
        const all = await Promise.all(
          instances.flatMap((s) =>
            people.flatMap((caller) =>
              people.map(async (target) => {
                const got = await as(s, caller).users.getUser({ lookup: { $case: 'id', value: target.id } });
                expect(got.id).to.equal(target.id);
                expect(got.displayName).to.equal(target.displayName);
              }),
            ),
          ),
        );
        expect(all).to.have.length(27);
      }

      // RefreshToken on another instance than the one that issued the pair; ListUsers; UpdateUser; ChangePassword
      const refreshed = await bb.client.auth.refreshToken({
        refreshToken: ada.tokens?.refreshToken as string,
      });
      expect(refreshed.tokens?.accessToken).to.be.a('string');
      const ada2 = { ...ada, tokens: refreshed.tokens };
      const listed = await as(c, ada2).users.listUsers({ pageSize: 10, query: 'User pgb', pageToken: '' });
      expect(listed.users.map((u) => u.id)).to.include.members(people.map((p) => p.id));
      const me = await as(a, ada2).users.getUser({ lookup: { $case: 'id', value: ada.id } });
      const updated = await as(a, ada2).users.updateUser({
        user: { ...me, displayName: 'Ada behind PgBouncer' },
        updateMask: ['display_name'],
        currentPassword: '',
      });
      expect(updated.displayName).to.equal('Ada behind PgBouncer');
      const changed = await as(bb, ada2).auth.changePassword({
        currentPassword: ada.password,
        newPassword: 'battery staple horse pgbouncer',
      });
      await c.client.auth.login({ email: ada.email, password: 'battery staple horse pgbouncer' });
      await expectCode(
        a.client.auth.login({ email: ada.email, password: ada.password }),
        Code.UNAUTHENTICATED,
      );
      const ada3 = { ...ada, tokens: changed.tokens };

      // every server connection PgBouncer opens carries the database's statement_timeout
      expect(await a.sql('SHOW statement_timeout')).to.deep.equal([{ statement_timeout: '15s' }]);

      // Last, the hot path one call at a time: with server_round_robin, consecutive transactions take
      // turns, so both server connections run it, for client connections of different instances.
      for (const s of [a, bb, c, a]) {
        const got = await as(s, ada3).users.getUser({ lookup: { $case: 'id', value: ada.id } });
        expect(got.displayName).to.equal('Ada behind PgBouncer');
      }
      const servers = ours(await b.admin<Row>('SHOW SERVERS'));
      const clients = ours(await b.admin<Row>('SHOW CLIENTS'));
      expect(servers, 'server connections (default_pool_size)').to.have.length(2);
      expect(clients.length, 'client connections of the three instances').to.be.at.least(3);
      const last = await direct<{ pid: number; query: string }>(
        (database as TestDatabase).url,
        'SELECT pid, query FROM pg_stat_activity WHERE pid = ANY($1::int[])',
        [servers.map((s) => s.remote_pid)],
      );
      expect(last, 'the backends of both server connections').to.have.length(2);
      for (const backend of last) expect(backend.query, `backend ${backend.pid}`).to.include(HOT_PATH);
    });

    it('the read cache never trusts a LISTEN through transaction pooling (it says so); CACHE_LISTEN_URL to PostgreSQL turns it on', async function () {
      this.timeout(60_000);
      const behind = await serve({
        DB_PREPARED_STATEMENTS: 'false',
        CACHE: 'on',
        CACHE_LISTEN_PING_MS: '500',
      });
      await until('the listener gives up on notices it cannot hear', () =>
        behind.logs.some((l) => l.includes('does not hear notices sent from another connection')),
      );
      expect(behind.app.stats().cache?.active, 'bypassed: every read asks PostgreSQL').to.equal(false);
      const acct = newAccount('pgbcache');
      const reg = await behind.client.auth.register(acct);
      const token = reg.tokens?.accessToken as string;
      expect((await behind.client.auth.validateToken({ accessToken: token })).active).to.equal(true);
      await direct(
        (database as TestDatabase).url,
        "UPDATE sessions SET revoked_at = now(), revoke_reason = 'admin' WHERE user_id = $1",
        [reg.user?.id],
      );
      expect((await behind.client.auth.validateToken({ accessToken: token })).active).to.equal(false);

      const listening = await serve({
        DB_PREPARED_STATEMENTS: 'false',
        CACHE: 'on',
        CACHE_LISTEN_URL: (database as TestDatabase).url,
      });
      await until(
        'caching with its listener on PostgreSQL itself',
        () => listening.app.stats().cache?.active === true,
      );
    });

    it('with named prepared statements (DB_PREPARED_STATEMENTS=true, the default) the hot path fails there', async function () {
      this.timeout(60_000);
      // Three instances, one client connection each running GetUser's statement under the same name,
      // two server connections: each server connection accepts that name once, so at least one of
      // the three gets "already exists" (or, moved to another server connection, "does not exist").
      const instances = [await serve({}), await serve({}), await serve({})];
      const acct = newAccount('pgbnamed');
      const reg = await (instances[0] as TestServer).client.auth.register(acct);
      const id = reg.user?.id as string;
      const outcomes = [];
      for (const s of instances) {
        outcomes.push(
          await s.client
            .withToken(reg.tokens?.accessToken as string)
            .users.getUser({ lookup: { $case: 'id', value: id } })
            .then(
              () => 'OK',
              (err: { code: number }) => err.code,
            ),
        );
      }
      expect(outcomes, 'GetUser on each instance').to.include(Code.INTERNAL);
      expect(
        outcomes.every((o) => o === 'OK' || o === Code.INTERNAL),
        String(outcomes),
      ).to.equal(true);
      const said = instances
        .flatMap((s) => s.logs)
        .map((l) => (JSON.parse(l) as { err?: { message?: string } }).err?.message ?? '')
        .filter((m) => /prepared statement "cs_[0-9a-f]+" (already exists|does not exist)/.test(m));
      expect(said, 'the log says what happened').to.not.be.empty;
      expect(said[0]).to.include('set DB_PREPARED_STATEMENTS=false');
    });

    it('refuses statement_timeout in the startup packet; start-up then says what to do, without the password', async () => {
      let failure: Error | undefined;
      await startTestServer(
        { DB_HEALTH_INTERVAL_MS: '0', PRUNE_INTERVAL_S: '0' }, // DB_STATEMENT_TIMEOUT_MS: its default, 15 s
        { database: through },
      ).then(
        (s) => started.push(s),
        (err: Error) => {
          failure = err;
        },
      );
      expect(failure, 'start-up should fail').to.be.instanceOf(Error);
      const message = (failure as Error).message;
      expect(message).to.match(/refused the startup parameter statement_timeout/);
      expect(message).to.include('DB_STATEMENT_TIMEOUT_MS=0');
      expect(message).to.include(
        `ALTER ROLE ${new URL(through.url).username} SET statement_timeout = '15000ms'`,
      );
      expect(message).to.include('ignore_startup_parameters');
      expect(message).to.not.include(new URL(through.url).password);
    });

    it('speaks TLS to a PgBouncer with client_tls_sslmode=require, its certificate verified (sslmode=verify-full)', async function () {
      this.timeout(60_000);
      const ca = await createTestCa('PgBouncer Test CA');
      let tlsBouncer: PgBouncer | undefined;
      try {
        const cert = await ca.issue('pgbouncer', { names: ['127.0.0.1'] });
        const runAs = await runAsUser(); // PgBouncer runs as postgres under root: it must read its key
        if (runAs.uid !== undefined)
          for (const f of [cert.cert, cert.key]) fs.chownSync(f, runAs.uid, runAs.gid ?? -1);
        tlsBouncer = await startPgbouncer(PGBOUNCER as string, (database as TestDatabase).url, {
          pool_mode: 'transaction',
          default_pool_size: 2,
          client_tls_sslmode: 'require',
          client_tls_cert_file: cert.cert,
          client_tls_key_file: cert.key,
        });
        const url = `${tlsBouncer.url}?sslmode=verify-full&sslrootcert=${encodeURIComponent(ca.cert)}`;
        const s = await serve({ DB_PREPARED_STATEMENTS: 'false' }, { ...through, url });
        const acct = newAccount('pgbtls');
        const reg = await s.client.auth.register(acct);
        const me = await s.client
          .withToken(reg.tokens?.accessToken as string)
          .users.getUser({ lookup: { $case: 'id', value: reg.user?.id as string } });
        expect(me.email).to.equal(acct.email);
        const clients = ours(await tlsBouncer.admin<Row>('SHOW CLIENTS'));
        expect(clients, 'the service’s client connections').to.not.be.empty;
        for (const cl of clients) expect(cl.tls, 'SHOW CLIENTS tls').to.match(/TLSv1\.[23]/);
      } finally {
        for (const s of started.splice(0)) await s.stop({ keepDatabase: true });
        await tlsBouncer?.stop();
        ca.remove();
      }
    });
  },
);
