/**
 * The gRPC connection knobs for load balancers, on the real server: GRPC_MAX_CONNECTION_AGE_MS
 * ends a connection with GOAWAY (the client's channel goes IDLE and reconnects on its next call)
 * while a call in flight finishes within GRPC_MAX_CONNECTION_AGE_GRACE_MS, and
 * GRPC_KEEPALIVE_TIME_MS makes the server ping its clients.
 */
import http2 from 'node:http2';
import { Client, connectivityState, credentials } from '@grpc/grpc-js';
import { expect } from 'chai';
import pg from 'pg';
import { promiseClient } from '../src/client.js';
import { UserServiceService } from '../src/gen/connectsphere/user/v1/user.js';
import { newAccount, startTestServer, type TestServer } from './helpers/server.js';
import { until } from './helpers/wait.js';

describe('gRPC connections for load balancers', () => {
  describe('GRPC_MAX_CONNECTION_AGE_MS', () => {
    let s: TestServer;
    before(async () => {
      s = await startTestServer({
        GRPC_MAX_CONNECTION_AGE_MS: '500',
        GRPC_MAX_CONNECTION_AGE_GRACE_MS: '60000',
      });
    });
    after(() => s?.stop());

    it('ends a connection with GOAWAY after its age; a call in flight then still completes, and the next call reconnects', async function () {
      this.timeout(90_000); // the waits below fail first, naming what did not happen
      const acct = newAccount('age');
      const reg = await s.client.auth.register(acct);
      const id = reg.user?.id as string;
      // a channel with a connection of its own
      const channel = new Client(s.address, credentials.createInsecure(), {
        'grpc.use_local_subchannel_pool': 1,
      });
      const users = promiseClient(UserServiceService, channel, {
        deadlineMs: 60_000,
        token: reg.tokens?.accessToken as string,
      });
      const state = () => channel.getChannel().getConnectivityState(false);
      try {
        const me = await users.getUser({ lookup: { $case: 'id', value: id } });
        expect(me.email).to.equal(acct.email);
        await until(
          'the first connection is ended by the server (GOAWAY: the channel goes IDLE)',
          () => state() === connectivityState.IDLE,
          20_000,
        );

        // The next call opens a second connection; it waits there for a row the test holds locked
        // until that connection's GOAWAY has come too, so the GOAWAY finds it in flight.
        const lock = new pg.Client({ connectionString: s.db.url });
        await lock.connect();
        try {
          await lock.query('BEGIN');
          await lock.query('SELECT 1 FROM users WHERE id = $1 FOR UPDATE', [id]);
          const inFlight = users.updateUser({
            user: { ...me, displayName: 'Aged Out' },
            updateMask: ['display_name'],
            currentPassword: '',
          });
          inFlight.catch(() => {}); // awaited below
          await until(
            'UpdateUser waits for the locked row',
            async () => {
              const [row] = await s.sql<{ n: number }>(
                `SELECT count(*)::int AS n FROM pg_stat_activity
               WHERE datname = current_database() AND wait_event_type = 'Lock'`,
              );
              return (row?.n ?? 0) > 0;
            },
            20_000,
          );
          await until(
            'the second connection is ended by the server while UpdateUser is in flight',
            () => state() === connectivityState.IDLE,
            20_000,
          );
          await lock.query('COMMIT');
          const updated = await inFlight;
          expect(updated.displayName).to.equal('Aged Out');
        } finally {
          await lock.end();
        }

        const again = await users.getUser({ lookup: { $case: 'id', value: id } });
        expect(again.displayName).to.equal('Aged Out');
      } finally {
        channel.close();
      }
    });
  });

  describe('GRPC_KEEPALIVE_TIME_MS', () => {
    let s: TestServer;
    before(async () => {
      s = await startTestServer({ GRPC_KEEPALIVE_TIME_MS: '50' });
    });
    after(() => s?.stop());

    it('pings each client connection (HTTP/2 PING) at that interval, with or without calls', async function () {
      this.timeout(60_000);
      const session = http2.connect(`http://${s.address}`);
      let pings = 0;
      session.on('ping', () => {
        pings++;
      });
      try {
        await until('three pings from the server on a connection without calls', () => pings >= 3, 20_000);
      } finally {
        session.close();
      }
    });
  });
});
