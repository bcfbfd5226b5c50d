import fs from 'node:fs';
import { expect } from 'chai';
import { Code, connect } from '../src/client.js';
import { tempDataDir } from '../src/db/embedded.js';
import { createTestDatabase, type TestDatabase } from './helpers/postgres.js';
import { getUserOnSeveralWorkers, spawnServer } from './helpers/process.js';
import { newAccount } from './helpers/server.js';

describe('server process lifecycle', () => {
  describe('on the embedded PostgreSQL', () => {
    let dataDir: string;
    before(() => {
      dataDir = tempDataDir('cs-life-');
    });
    after(() => {
      fs.rmSync(dataDir, { recursive: true, force: true });
    });

    it('keeps users across a clean restart and a SIGKILL on the same DATA_DIR, and exits 0 on SIGTERM', async function () {
      this.timeout(120_000);
      const env = { DATA_DIR: dataDir, DATABASE_URL: '' };
      const first = await spawnServer(env);
      const a = newAccount('persist');
      let client = connect(`127.0.0.1:${first.port}`);
      await client.auth.register(a);
      client.close();
      first.child.kill('SIGTERM');
      expect((await first.exited).code).to.equal(0);
      expect(first.output.join('\n')).to.match(/"msg":"stopped"/);

      const second = await spawnServer(env);
      client = connect(`127.0.0.1:${second.port}`);
      expect((await client.auth.login(a)).user?.email).to.equal(a.email);
      const b = newAccount('persist');
      await client.auth.register(b);
      client.close();
      // Killed without a chance to stop its database: the next start must take the directory over.
      second.child.kill('SIGKILL');
      await second.exited;

      const third = await spawnServer(env);
      client = connect(`127.0.0.1:${third.port}`);
      expect((await client.auth.login(a)).user?.email).to.equal(a.email);
      expect((await client.auth.login(b)).user?.email).to.equal(b.email);
      client.close();
      third.child.kill('SIGINT');
      expect((await third.exited).code).to.equal(0);
    });
  });

  describe('WORKERS (Node cluster)', () => {
    it('runs WORKERS servers on one port, spreads connections over them, and stops them all on SIGTERM', async function () {
      this.timeout(60_000);
      const db = await createTestDatabase();
      const proc = await spawnServer({ DATABASE_URL: db.url, WORKERS: '2' });
      try {
        await proc.waitForLine(/"workers":2,"msg":"SERVING"/);
        const workers = await getUserOnSeveralWorkers(proc);
        expect(workers.size, 'GetUser served by both workers').to.equal(2);
        proc.child.kill('SIGTERM');
        expect((await proc.exited).code).to.equal(0);
        expect(proc.output.filter((l) => l.includes('"msg":"stopped"'))).to.have.length(3);
      } finally {
        proc.child.kill('SIGKILL');
        await db.drop();
      }
    });
  });

  describe('graceful shutdown', () => {
    let db: TestDatabase;
    before(async () => {
      db = await createTestDatabase();
    });
    after(async () => {
      await db?.drop();
    });

    it('lets an in-flight RPC finish within SHUTDOWN_GRACE_MS, refuses new ones, then exits 0', async () => {
      // cost 13: one hash takes ~0.5 s, long enough to signal while it runs
      const proc = await spawnServer({
        DATABASE_URL: db.url,
        BCRYPT_ROUNDS: '13',
        SHUTDOWN_GRACE_MS: '20000',
        LOG_LEVEL: 'debug',
      });
      const client = connect(`127.0.0.1:${proc.port}`, { deadlineMs: 20_000 });
      try {
        const acct = newAccount('inflight');
        const register = client.auth.register(acct);
        await proc.waitForLine(/"msg":"rpc start"/);
        proc.child.kill('SIGTERM');
        await proc.waitForLine(/"msg":"shutting down"/);
        const late = await client.auth.login(acct).then(
          () => 'answered',
          (e: { code: number }) => e.code,
        );
        const reg = await register;
        expect(reg.user?.email).to.equal(acct.email);
        expect(late, 'a call after SIGTERM is not served').to.not.equal('answered');
        const { code } = await proc.exited;
        expect(code).to.equal(0);
        expect(proc.output.join('\n')).to.match(/"forced":false/);
      } finally {
        client.close();
        proc.child.kill('SIGKILL');
      }
    });

    it('cancels an RPC still running when the grace period ends, and still exits 0', async () => {
      // cost 15: one hash takes ~2 s, far longer than the 200 ms grace period
      const proc = await spawnServer({
        DATABASE_URL: db.url,
        BCRYPT_ROUNDS: '15',
        SHUTDOWN_GRACE_MS: '200',
        LOG_LEVEL: 'debug',
      });
      const client = connect(`127.0.0.1:${proc.port}`, { deadlineMs: 20_000 });
      try {
        const register = client.auth.register(newAccount('cut'));
        await proc.waitForLine(/"msg":"rpc start"/);
        const signalled = Date.now();
        proc.child.kill('SIGTERM');
        const err = await register.then(
          () => expect.fail('the call should have been cancelled'),
          (e: { code: number }) => e,
        );
        expect(err.code).to.be.oneOf([Code.CANCELLED, Code.UNAVAILABLE]);
        expect(Date.now() - signalled, 'cancelled right after the 200 ms grace period').to.be.lessThan(1500);
        // The process itself exits once libuv's pool finishes the hash it is running (Node joins
        // its threads at exit): at most one hash later.
        const { code } = await proc.exited;
        expect(code).to.equal(0);
        expect(proc.output.join('\n')).to.match(/"forced":true/);
      } finally {
        client.close();
        proc.child.kill('SIGKILL');
      }
    });
  });
});
