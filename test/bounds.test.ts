/**
 * Answers and log lines a caller cannot blow up (issue 16): at most 10 field violations, 64
 * characters of any caller value, a status message of at most 1 KB and details of at most 4 KB,
 * log lines of at most 8 KB; permission is decided before the update mask is looked at.
 */
import { credentials } from '@grpc/grpc-js';
import { expect } from 'chai';
import { Code, fieldViolations, promiseClient, type ServiceError } from '../src/client.js';
import type { User } from '../src/gen/connectsphere/user/v1/user.js';
import {
  HealthCheckResponse_ServingStatus,
  HealthClient,
  HealthService,
} from '../src/gen/health/v1/health.js';
import { expectCode, newAccount, startTestServer, type TestServer } from './helpers/server.js';
import { until } from './helpers/wait.js';

describe('bounded answers and log lines', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer();
  });
  after(async () => {
    await s?.stop();
  });

  const signUp = async () => {
    const acct = newAccount('bounds');
    const reg = await s.client.auth.register(acct);
    return { acct, user: reg.user as User, client: s.client.withToken(reg.tokens?.accessToken ?? '') };
  };
  /** `n` distinct unknown update_mask paths of `length` characters each. */
  const unknownPaths = (n: number, length = 20) =>
    Array.from({ length: n }, (_, i) => `no_such_field_${i}_`.padEnd(length, 'x'));
  const detailsOf = (err: { metadata: { get(key: string): unknown[] } }) =>
    err.metadata.get('grpc-status-details-bin')[0] as Buffer;

  it('decides permission before the mask: a stranger with 500 unknown paths gets PERMISSION_DENIED', async () => {
    const me = await signUp();
    const other = await signUp();
    await expectCode(
      me.client.users.updateUser({ user: other.user, currentPassword: '', updateMask: unknownPaths(500) }),
      Code.PERMISSION_DENIED,
      /only change your own account/,
    );
  });

  it('answers 500 unknown paths with at most 10 violations, a 1 KB message and 4 KB of details; the connection keeps working', async () => {
    const me = await signUp();
    const err = await expectCode(
      me.client.users.updateUser({ user: me.user, currentPassword: '', updateMask: unknownPaths(500, 100) }),
      Code.INVALID_ARGUMENT,
    );
    const violations = fieldViolations(err);
    expect(violations).to.have.length.of.at.most(10).and.length.of.at.least(2);
    expect(violations.at(-1)?.description).to.match(/and \d+ more violation/);
    const shown = violations.length - 1;
    expect(violations.at(-1)?.description).to.include(`and ${500 - shown} more`);
    expect(Buffer.byteLength(err.details)).to.be.at.most(1024);
    expect(detailsOf(err).length).to.be.at.most(4096);
    // the same channel (one connection) answers the next call
    const again = await me.client.users.getUser({ lookup: { $case: 'id', value: me.user.id } });
    expect(again.id).to.equal(me.user.id);
  });

  it('echoes at most 64 characters of a caller value', async () => {
    const me = await signUp();
    const long = `unknown_${'y'.repeat(300)}`;
    const err = await expectCode(
      me.client.users.updateUser({ user: me.user, currentPassword: '', updateMask: [long] }),
      Code.INVALID_ARGUMENT,
    );
    const [v] = fieldViolations(err);
    expect(v?.description).to.include(`"${long.slice(0, 64)}…"`);
    expect(v?.description).to.not.include(long.slice(0, 65));
    expect(err.details).to.not.include(long.slice(0, 65));
  });

  it('writes at most 8 KB per log line for a 58 KB request', async () => {
    const me = await signUp();
    const paths = unknownPaths(500, 116); // ~58 KB of mask
    const before = s.logs.length;
    await expectCode(
      me.client.users.updateUser({ user: me.user, currentPassword: '', updateMask: paths }),
      Code.INVALID_ARGUMENT,
    );
    const lines = s.logs.slice(before);
    const rpc = lines.find((l) => l.includes('"method":"/connectsphere.user.v1.UserService/UpdateUser"'));
    expect(rpc, 'the call is logged').to.not.equal(undefined);
    for (const line of lines) expect(Buffer.byteLength(line)).to.be.at.most(8192);
  });
});

describe('database failures in the logs', () => {
  const BCRYPT = /\$2[aby]\$\d\d\$/;
  /**
   * Starts a server with `env`, then, behind its back, makes every INSERT of a user named
   * "Boom Boom" and every new session fail with the whole row (email and bcrypt hash included) in
   * PostgreSQL's message; Register and Login then meet an unexpected database error. Returns the
   * log lines written from the calls on and the values that must not appear in them.
   */
  const provoke = async (env: Record<string, string>) => {
    const s = await startTestServer(env);
    try {
      const victim = newAccount('dbfail');
      await s.client.auth.register(victim);
      await s.sql(`
        CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'refused row %', NEW USING DETAIL = 'row ' || NEW::text; END $$;
        CREATE TRIGGER boom BEFORE INSERT ON users FOR EACH ROW
          WHEN (NEW.display_name = 'Boom Boom') EXECUTE FUNCTION boom();
        CREATE FUNCTION boom_session() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'refused % of %', NEW, (SELECT u FROM users u WHERE u.id = NEW.user_id); END $$;
        CREATE TRIGGER boom_session BEFORE INSERT ON sessions FOR EACH ROW EXECUTE FUNCTION boom_session();`);
      const [{ hash }] = await s.sql<{ hash: string }>(
        'SELECT password_hash AS hash FROM users WHERE email = $1',
        [victim.email],
      );
      const before = s.logs.length;
      const acct = { ...newAccount('dbfail'), displayName: 'Boom Boom' };
      await expectCode(s.client.auth.register(acct), Code.INTERNAL, /^internal error \(id /);
      await expectCode(
        s.client.auth.login({ email: victim.email, password: victim.password }),
        Code.INTERNAL,
        /^internal error \(id /,
      );
      const lines = s.logs.slice(before);
      const failures = lines.filter((l) => l.includes('"msg":"unexpected error"'));
      expect(failures, 'each failure is logged').to.have.length(2);
      return { lines, failures, secrets: [acct.email, victim.email, hash, acct.displayName, acct.password] };
    } finally {
      await s.stop();
    }
  };

  for (const level of ['info', 'debug']) {
    it(`logs neither the SQL nor a parameter, email or hash of a failed statement at LOG_LEVEL=${level}`, async () => {
      const { lines, failures, secrets } = await provoke({ LOG_LEVEL: level });
      for (const line of lines) {
        for (const secret of secrets) expect(line, secret).to.not.include(secret);
        expect(line).to.not.match(BCRYPT);
        expect(line).to.not.match(/INSERT INTO|"parameters"|"detail"/);
      }
      // what the operator gets instead: the SQLSTATE and a message without the values
      expect(JSON.parse(failures[0] as string).err).to.include({ type: 'DatabaseFailure', code: 'P0001' });
    });
  }

  it('with DB_ECHO=true logs the SQL of the failed statement, still without a parameter or hash', async () => {
    const { lines, failures, secrets } = await provoke({ DB_ECHO: 'true' });
    expect(JSON.parse(failures[0] as string).err.sql).to.match(/INSERT INTO users/);
    for (const line of lines) {
      for (const secret of secrets) expect(line, secret).to.not.include(secret);
      expect(line).to.not.match(BCRYPT);
    }
  });
});

describe('streams, connections and health watchers', () => {
  /** A safety net well inside the test's timeout, so a failure names its condition. */
  const WAIT = 10_000;
  /** A health client on a connection of its own (grpc-js shares one per target and options otherwise). */
  const ownChannel = (s: TestServer) =>
    new HealthClient(s.address, credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
  /** Opens a Watch; `served` once the server's first answer arrived; `failed` with its error code. */
  const watch = (client: InstanceType<typeof HealthClient>, service = '') => {
    const stream = client.watch({ service });
    const w = { stream, served: false, failed: undefined as number | undefined };
    stream.on('data', () => {
      w.served = true;
    });
    stream.on('error', (err: ServiceError) => {
      w.failed = err.code;
    });
    return w;
  };
  const cancelAll = (ws: { stream: { cancel(): void } }[]) => {
    for (const w of ws) w.stream.cancel();
  };

  it('serves at most GRPC_MAX_CONCURRENT_STREAMS calls of one connection at once; the rest wait their turn', async () => {
    const s = await startTestServer({ GRPC_MAX_CONCURRENT_STREAMS: '5' });
    const client = ownChannel(s);
    let most = 0;
    const open = () => {
      const n = s.app.server.stats().healthWatchers;
      most = Math.max(most, n);
      return n;
    };
    try {
      const ws = Array.from({ length: 8 }, () => watch(client));
      await until('five streams served', () => open() === 5 && ws.filter((w) => w.served).length === 5, WAIT);
      // nothing ends while eight are open: exactly five are served, three wait at the client
      expect(ws.filter((w) => w.served)).to.have.length(5);
      const served = ws.filter((w) => w.served);
      cancelAll(served.slice(0, 3));
      await until(
        'the three waiting ones served',
        () => ws.every((w) => w.served || w.failed !== undefined),
        WAIT,
      );
      expect(ws.filter((w) => w.failed === undefined)).to.have.length(5);
      await until('five open', () => open() === 5, WAIT);
      cancelAll(ws);
      await until('every watcher released', () => open() === 0, WAIT);
      expect(most).to.equal(5);
    } finally {
      client.close();
      await s.stop();
    }
  });

  it('refuses health watchers beyond HEALTH_MAX_WATCHERS with RESOURCE_EXHAUSTED, and releases cancelled ones', async () => {
    const s = await startTestServer({ HEALTH_MAX_WATCHERS: '3' });
    const client = ownChannel(s);
    try {
      // a name the server does not serve holds a place too (and gets SERVICE_UNKNOWN)
      const ws = [
        watch(client),
        watch(client, 'connectsphere.user.v1.UserService'),
        watch(client, 'x'.repeat(500)),
      ];
      await until(
        'three watchers',
        () => s.app.server.stats().healthWatchers === 3 && ws.every((w) => w.served),
        WAIT,
      );
      const fourth = watch(client);
      await until('the fourth refused', () => fourth.failed !== undefined, WAIT);
      expect(fourth.failed).to.equal(Code.RESOURCE_EXHAUSTED);
      expect(s.app.server.stats().healthWatchers).to.equal(3);
      cancelAll(ws);
      await until('every watcher released', () => s.app.server.stats().healthWatchers === 0, WAIT);
      // and the places are free again
      const again = watch(client);
      await until('a new watcher served', () => again.served, WAIT);
      again.stream.cancel();
      await until('released', () => s.app.server.stats().healthWatchers === 0, WAIT);
    } finally {
      client.close();
      await s.stop();
    }
  });

  it('listens on every address of a host name (GRPC_HOST=localhost: 127.0.0.1, and ::1 where there is IPv6)', async () => {
    const s = await startTestServer({ GRPC_HOST: 'localhost' });
    const client = ownChannel(s); // s.address is 127.0.0.1
    try {
      const health = promiseClient(HealthService, client, { deadlineMs: 5000 });
      expect((await health.check({ service: '' })).status).to.equal(
        HealthCheckResponse_ServingStatus.SERVING,
      );
    } finally {
      client.close();
      await s.stop();
    }
  });

  it('closes connections beyond GRPC_MAX_CONNECTIONS as they arrive; a place that frees up is taken again', async () => {
    const s = await startTestServer({ GRPC_MAX_CONNECTIONS: '2' });
    const [a, b, c, d] = [ownChannel(s), ownChannel(s), ownChannel(s), ownChannel(s)];
    const check = (client: InstanceType<typeof HealthClient>) =>
      promiseClient(HealthService, client, { deadlineMs: 5000 }).check({ service: '' });
    try {
      await check(a);
      await check(b);
      expect(s.app.server.stats().connections).to.equal(2);
      await expectCode(check(c), Code.UNAVAILABLE);
      expect(s.app.server.stats().refusedConnections).to.be.at.least(1);
      expect(s.app.server.stats().connections).to.equal(2);
      a.close();
      await until('a place freed', () => s.app.server.stats().connections === 1, WAIT);
      expect((await check(d)).status).to.equal(HealthCheckResponse_ServingStatus.SERVING);
    } finally {
      for (const client of [a, b, c, d]) client.close();
      await s.stop();
    }
  });
});
