/**
 * The service's database role against the audit trail and its own grants (src/db/privileges.ts,
 * migration 0005): it may add and read audit events, and delete them only through the retention
 * function, never past its floor; a missing privilege keeps health NOT_SERVING with the exact
 * GRANT in the log. Run as a role that owns nothing (the tests' own connections are a superuser's,
 * which could do anything).
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { expect } from 'chai';
import pg from 'pg';
import { README, withGrants } from '../scripts/config-docs.js';
import { loadConfig } from '../src/config.js';
import { createDatabase } from '../src/db/database.js';
import { tempDataDir } from '../src/db/embedded.js';
import { pruneOnce } from '../src/db/housekeeping.js';
import { applyMigrations } from '../src/db/migrate.js';
import { type OpenedDatabase, openDatabase } from '../src/db/open.js';
import { AUDIT_OWNER, checkPrivileges, grantStatements, REQUIRED } from '../src/db/privileges.js';
import { HealthCheckResponse_ServingStatus as Serving } from '../src/gen/health/v1/health.js';
import { createLogger } from '../src/logger.js';
import { createTestDatabase, type TestDatabase } from './helpers/postgres.js';
import { healthOf, newAccount, startTestServer, TEST_ENV, type TestServer } from './helpers/server.js';

async function withClient<T>(url: string, work: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** Every way we know for a role to remove or change audit events, or to lift what stops it. */
const ATTACKS = [
  "DELETE FROM audit_events WHERE set_config('connectsphere.audit_prune', 'on', true) = 'on'",
  'DELETE FROM audit_events',
  "UPDATE audit_events SET outcome = 'success'",
  'TRUNCATE audit_events',
  'ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only',
  'ALTER TABLE audit_events DISABLE TRIGGER ALL',
  'DROP TABLE audit_events',
  'ALTER TABLE audit_events RENAME TO audit_events_old',
  'CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN OLD; END $$',
  'UPDATE audit_settings SET min_retention_days = 1',
  'ALTER FUNCTION audit_events_prune(integer, integer) SECURITY INVOKER',
  'DROP SCHEMA public CASCADE',
];

/** Runs every attack as the role of `url`: each must fail with insufficient_privilege, and no row may go. */
async function attackAuditTrail(url: string, adminUrl: string) {
  const count = () =>
    withClient(
      adminUrl,
      async (c) => (await c.query('SELECT count(*)::int AS n FROM audit_events')).rows[0].n,
    );
  const before = await count();
  expect(before, 'events to attack').to.be.greaterThan(0);
  await withClient(url, async (c) => {
    for (const sql of ATTACKS) {
      const err = await c.query(sql).then(
        () => null,
        (e: Error & { code?: string }) => e,
      );
      expect(err, `${sql} went through`).to.not.equal(null);
      expect(err?.code, `${sql}: ${err?.message}`).to.equal('42501'); // insufficient_privilege
      expect(err?.message, sql).to.match(/permission denied|must be owner/);
    }
  });
  expect(await count()).to.equal(before);
}

/** An old, a recent event (written as the administrator, who may set their time). */
const seedEvents = (adminUrl: string) =>
  withClient(adminUrl, (c) =>
    c.query(
      `INSERT INTO audit_events (occurred_at, event_type, actor_type, outcome) VALUES
         (now() - interval '40 days', 'login.failed', 'anonymous', 'failure'),
         (now() - interval '10 days', 'login.failed', 'anonymous', 'failure')`,
    ),
  );

const oldAndRecent = (adminUrl: string) =>
  withClient(adminUrl, async (c) => {
    const { rows } = await c.query(
      `SELECT count(*) FILTER (WHERE occurred_at < now() - interval '30 days')::int AS old,
              count(*) FILTER (WHERE occurred_at < now() - interval '5 days')::int AS older_than_5_days
       FROM audit_events`,
    );
    return rows[0] as { old: number; older_than_5_days: number };
  });

const HOUSEKEEPING = { PRUNE_AFTER_DAYS: 7, PRUNE_INTERVAL_S: 0, LOGIN_FAILURE_WINDOW_S: 900 };

describe('the service role and the audit trail', () => {
  describe('on the embedded database (npm start), whose service role owns the database and its other tables', () => {
    let dir: string;
    let opened: OpenedDatabase | undefined;
    const open = () =>
      openDatabase(loadConfig({ ...TEST_ENV, DATABASE_URL: '', DATA_DIR: dir }), createLogger('silent'));
    before(async function () {
      this.timeout(120_000);
      dir = tempDataDir('cs-test-audit-owner-');
      opened = await open();
    });
    after(async function () {
      this.timeout(60_000);
      await opened?.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('cannot delete, change, truncate or unprotect audit events; only INSERT and SELECT', async () => {
      const { url, embedded } = opened as OpenedDatabase;
      const adminUrl = embedded?.adminUrl as string;
      await seedEvents(adminUrl);
      await attackAuditTrail(url, adminUrl);
      await withClient(url, async (c) => {
        const { rows } = await c.query(
          `INSERT INTO audit_events (event_type, actor_type, outcome) VALUES ('login.failed', 'anonymous', 'failure') RETURNING id`,
        );
        expect(rows).to.have.length(1);
        expect((await c.query('SELECT id FROM audit_events')).rows.length).to.be.greaterThan(2);
      });
      const report = await checkPrivileges((opened as OpenedDatabase).db);
      expect(report).to.include({ superuser: false, ownsAudit: false });
      expect(report.grants).to.deep.equal([]);
    });

    it('prunes only through the retention function, which never deletes events younger than its floor (30 days)', async () => {
      const { url, embedded } = opened as OpenedDatabase;
      const adminUrl = embedded?.adminUrl as string;
      await seedEvents(adminUrl);
      const before = await oldAndRecent(adminUrl);
      expect(before.old).to.be.greaterThan(0);
      // asked to keep nothing (0 days, or 1): it still keeps the last 30 days
      const deleted = await withClient(url, async (c) => {
        const a = await c.query('SELECT audit_events_prune(0, 1000) AS n');
        const b = await c.query('SELECT audit_events_prune(-5, 1000) AS n');
        return a.rows[0].n + b.rows[0].n;
      });
      expect(deleted).to.equal(before.old);
      expect(await oldAndRecent(adminUrl)).to.deep.equal({
        old: 0,
        older_than_5_days: before.older_than_5_days - before.old,
      });
      // the housekeeping job, on the service's own pool, with AUDIT_RETENTION_DAYS=1: the same
      await seedEvents(adminUrl);
      const counts = await pruneOnce((opened as OpenedDatabase).db, {
        ...HOUSEKEEPING,
        AUDIT_RETENTION_DAYS: 1,
      });
      expect(counts.auditEvents).to.equal(1);
      expect((await oldAndRecent(adminUrl)).old).to.equal(0);
      expect((await oldAndRecent(adminUrl)).older_than_5_days).to.be.greaterThan(0);
    });

    it('stays so across a restart on the same DATA_DIR (start-up does not hand the table back)', async function () {
      this.timeout(120_000);
      await opened?.close();
      opened = undefined;
      opened = await open();
      const { url, embedded } = opened;
      const adminUrl = embedded?.adminUrl as string;
      const owner = await withClient(adminUrl, async (c) => {
        const { rows } = await c.query(
          "SELECT pg_get_userbyid(relowner) AS owner FROM pg_class WHERE oid = 'audit_events'::regclass",
        );
        return rows[0].owner;
      });
      expect(owner).to.equal(AUDIT_OWNER);
      await attackAuditTrail(url, adminUrl);
    });
  });

  describe('a role of your own PostgreSQL with exactly the README grants', () => {
    const role = `cs_svc_${randomBytes(5).toString('hex')}`;
    const password = randomBytes(12).toString('hex');
    let db: TestDatabase;
    let serviceUrl: string;
    let s: TestServer | undefined;
    const asAdmin = (sql: string) => withClient(db.url, (c) => c.query(sql));
    const start = () =>
      startTestServer(
        { DB_SYNC: 'false', PRUNE_INTERVAL_S: '0' },
        { database: { ...db, url: serviceUrl, drop: async () => {} } },
      );
    before(async function () {
      this.timeout(60_000);
      db = await createTestDatabase();
      // the operator migrates as the administrator (a superuser here: 0005 hands the audit trail over)
      const config = loadConfig({ ...TEST_ENV, DATABASE_URL: db.url });
      const migrator = createDatabase(db.url, config, createLogger('silent'));
      try {
        await applyMigrations(migrator);
      } finally {
        await migrator.close();
      }
      await asAdmin(`CREATE ROLE ${role} LOGIN PASSWORD '${password}'`);
      for (const grant of grantStatements(role)) await asAdmin(grant);
      const url = new URL(db.url);
      url.username = role;
      url.password = password;
      serviceUrl = url.toString();
    });
    afterEach(async () => {
      await s?.stop();
      s = undefined;
    });
    after(async function () {
      this.timeout(30_000);
      await asAdmin(`DROP OWNED BY ${role}`);
      await asAdmin(`DROP ROLE ${role}`);
      await db.drop();
    });

    it('serves with them, and cannot delete or change audit events; housekeeping still prunes', async function () {
      this.timeout(60_000);
      s = await start();
      expect((await healthOf(s.address).check({ service: '' })).status).to.equal(Serving.SERVING);
      const account = newAccount('grants');
      await s.client.auth.register(account);
      await s.client.auth.login(account);
      await seedEvents(db.url);
      await attackAuditTrail(serviceUrl, db.url);
      const counts = await pruneOnce(s.app.db, { ...HOUSEKEEPING, AUDIT_RETENTION_DAYS: 1 });
      expect(counts.auditEvents).to.equal(1);
      expect((await oldAndRecent(db.url)).old).to.equal(0);
      expect(s.logs.filter((l) => l.includes('GRANT'))).to.deep.equal([]);
    });

    it('without INSERT on audit_events: NOT_SERVING, the exact GRANT logged once; SERVING after the GRANT and a restart', async function () {
      this.timeout(60_000);
      await asAdmin(`REVOKE INSERT ON audit_events FROM ${role}`);
      s = await start();
      expect((await healthOf(s.address).check({ service: '' })).status).to.equal(Serving.NOT_SERVING);
      const grant = `GRANT INSERT ON TABLE audit_events TO ${role};`;
      const lines = s.logs.filter((l) => l.includes('GRANT'));
      expect(lines).to.have.length(1);
      expect(lines[0]).to.include(grant);
      expect(JSON.parse(lines[0] as string).grants).to.deep.equal([grant]);
      await s.stop();
      await asAdmin(grant);
      s = await start();
      expect((await healthOf(s.address).check({ service: '' })).status).to.equal(Serving.SERVING);
      expect(s.logs.filter((l) => l.includes('GRANT'))).to.deep.equal([]);
    });
  });

  it("has the README's grant list generated from src/db/privileges.ts (npm run gen:config)", () => {
    const readme = fs.readFileSync(README, 'utf8');
    expect(readme, 'README.md database grants are stale: npm run gen:config').to.equal(withGrants(readme));
    for (const grant of grantStatements('connectsphere_app')) expect(readme).to.include(grant);
    expect(REQUIRED.some((r) => r.object === 'audit_events')).to.equal(true);
  });
});
