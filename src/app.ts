/**
 * The composition root: config → database (embedded when DATABASE_URL is empty) → schema sync →
 * stores → security → services → handlers → gRPC server → health SERVING. Everything is created
 * here and passed down; nothing else constructs a dependency. `stop()` undoes it in reverse.
 */
import {
  AUTH_PUBLIC_METHODS,
  AuthServiceService,
  createAuthHandlers,
} from '../services/auth/auth.handlers.js';
import { createAuthService } from '../services/auth/auth.service.js';
import { createUserHandlers, UserServiceService } from '../services/user/user.handlers.js';
import { createUserService } from '../services/user/user.service.js';
import type { AppConfig } from './config.js';
import { createDatabase, type Database } from './db/database.js';
import { type EmbeddedPostgres, startEmbeddedPostgres } from './db/embedded.js';
import { createSessionStore } from './db/session.store.js';
import { createUserStore } from './db/user.store.js';
import { adaptService } from './grpc/adapter.js';
import type { Logger } from './logger.js';
import { createAuthenticator } from './security/authenticator.js';
import { createPageTokenCodec } from './security/page-tokens.js';
import { createPasswordHasher } from './security/passwords.js';
import { createTokenService } from './security/tokens.js';
import { type GrpcServer, startGrpcServer } from './server.js';

export interface App {
  readonly port: number;
  readonly db: Database;
  readonly server: GrpcServer;
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
    let url = config.db.url;
    let embedded: EmbeddedPostgres | undefined;
    if (!url) {
      embedded = await startEmbeddedPostgres({
        dataDir: config.db.dataDir,
        port: config.db.embeddedPort,
        logger,
      });
      cleanups.push(() => (embedded as EmbeddedPostgres).stop());
      url = embedded.url;
    }
    const db = createDatabase(url, config.db, logger);
    cleanups.push(() => db.close());
    await db.ping();
    if (config.db.sync) await db.sync();

    const users = createUserStore(db);
    const sessions = createSessionStore(db);
    const hasher = createPasswordHasher({
      rounds: config.auth.bcryptRounds,
      concurrency: config.auth.hashConcurrency,
      queueMax: config.auth.hashQueueMax,
    });
    const tokens = createTokenService({
      secretKey: config.auth.secretKey,
      issuer: config.auth.issuer,
      audience: config.auth.audience,
      accessTtlS: config.auth.accessTokenTtlS,
      refreshTtlS: config.auth.refreshTokenTtlS,
    });
    const adapterOptions = {
      authenticate: createAuthenticator(tokens, sessions),
      publicMethods: new Set(AUTH_PUBLIC_METHODS),
      logger,
    };
    const auth = createAuthService({
      users,
      sessions,
      hasher,
      tokens,
      refreshReuseGraceS: config.auth.refreshReuseGraceS,
    });
    const user = createUserService({ users, pageTokens: createPageTokenCodec(config.auth.secretKey) });

    const server = await startGrpcServer({
      host: config.grpc.host,
      port: config.grpc.port,
      maxReceiveBytes: config.grpc.maxReceiveBytes,
      logger,
      services: [
        {
          name: 'connectsphere.auth.v1.AuthService',
          definition: AuthServiceService,
          implementation: adaptService(AuthServiceService, createAuthHandlers(auth), adapterOptions),
        },
        {
          name: 'connectsphere.user.v1.UserService',
          definition: UserServiceService,
          implementation: adaptService(UserServiceService, createUserHandlers(user), adapterOptions),
        },
      ],
    });
    server.setServing(true);
    logger.info({ port: server.port }, 'SERVING');

    let stopped: Promise<void> | undefined;
    return {
      port: server.port,
      db,
      server,
      stop() {
        stopped ??= (async () => {
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
