/**
 * The composition root: config → database (embedded when DATABASE_URL is empty) → schema sync →
 * stores → security → services → handlers → gRPC server → health SERVING. Everything is created
 * here and passed down; nothing else constructs a dependency. `stop()` undoes it in reverse.
 */

import bcrypt from 'bcrypt';
import {
  AUTH_PUBLIC_METHODS,
  AuthServiceService,
  createAuthHandlers,
} from '../services/auth/auth.handlers.js';
import { createAuthService } from '../services/auth/auth.service.js';
import {
  createUserHandlers,
  USER_DEFERRED_LIVENESS,
  UserServiceService,
} from '../services/user/user.handlers.js';
import { createUserService } from '../services/user/user.service.js';
import type { AppConfig } from './config.js';
import type { Database, PoolStats } from './db/database.js';
import { openDatabase } from './db/open.js';
import { createSessionStore } from './db/session.store.js';
import { createLoginThrottleStore } from './db/throttle.store.js';
import { createUserStore } from './db/user.store.js';
import { adaptService } from './grpc/adapter.js';
import { createStrictDecoding } from './grpc/decoding.js';
import type { Logger } from './logger.js';
import { createAuthenticator } from './security/authenticator.js';
import { createPageTokenCodec } from './security/page-tokens.js';
import { createPasswordHasher } from './security/passwords.js';
import { deprioritizeThreadPool } from './security/thread-priority.js';
import { createTokenService } from './security/tokens.js';
import { type GrpcServer, startGrpcServer } from './server.js';

export interface AppStats {
  pool: PoolStats;
  hashing: { running: number; waiting: number; started: number };
  memory: NodeJS.MemoryUsage;
  databaseUp: boolean;
}

export interface App {
  readonly port: number;
  readonly db: Database;
  readonly server: GrpcServer;
  stats(): AppStats;
  /** Graceful stop: NOT_SERVING, drain RPCs (SHUTDOWN_GRACE_MS), close the pool, stop an embedded database. */
  stop(): Promise<void>;
}

export async function startApp(config: AppConfig, logger: Logger): Promise<App> {
  const cleanups: (() => Promise<unknown>)[] = [];
  const cleanup = async () => {
    for (const fn of cleanups.reverse())
      await fn().catch((err) => logger.error({ err }, 'error while stopping'));
  };
  try {
    const opened = await openDatabase(config.db, logger);
    cleanups.push(() => opened.close());
    const { db } = opened;

    const batching = { maxBatch: 500, maxInFlight: 2, maxWaitMs: config.db.pool.acquireMs };
    const users = createUserStore(db, batching);
    const sessions = createSessionStore(db, batching);
    const hasher = createPasswordHasher({
      rounds: config.auth.bcryptRounds,
      concurrency: config.auth.hashConcurrency,
      queueMax: config.auth.hashQueueMax,
    });
    await deprioritizeThreadPool(
      config.auth.hashNice,
      (cost) => bcrypt.hash('find the pool threads', cost),
      logger,
    );
    const tokens = createTokenService({
      secretKey: config.auth.secretKey,
      issuer: config.auth.issuer,
      audience: config.auth.audience,
      accessTtlS: config.auth.accessTokenTtlS,
      refreshTtlS: config.auth.refreshTokenTtlS,
    });
    const adapterOptions = {
      authenticate: createAuthenticator(tokens, sessions),
      publicMethods: new Set<string>(AUTH_PUBLIC_METHODS),
      deferredLiveness: new Set<string>(USER_DEFERRED_LIVENESS),
      logger,
    };
    const auth = createAuthService({
      users,
      sessions,
      hasher,
      tokens,
      throttle: createLoginThrottleStore(db),
      refreshReuseGraceS: config.auth.refreshReuseGraceS,
      loginPolicy: config.auth.login,
    });
    const user = createUserService({ users, pageTokens: createPageTokenCodec(config.auth.secretKey) });

    const strict = createStrictDecoding();
    const server = await startGrpcServer({
      host: config.grpc.host,
      port: config.grpc.port,
      maxReceiveBytes: config.grpc.maxReceiveBytes,
      logger,
      services: [
        {
          name: 'connectsphere.auth.v1.AuthService',
          definition: strict('connectsphere.auth.v1.AuthService', AuthServiceService),
          implementation: adaptService(AuthServiceService, createAuthHandlers(auth), adapterOptions),
        },
        {
          name: 'connectsphere.user.v1.UserService',
          definition: strict('connectsphere.user.v1.UserService', UserServiceService),
          implementation: adaptService(UserServiceService, createUserHandlers(user), adapterOptions),
        },
      ],
    });
    let stopping = false;
    let databaseUp = true;
    server.setServing(true);
    logger.info({ port: server.port }, 'SERVING');

    // Health follows the database: NOT_SERVING while it cannot be reached, SERVING again when it can.
    const watchdog = createWatchdog(
      config.dbHealthIntervalMs,
      () => db.ping(),
      (up) => {
        if (stopping || up === databaseUp) return;
        databaseUp = up;
        server.setServing(up);
        if (up) logger.info('database reachable again: SERVING');
        else logger.warn('database unreachable: NOT_SERVING');
      },
    );
    const stats = (): AppStats => ({
      pool: db.poolStats(),
      hashing: hasher.stats(),
      memory: process.memoryUsage(),
      databaseUp,
    });
    const statsTimer =
      config.statsLogIntervalS > 0
        ? setInterval(() => logger.info({ stats: stats() }, 'stats'), config.statsLogIntervalS * 1000).unref()
        : undefined;

    let stopped: Promise<void> | undefined;
    return {
      port: server.port,
      db,
      server,
      stats,
      stop() {
        stopped ??= (async () => {
          stopping = true;
          watchdog.stop();
          clearInterval(statsTimer);
          const { forced } = await server.stop(config.shutdownGraceMs);
          logger.info({ forced }, 'gRPC server stopped');
          await cleanup();
        })();
        return stopped;
      },
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/** Calls `probe` every `intervalMs` (never two at once; one slower than the interval counts as down). */
function createWatchdog(intervalMs: number, probe: () => Promise<void>, report: (up: boolean) => void) {
  if (intervalMs <= 0) return { stop() {} };
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    let timeout: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timeout = setTimeout(() => reject(new Error('ping timed out')), Math.max(intervalMs * 2, 1000));
    });
    Promise.race([probe(), late])
      .then(
        () => report(true),
        () => report(false),
      )
      .finally(() => {
        clearTimeout(timeout);
        busy = false;
      });
  }, intervalMs).unref();
  return { stop: () => clearInterval(timer) };
}
