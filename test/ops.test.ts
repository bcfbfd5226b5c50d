import { credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import { expect } from 'chai';
import { Code, connect } from '../src/client.js';
import { freePort } from '../src/db/embedded.js';
import { AuthServiceClient } from '../src/gen/connectsphere/auth/v1/auth.js';
import { get, type Sample, scrape, seriesValue } from './helpers/metrics.js';
import { createTestDatabase } from './helpers/postgres.js';
import { getUserOnSeveralWorkers, runCli, spawnServer } from './helpers/process.js';
import { ReflectionClient } from './helpers/reflection.js';
import { expectCode, healthOf, newAccount, startTestServer, type TestServer } from './helpers/server.js';
import { until } from './helpers/wait.js';

const AUTH = 'connectsphere.auth.v1.AuthService';
const USER = 'connectsphere.user.v1.UserService';
const rpc = (service: string, method: string, extra: Record<string, string> = {}) => ({
  grpc_service: service,
  grpc_method: method,
  ...extra,
});
/** How much each series moved between two scrapes. */
const delta = (before: Sample[], after: Sample[], name: string, labels: Record<string, string>) =>
  (seriesValue(after, name, labels) ?? 0) - (seriesValue(before, name, labels) ?? 0);

describe('operations port', () => {
  let s: TestServer;
  let ops: number;
  before(async () => {
    ops = await freePort();
    s = await startTestServer({
      OPS_PORT: String(ops),
      DB_POOL_MAX: '2',
      DB_POOL_MIN: '0',
      DB_POOL_ACQUIRE_MS: '30000', // a call waits for the pool until the test lets it go
      LOGIN_MAX_FAILURES: '2',
      // nothing but the test's own calls asks the pool for a connection
      DB_HEALTH_INTERVAL_MS: '0',
      PRUNE_INTERVAL_S: '0',
    });
  });
  after(async () => {
    await s?.stop();
  });

  it('answers /healthz, /readyz and the JWK Set; 404 for other paths, 405 for other methods', async () => {
    expect(await get(ops, '/healthz')).to.include({ status: 200, body: 'ok\n' });
    expect(await get(ops, '/readyz')).to.include({ status: 200, body: 'ready\n' });
    const jwks = await get(ops, '/.well-known/jwks.json');
    expect(jwks.status).to.equal(200);
    expect(jwks.type).to.match(/^application\/json/);
    const served = JSON.parse(jwks.body) as { keys: { kid: string }[] };
    const viaGrpc = await s.client.auth.getJwks({});
    expect(served.keys.map((k) => k.kid)).to.deep.equal(viaGrpc.keys.map((k) => k.kid));
    expect((await get(ops, '/nothing-here')).status).to.equal(404);
    const post = await get(ops, '/metrics', 'POST');
    expect(post.status).to.equal(405);
    expect((await get(ops, '/metrics', 'HEAD')).status).to.equal(200);
  });

  it('counts every RPC with go-grpc-prometheus names, types and codes: ours, health and reflection', async () => {
    const before = await scrape(ops);
    await s.client.auth.register(newAccount('ops'));
    await expectCode(
      s.client.users.getUser({ lookup: { $case: 'id', value: crypto.randomUUID() } }),
      Code.UNAUTHENTICATED,
    );
    await healthOf(s.address).check({ service: '' });
    const reflection = new ReflectionClient(s.address);
    await reflection.listServices();
    reflection.close();
    const after = await scrape(ops);

    const handled = 'grpc_server_handled_total';
    expect(
      delta(before, after, handled, rpc(AUTH, 'Register', { grpc_type: 'unary', grpc_code: 'OK' })),
    ).to.equal(1);
    expect(delta(before, after, handled, rpc(USER, 'GetUser', { grpc_code: 'Unauthenticated' }))).to.equal(1);
    expect(delta(before, after, 'grpc_server_started_total', rpc(USER, 'GetUser'))).to.equal(1);
    expect(delta(before, after, 'grpc_server_handling_seconds_count', rpc(USER, 'GetUser'))).to.equal(1);
    expect(delta(before, after, 'grpc_server_msg_received_total', rpc(USER, 'GetUser'))).to.equal(1);
    expect(
      delta(before, after, handled, rpc('grpc.health.v1.Health', 'Check', { grpc_code: 'OK' })),
    ).to.equal(1);
    const reflectionInfo = rpc('grpc.reflection.v1.ServerReflection', 'ServerReflectionInfo', {
      grpc_type: 'bidi_stream',
    });
    expect(delta(before, after, 'grpc_server_started_total', reflectionInfo)).to.equal(1);
    expect(delta(before, after, 'grpc_server_msg_sent_total', reflectionInfo)).to.be.at.least(1);
    // the process's own figures are there too
    expect(seriesValue(after, 'process_cpu_user_seconds_total')).to.be.a('number');
  });

  it('shows the pool: used connections and pending requests while it is held, then wait and use times', async () => {
    const acct = newAccount('pool');
    const reg = await s.client.auth.register(acct);
    const me = connect(s.address, { token: reg.tokens?.accessToken, deadlineMs: 60_000 });
    const before = await scrape(ops);
    expect(seriesValue(before, 'db_client_connection_max')).to.equal(2);
    expect(seriesValue(before, 'db_client_connection_idle_min')).to.equal(0);

    // Both connections lent to transactions that wait for the test: every other query waits for one.
    let release = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const holders = [0, 1].map(() => s.app.db.run(() => gate));
    try {
      await until('both connections lent', async () => {
        return seriesValue(await scrape(ops), 'db_client_connection_count', { state: 'used' }) === 2;
      });
      // three lookups: two batches wait for the pool (at most two in flight), the third in its batcher
      const calls = [0, 1, 2].map(() =>
        me.users.getUser({ lookup: { $case: 'id', value: reg.user?.id ?? '' } }),
      );
      const held = await until('requests pending on the pool', async () => {
        const now = await scrape(ops);
        return (
          seriesValue(now, 'db_client_connection_pending_requests') === 2 &&
          (seriesValue(now, 'db_batch_pending_lookups') ?? 0) >= 1
        );
      });
      expect(held).to.be.a('number');
      release();
      await Promise.all([...holders, ...calls]);
    } finally {
      release();
      me.close();
    }
    const after = await scrape(ops);
    expect(seriesValue(after, 'db_client_connection_pending_requests')).to.equal(0);
    expect(seriesValue(after, 'db_batch_pending_lookups')).to.equal(0);
    expect(delta(before, after, 'db_client_connection_wait_time_seconds_count', {})).to.be.at.least(4);
    expect(delta(before, after, 'db_client_connection_use_time_seconds_count', {})).to.be.at.least(4);
    // the lookups that waited for a connection show in the upper buckets of the wait time
    expect(seriesValue(after, 'db_client_connection_wait_time_seconds_sum')).to.be.greaterThan(
      seriesValue(before, 'db_client_connection_wait_time_seconds_sum') ?? 0,
    );
  });

  it('counts a call that got no connection within DB_POOL_ACQUIRE_MS as a pool timeout', async () => {
    const port = await freePort();
    const quick = await startTestServer({
      OPS_PORT: String(port),
      DB_POOL_MAX: '1',
      DB_POOL_MIN: '0',
      DB_POOL_ACQUIRE_MS: '3000', // long enough to open a connection at start-up on a busy machine
      DB_HEALTH_INTERVAL_MS: '0',
      PRUNE_INTERVAL_S: '0',
    });
    let release = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    try {
      const before = await scrape(port);
      const holder = quick.app.db.run(() => gate); // the only connection, until the test lets it go
      await until('the connection lent', async () => {
        return seriesValue(await scrape(port), 'db_client_connection_count', { state: 'used' }) === 1;
      });
      // Login's attempt counter needs a connection first
      await expectCode(quick.client.auth.login(newAccount('timeout')), Code.RESOURCE_EXHAUSTED, /connection/);
      release();
      await holder;
      const after = await scrape(port);
      expect(delta(before, after, 'db_client_connection_timeouts_total', {})).to.equal(1);
    } finally {
      release();
      await quick.stop();
    }
  });

  it('counts logins, refreshes and service tokens by outcome, and times password hashing', async () => {
    const acct = newAccount('outcomes');
    const before = await scrape(ops);
    const reg = await s.client.auth.register(acct);
    await s.client.auth.login(acct);
    for (let i = 0; i < 2; i++) {
      await expectCode(s.client.auth.login({ ...acct, password: 'wrong password 1' }), Code.UNAUTHENTICATED);
    }
    await expectCode(s.client.auth.login(acct), Code.RESOURCE_EXHAUSTED, /too many failed attempts/);
    const rotated = await s.client.auth.refreshToken({ refreshToken: reg.tokens?.refreshToken ?? '' });
    await expectCode(
      s.client.auth.refreshToken({ refreshToken: reg.tokens?.refreshToken ?? '' }),
      Code.UNAUTHENTICATED,
      /already used/,
    );
    await expectCode(
      s.client.auth.refreshToken({ refreshToken: 'not-a-refresh-token' }),
      Code.UNAUTHENTICATED,
    );
    expect(rotated.tokens?.accessToken).to.be.a('string');
    const made = await runCli(['service-account', 'create', 'ops-metrics', '--scopes', 'users.read'], {
      DATABASE_URL: s.db.url,
    });
    expect(made.code, made.output).to.equal(0);
    const svc = JSON.parse(made.output.slice(made.output.indexOf('{'), made.output.lastIndexOf('}') + 1)) as {
      client_id: string;
      client_secret: string;
    };
    await s.client.auth.issueServiceToken({ clientId: svc.client_id, clientSecret: svc.client_secret });
    const after = await scrape(ops);

    const login = (outcome: string) => delta(before, after, 'auth_login_total', { outcome });
    expect([login('success'), login('bad_credentials'), login('throttled'), login('refused')]).to.deep.equal([
      1, 2, 1, 0,
    ]);
    const refresh = (outcome: string) => delta(before, after, 'auth_refresh_total', { outcome });
    expect([refresh('rotated'), refresh('replay'), refresh('invalid'), refresh('grace')]).to.deep.equal([
      1, 1, 1, 0,
    ]);
    expect(delta(before, after, 'auth_service_tokens_issued_total', {})).to.equal(1);
    // one hash (Register); compares for the login and the two wrong passwords (the throttled one has none)
    expect(delta(before, after, 'password_hash_duration_seconds_count', { operation: 'hash' })).to.equal(1);
    expect(delta(before, after, 'password_hash_duration_seconds_count', { operation: 'compare' })).to.equal(
      3,
    );
    expect(seriesValue(after, 'password_hash_queue_length')).to.equal(0);
    expect(seriesValue(after, 'password_hash_in_flight')).to.equal(0);
  });

  it('sends the request id back in the initial metadata and logs it with the trace id, client address and subject', async () => {
    const acct = newAccount('rid');
    const reg = await s.client.auth.register(acct);
    const raw = new AuthServiceClient(s.address, credentials.createInsecure());
    const call = (password: string, headers: Record<string, string>) =>
      new Promise<{ sent: Metadata; error?: ServiceError }>((resolve) => {
        const md = new Metadata();
        for (const [k, v] of Object.entries(headers)) md.set(k, v);
        let sent = new Metadata();
        const c = raw.login({ email: acct.email, password }, md, (error) =>
          resolve({ sent, error: error ?? undefined }),
        );
        c.on('metadata', (m) => {
          sent = m;
        });
      });
    try {
      const trace = '4bf92f3577b34da6a3ce929d0e0e4736';
      const ok = await call(acct.password, {
        'x-request-id': 'ops-test-request-1',
        traceparent: `00-${trace}-00f067aa0ba902b7-01`,
      });
      expect(ok.error).to.equal(undefined);
      expect(ok.sent.get('x-request-id')).to.deep.equal(['ops-test-request-1']);
      const failed = await call('wrong password 2', { 'x-request-id': 'ops-test-request-2' });
      expect(failed.error?.code).to.equal(Code.UNAUTHENTICATED);
      expect(failed.sent.get('x-request-id'), 'on a failure too').to.deep.equal(['ops-test-request-2']);
      const fresh = await call(acct.password, { 'x-request-id': 'not allowed!' });
      const replaced = String(fresh.sent.get('x-request-id')[0]);
      expect(replaced).to.match(/^[0-9a-f-]{36}$/);

      const lineOf = (id: string) =>
        s.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.request_id === id);
      const [line] = lineOf('ops-test-request-1');
      expect(line).to.include({
        msg: 'rpc',
        method: `/${AUTH}/Login`,
        trace_id: trace,
        client_address: '127.0.0.1',
      });
      expect(lineOf('ops-test-request-2')[0]).to.include({ code: 'UNAUTHENTICATED' });
      expect(lineOf(replaced)).to.have.length(1);
      // the subject of an authenticated call is its user id, never its email
      await connect(s.address, { token: reg.tokens?.accessToken }).auth.listSessions(
        {},
        {
          metadata: (() => {
            const m = new Metadata();
            m.set('x-request-id', 'ops-test-request-3');
            return m;
          })(),
        },
      );
      const [authed] = lineOf('ops-test-request-3');
      expect(authed).to.include({ subject: `user:${reg.user?.id}` });
      expect(JSON.stringify(authed)).to.not.include(acct.email);
    } finally {
      raw.close();
    }
  });
});

describe('operations port with WORKERS=2', () => {
  it("serves on the primary one /metrics summed over the workers, and /readyz once they're all ready", async function () {
    this.timeout(60_000);
    const db = await createTestDatabase();
    const ops = await freePort();
    const proc = await spawnServer({ DATABASE_URL: db.url, WORKERS: '2', OPS_PORT: String(ops) });
    try {
      await proc.waitForLine(/"workers":2,"msg":"SERVING"/);
      await until('ready', async () => (await get(ops, '/readyz')).status === 200);
      const workers = await getUserOnSeveralWorkers(proc, 6);
      expect(workers.size, 'GetUser served by both workers').to.equal(2);
      const samples = await scrape(ops);
      expect(
        seriesValue(samples, 'grpc_server_handled_total', rpc(USER, 'GetUser', { grpc_code: 'OK' })),
      ).to.equal(6);
      expect(
        seriesValue(samples, 'grpc_server_handled_total', rpc(AUTH, 'Register', { grpc_code: 'OK' })),
      ).to.equal(1);
      // two pools of DB_POOL_MAX (30) each
      expect(seriesValue(samples, 'db_client_connection_max')).to.equal(60);
    } finally {
      proc.child.kill('SIGTERM');
      await proc.exited;
      await db.drop();
    }
  });
});
