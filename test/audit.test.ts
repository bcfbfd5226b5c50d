import { Metadata } from '@grpc/grpc-js';
import { expect } from 'chai';
import { Code, type ConnectSphereClient } from '../src/client.js';
import type { AuditEvent } from '../src/gen/connectsphere/user/v1/user.js';
import { AUDIT_EVENT_TYPES } from '../src/ports.js';
import { runCli } from './helpers/process.js';
import { expectCode, newAccount, startTestServer, type TestServer } from './helpers/server.js';

const withRequestId = (id: string) => {
  const metadata = new Metadata();
  metadata.set('x-request-id', id);
  return { metadata };
};

/** Every event, newest first, following the page tokens. */
async function allEvents(
  admin: ConnectSphereClient,
  filters: { subjectUserId?: string; eventTypes?: string[] } = {},
) {
  const events: AuditEvent[] = [];
  let pageToken = '';
  do {
    const page = await admin.users.listAuditEvents({
      pageSize: 1000,
      pageToken,
      subjectUserId: filters.subjectUserId ?? '',
      eventTypes: filters.eventTypes ?? [],
    });
    events.push(...page.events);
    pageToken = page.nextPageToken;
  } while (pageToken);
  return events;
}

describe('audit trail', () => {
  let s: TestServer;
  let admin: ConnectSphereClient;
  let adminId: string;
  const secrets: string[] = [];
  before(async function () {
    this.timeout(60_000);
    s = await startTestServer({ LOGIN_MAX_FAILURES: '2', REFRESH_REUSE_GRACE_SECONDS: '0' });
    const root = newAccount('auditor');
    const reg = await s.client.auth.register(root);
    adminId = reg.user?.id ?? '';
    const granted = await runCli(['grant-admin', root.email], { DATABASE_URL: s.db.url });
    expect(granted.code, granted.output).to.equal(0);
    const login = await s.client.auth.login(root);
    admin = s.client.withToken(login.tokens?.accessToken ?? '');
    secrets.push(root.password, reg.tokens?.accessToken ?? '', reg.tokens?.refreshToken ?? '');
  });
  after(async () => {
    await s?.stop();
  });

  it('records every event type from real flows, with actor, subject, client address and request id, and no secret', async function () {
    this.timeout(60_000);
    const alice = newAccount('alice');
    const reg = await s.client.auth.register(alice, withRequestId('audit-register'));
    const aliceId = reg.user?.id ?? '';
    const first = await s.client.auth.login(alice, withRequestId('audit-login'));
    await expectCode(s.client.auth.login({ ...alice, password: 'wrong password 1' }), Code.UNAUTHENTICATED);
    const stranger = newAccount('nobody');
    await expectCode(s.client.auth.login(stranger), Code.UNAUTHENTICATED);
    // a second account locked out: LOGIN_MAX_FAILURES=2
    const bob = newAccount('bob');
    await s.client.auth.register(bob);
    for (let i = 0; i < 2; i++) {
      await expectCode(
        s.client.auth.login({ ...bob, password: `wrong password ${i}` }),
        Code.UNAUTHENTICATED,
      );
    }
    await expectCode(s.client.auth.login(bob), Code.RESOURCE_EXHAUSTED);
    // a replayed refresh token
    const rotated = await s.client.auth.refreshToken({ refreshToken: first.tokens?.refreshToken ?? '' });
    await expectCode(
      s.client.auth.refreshToken({ refreshToken: first.tokens?.refreshToken ?? '' }),
      Code.UNAUTHENTICATED,
    );
    // logout, and a session revoked from another
    const second = await s.client.auth.login(alice);
    await s.client.auth.logout({ refreshToken: second.tokens?.refreshToken ?? '' });
    const third = await s.client.auth.login(alice);
    const me = s.client.withToken(third.tokens?.accessToken ?? '');
    const sessions = await me.auth.listSessions({});
    const other = sessions.sessions.find((x) => !x.current);
    await me.auth.revokeSession({ sessionId: other?.id ?? '' });
    // password and email changes
    const newPassword = 'a brand new passphrase 77';
    const changed = await me.auth.changePassword({ currentPassword: alice.password, newPassword });
    const me2 = s.client.withToken(changed.tokens?.accessToken ?? '');
    const newEmail = `renamed-${Date.now()}@example.com`;
    await me2.users.updateUser({
      user: { id: aliceId, email: newEmail, displayName: '', roles: [] },
      currentPassword: newPassword,
      updateMask: ['email'],
    });
    // an admin's role change and deletion of another user
    const carol = newAccount('carol');
    const carolId = (await s.client.auth.register(carol)).user?.id ?? '';
    await admin.users.updateUser({
      user: { id: carolId, email: '', displayName: '', roles: ['user', 'admin'] },
      currentPassword: '',
      updateMask: ['roles'],
    });
    await admin.users.deleteUser({ id: carolId });
    // service accounts: the operator's commands, and a token
    const cli = (args: string[]) => runCli(['service-account', ...args], { DATABASE_URL: s.db.url });
    const made = await cli(['create', 'audit-billing', '--scopes', 'users.read']);
    expect(made.code, made.output).to.equal(0);
    const svc = JSON.parse(made.output.slice(made.output.indexOf('{'), made.output.lastIndexOf('}') + 1)) as {
      client_id: string;
      client_secret: string;
    };
    const issued = await s.client.auth.issueServiceToken({
      clientId: svc.client_id,
      clientSecret: svc.client_secret,
    });
    expect((await cli(['rotate', 'audit-billing'])).code).to.equal(0);
    const revokedSecret = await cli(['revoke-secret', 'audit-billing']);
    expect(revokedSecret.code, revokedSecret.output).to.equal(0);
    const replaced = JSON.parse(
      revokedSecret.output.slice(
        revokedSecret.output.indexOf('{'),
        revokedSecret.output.lastIndexOf('}') + 1,
      ),
    ) as { client_secret: string };
    expect((await cli(['revoke-tokens', 'audit-billing'])).code).to.equal(0);
    expect((await cli(['delete', 'audit-billing'])).code).to.equal(0);
    secrets.push(
      alice.password,
      newPassword,
      bob.password,
      svc.client_secret,
      replaced.client_secret,
      issued.accessToken,
      ...[reg, first, second, third].flatMap((x) => [
        x.tokens?.accessToken ?? '',
        x.tokens?.refreshToken ?? '',
      ]),
      rotated.tokens?.refreshToken ?? '',
      changed.tokens?.refreshToken ?? '',
    );

    const events = await allEvents(admin);
    expect([...new Set(events.map((e) => e.eventType))].sort()).to.deep.equal([...AUDIT_EVENT_TYPES].sort());
    const of = (type: string, subject?: string) =>
      events.filter((e) => e.eventType === type && (subject === undefined || e.subjectUserId === subject));

    expect(of('user.registered', aliceId)[0]).to.deep.include({
      actorType: 'anonymous',
      actorId: '',
      clientAddress: '127.0.0.1',
      requestId: 'audit-register',
      outcome: 'success',
    });
    expect(of('login.succeeded', aliceId).find((e) => e.requestId === 'audit-login')).to.deep.include({
      actorType: 'user',
      actorId: aliceId,
    });
    const failed = of('login.failed');
    expect(
      failed.filter((e) => e.subjectUserId === aliceId),
      'a wrong password names the account',
    ).to.have.length(1);
    const unknown = failed.filter((e) => e.subjectUserId === '');
    expect(unknown, 'an unknown email has no subject').to.have.length(1);
    expect(unknown[0]?.details.email_hmac).to.match(/^[0-9a-f]{32}$/);
    expect(of('login.throttled')[0]).to.deep.include({ outcome: 'refused', subjectUserId: '' });
    expect(of('refresh.replay_detected', aliceId)[0]).to.deep.include({ outcome: 'failure' });
    expect(of('session.logged_out', aliceId)).to.have.length(1);
    expect(of('session.revoked', aliceId)[0]?.details.session_id).to.equal(other?.id);
    expect(of('password.changed', aliceId)[0]).to.deep.include({ actorType: 'user', actorId: aliceId });
    expect(of('email.changed', aliceId)).to.have.length(1);
    expect(of('roles.changed', carolId)[0]).to.deep.include({ actorType: 'user', actorId: adminId });
    expect(of('roles.changed', carolId)[0]?.details).to.deep.equal({
      roles_before: 'user',
      roles_after: 'admin,user',
    });
    expect(of('roles.changed', adminId)[0]?.actorType, 'grant-admin is an operator command').to.equal(
      'operator',
    );
    expect(of('roles.changed', adminId)[0]?.actorId).to.match(/^cli:/);
    expect(of('user.deleted', carolId)[0]).to.deep.include({ actorId: adminId });
    for (const t of ['service_account.created', 'service_account.rotated', 'service_account.deleted']) {
      expect(of(t)[0], t).to.deep.include({ actorType: 'operator', clientAddress: '' });
      expect(of(t)[0]?.details).to.include({ name: 'audit-billing', client_id: svc.client_id });
    }
    expect(of('service_token.issued')[0]).to.deep.include({ actorType: 'service_account' });

    // newest first, and nothing secret or personal anywhere in the trail
    const ids = events.map((e) => BigInt(e.id));
    expect(ids).to.deep.equal([...ids].sort((a, b) => (a < b ? 1 : a > b ? -1 : 0)));
    const stored = JSON.stringify(await s.sql('SELECT * FROM audit_events'));
    for (const secret of secrets.filter(Boolean)) expect(stored).to.not.include(secret);
    for (const email of [alice.email, newEmail, stranger.email, bob.email, carol.email]) {
      expect(stored).to.not.include(email);
    }
  });

  it('keeps the email of a failed login as a keyed hash: the same address gives the same value, another a different one', async () => {
    const tried = newAccount('tried');
    for (let i = 0; i < 2; i++) await expectCode(s.client.auth.login(tried), Code.UNAUTHENTICATED);
    await expectCode(s.client.auth.login(newAccount('else')), Code.UNAUTHENTICATED);
    const [c, b, a] = (
      await admin.users.listAuditEvents({
        pageSize: 3,
        pageToken: '',
        subjectUserId: '',
        eventTypes: ['login.failed'],
      })
    ).events;
    expect(a?.details.email_hmac).to.equal(b?.details.email_hmac);
    expect(c?.details.email_hmac).to.not.equal(a?.details.email_hmac);
  });

  it('records nothing for a change that rolled back, and no change goes without its event', async () => {
    const dave = newAccount('dave');
    const daveId = (await s.client.auth.register(dave)).user?.id ?? '';
    // an admin changes email and roles at once; the second event's insert fails
    await s.sql(
      `ALTER TABLE audit_events ADD CONSTRAINT test_refuse_roles CHECK (event_type <> 'roles.changed') NOT VALID`,
    );
    try {
      await expectCode(
        admin.users.updateUser({
          user: {
            id: daveId,
            email: `dave-new-${Date.now()}@example.com`,
            displayName: '',
            roles: ['user', 'admin'],
          },
          currentPassword: '',
          updateMask: ['email', 'roles'],
        }),
        Code.INTERNAL,
      );
    } finally {
      await s.sql('ALTER TABLE audit_events DROP CONSTRAINT test_refuse_roles');
    }
    const [row] = await s.sql<{ email: string; roles: string[] }>(
      'SELECT email, roles FROM users WHERE id = $1',
      [daveId],
    );
    expect(row, 'the change rolled back').to.deep.equal({ email: dave.email, roles: ['user'] });
    const about = await allEvents(admin, { subjectUserId: daveId });
    expect(
      about.map((e) => e.eventType),
      'and so did the event written before the failure',
    ).to.deep.equal(['user.registered']);
    // and the other way: when the event cannot be written, the change does not happen
    await s.sql(
      `ALTER TABLE audit_events ADD CONSTRAINT test_refuse_password CHECK (event_type <> 'password.changed') NOT VALID`,
    );
    const login = await s.client.auth.login(dave);
    try {
      await expectCode(
        s.client.withToken(login.tokens?.accessToken ?? '').auth.changePassword({
          currentPassword: dave.password,
          newPassword: 'another long passphrase 99',
        }),
        Code.INTERNAL,
      );
    } finally {
      await s.sql('ALTER TABLE audit_events DROP CONSTRAINT test_refuse_password');
    }
    expect((await s.client.auth.login(dave)).user?.id, 'the old password still works').to.equal(daveId);
  });

  it('lets only admins list it, filters by subject, type and time, and pages with tokens bound to the filters', async () => {
    const erin = newAccount('erin');
    const reg = await s.client.auth.register(erin);
    const erinId = reg.user?.id ?? '';
    for (let i = 0; i < 3; i++) await s.client.auth.login(erin);
    const asErin = s.client.withToken(reg.tokens?.accessToken ?? '');
    const empty = { pageSize: 0, pageToken: '', subjectUserId: '', eventTypes: [] };
    await expectCode(asErin.users.listAuditEvents(empty), Code.PERMISSION_DENIED, /only an admin/);

    const mine = await allEvents(admin, { subjectUserId: erinId });
    expect(mine.map((e) => e.eventType)).to.deep.equal([
      ...Array(3).fill('login.succeeded'),
      'user.registered',
    ]);
    const logins = await allEvents(admin, { subjectUserId: erinId, eventTypes: ['login.succeeded'] });
    expect(logins).to.have.length(3);
    // pages of 2 cover the 4 events once each, newest first
    const page1 = await admin.users.listAuditEvents({ ...empty, pageSize: 2, subjectUserId: erinId });
    const page2 = await admin.users.listAuditEvents({
      ...empty,
      pageSize: 2,
      subjectUserId: erinId,
      pageToken: page1.nextPageToken,
    });
    expect([...page1.events, ...page2.events].map((e) => e.id)).to.deep.equal(mine.map((e) => e.id));
    expect(page2.nextPageToken).to.equal('');
    await expectCode(
      admin.users.listAuditEvents({ ...empty, pageSize: 2, pageToken: page1.nextPageToken }),
      Code.INVALID_ARGUMENT,
      /other filters/,
    );
    await expectCode(
      admin.users.listAuditEvents({ ...empty, pageToken: 'forged.token' }),
      Code.INVALID_ARGUMENT,
      /page_token/,
    );
    // a time range: none in the future, all of them since a minute ago
    const future = new Date(Date.now() + 3_600_000);
    expect(
      (await admin.users.listAuditEvents({ ...empty, subjectUserId: erinId, startTime: future })).events,
    ).to.deep.equal([]);
    const recent = await admin.users.listAuditEvents({
      ...empty,
      subjectUserId: erinId,
      startTime: new Date(Date.now() - 60_000),
      endTime: future,
    });
    expect(recent.events).to.have.length(4);
    const bad = await expectCode(
      admin.users.listAuditEvents({
        ...empty,
        eventTypes: ['login.failed', 'made.up'],
        subjectUserId: 'not-a-uuid',
      }),
      Code.INVALID_ARGUMENT,
    );
    expect(bad.details).to.include('event_types[1]').and.include('subject_user_id');
    await expectCode(
      admin.users.listAuditEvents({ ...empty, startTime: future, endTime: new Date() }),
      Code.INVALID_ARGUMENT,
      /end_time/,
    );
  });

  it('is append-only: UPDATE, DELETE and TRUNCATE are refused; the retention prune deletes only events older than AUDIT_RETENTION_DAYS', async function () {
    this.timeout(30_000);
    for (const sql of [
      "UPDATE audit_events SET outcome = 'success'",
      'DELETE FROM audit_events',
      'TRUNCATE audit_events',
    ]) {
      const err = await s.sql(sql).then(
        () => null,
        (e: Error) => e,
      );
      expect(err?.message, sql).to.match(/append-only/);
    }
    await s.sql(
      `INSERT INTO audit_events (occurred_at, event_type, actor_type, outcome)
       VALUES (now() - interval '40 days', 'login.failed', 'anonymous', 'failure')`,
    );
    const [before] = await s.sql<{ old: number; all: number }>(
      `SELECT count(*) FILTER (WHERE occurred_at < now() - interval '30 days')::int AS old, count(*)::int AS all FROM audit_events`,
    );
    expect(before?.old).to.equal(1);
    const pruned = await runCli(['prune'], { DATABASE_URL: s.db.url, AUDIT_RETENTION_DAYS: '30' });
    expect(pruned.code, pruned.output).to.equal(0);
    const [after] = await s.sql<{ old: number; all: number }>(
      `SELECT count(*) FILTER (WHERE occurred_at < now() - interval '30 days')::int AS old, count(*)::int AS all FROM audit_events`,
    );
    expect(after).to.deep.equal({ old: 0, all: (before?.all ?? 0) - 1 });
  });
});
