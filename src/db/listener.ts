/**
 * The cache's ears (src/db/cache.ts): one dedicated PostgreSQL connection, outside the pool, that
 * LISTENs on the channel the invalidation triggers notify (src/db/migrations/0003-cache-notices.ts)
 * and hands every notice to `onNotice`.
 *
 * It says when it can be trusted: `onListening` once LISTEN has succeeded and a probe notice sent
 * from another connection (opened for that moment) has come back (the cache may fill from then on: every change that commits later
 * is delivered; behind PgBouncer in transaction pooling mode the probe never comes back, so the
 * cache is never trusted there), `onLost` the moment it cannot be (the
 * connection failed, ended, or did not answer a ping within CACHE_LISTEN_PING_MS: a half-open
 * connection delivers nothing and says nothing). Then it reconnects with a doubling backoff
 * (100 ms up to 5 s), until `stop`.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import type { Logger } from '../logger.js';
import { connectionTls } from './database.js';
import { connectionOptions } from './url.js';

export interface NoticeListener {
  /** True while LISTEN is in effect on a live connection. */
  readonly listening: boolean;
  stop(): Promise<void>;
}

export interface ListenerOptions {
  url: string;
  channel: string;
  pingMs: number;
  connectTimeoutMs: number;
  logger: Logger;
  onNotice(payload: string): void;
  onListening(): void;
  onLost(): void;
}

/** The channel migration 0003's triggers notify (a released migration never changes: nor does this). */
export const CACHE_CHANNEL = 'connectsphere_cache';

export const LISTENER_APPLICATION_NAME = 'connectsphere-identity-listener';

export function startNoticeListener(options: ListenerOptions): NoticeListener {
  const log = options.logger.child({ component: 'cache-listener' });
  const { tls, ...target } = connectionOptions(options.url);
  let client: pg.Client | undefined;
  let listening = false;
  let stopped = false;
  let attempt = 0;
  let retryTimer: NodeJS.Timeout | undefined;
  let pingTimer: NodeJS.Timeout | undefined;

  const lost = (why: string, err?: unknown) => {
    const was = client;
    client = undefined;
    clearInterval(pingTimer);
    if (listening) {
      listening = false;
      log.warn(
        { why, err: err ? { message: (err as Error).message } : undefined },
        'cache listener lost: cache bypassed',
      );
    }
    options.onLost();
    // end() on a dead socket can hang on some failures: do not wait for it
    was?.removeAllListeners('notification');
    was?.end().catch(() => {});
    if (!stopped) {
      const delay = Math.min(5_000, 100 * 2 ** attempt++);
      retryTimer = setTimeout(connect, delay).unref();
    }
  };

  async function connect() {
    if (stopped) return;
    let encryption: Awaited<ReturnType<typeof connectionTls>> = { ssl: false };
    try {
      if (tls.effective !== 'disable') encryption = await connectionTls(tls, target.host);
    } catch (err) {
      lost('TLS files unreadable', err); // never falls back to plaintext
      return;
    }
    const settings = {
      host: target.host,
      port: target.port,
      database: target.database,
      user: target.username,
      password: target.password,
      application_name: LISTENER_APPLICATION_NAME,
      connectionTimeoutMillis: options.connectTimeoutMs,
      keepAlive: true,
      ...encryption,
    };
    const c = new pg.Client(settings);
    // the probe comes from another session (not the pool, which may be exhausted: a short-lived
    // connection of its own), so a LISTEN that only hears its own session is found out
    const sendProbe = async (payload: string) => {
      const other = new pg.Client(settings);
      other.on('error', () => {});
      try {
        await other.connect();
        await other.query('SELECT pg_notify($1, $2)', [options.channel, payload]);
      } finally {
        await other.end().catch(() => {});
      }
    };
    let failed = false;
    const fail = (why: string) => (err?: unknown) => {
      if (failed || stopped) return;
      failed = true;
      if (client === c) lost(why, err);
      else c.end().catch(() => {});
    };
    c.on('error', fail('connection error'));
    c.on('end', fail('connection ended'));
    let probeArrived: ((payload: string) => void) | undefined;
    c.on('notification', (n) => {
      if (n.channel !== options.channel || !n.payload) return;
      // probes (ours or another instance's) name no change
      if (n.payload.startsWith('probe:')) probeArrived?.(n.payload);
      else options.onNotice(n.payload);
    });
    client = c;
    try {
      await c.connect();
      await c.query(`LISTEN ${pg.escapeIdentifier(options.channel)}`);
    } catch (err) {
      if (!stopped && !failed && client === c) {
        failed = true;
        if (attempt === 0)
          log.warn(
            { err: { message: (err as Error).message } },
            'cache listener cannot listen yet: cache bypassed',
          );
        lost('connect failed', err);
      }
      return;
    }
    if (stopped || failed || client !== c) return;
    // does a notice sent elsewhere reach this connection?
    const probe = `probe:${randomUUID()}`;
    const heard = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), options.pingMs);
      probeArrived = (payload) => {
        if (payload !== probe) return;
        clearTimeout(timer);
        resolve(true);
      };
      sendProbe(probe).catch(() => {
        clearTimeout(timer);
        resolve(false);
      });
    });
    probeArrived = undefined;
    if (stopped || failed || client !== c) return;
    if (!heard) {
      failed = true;
      if (attempt === 0)
        log.error(
          `the cache listener does not hear notices sent from another connection within ${options.pingMs} ms: cache bypassed. ` +
            'Behind PgBouncer in transaction pooling mode LISTEN cannot work: point CACHE_LISTEN_URL at PostgreSQL itself (or a session-mode pool)',
        );
      lost('probe notice not heard');
      return;
    }
    attempt = 0;
    listening = true;
    log.debug('cache listener listening');
    options.onListening();
    let pinging = false;
    pingTimer = setInterval(() => {
      if (pinging || client !== c) return;
      pinging = true;
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${options.pingMs} ms`)), options.pingMs);
      });
      Promise.race([c.query('SELECT 1'), late])
        .catch((err) => {
          if (!failed && client === c) {
            failed = true;
            // a half-open socket: make sure it is really gone
            (c as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
            lost('ping failed', err);
          }
        })
        .finally(() => {
          clearTimeout(timer);
          pinging = false;
        });
    }, options.pingMs).unref();
  }

  void connect();
  return {
    get listening() {
      return listening;
    },
    async stop() {
      stopped = true;
      clearTimeout(retryTimer);
      clearInterval(pingTimer);
      listening = false;
      const c = client;
      client = undefined;
      await c?.end().catch(() => {});
    },
  };
}
