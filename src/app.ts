/**
 * The composition root: config → database (embedded when DATABASE_URL is empty) → schema migrations →
 * stores → security → services → handlers → gRPC server → health SERVING. Everything is created
 * here and passed down; nothing else constructs a dependency. `stop()` undoes it in reverse.
 */

import bcrypt from 'bcrypt';
import { createAuthHandlers } from '../services/auth/auth.handlers.js';
import { createAuthService } from '../services/auth/auth.service.js';
import { createServiceTokenIssuer } from '../services/auth/service-accounts.service.js';
import { createUserHandlers } from '../services/user/user.handlers.js';
import { createUserService } from '../services/user/user.service.js';
import { type AppConfig, DEV_SECRET_KEY, introspectionRequired } from './config.js';
import { createAuditLog } from './db/audit.store.js';
import { createBatcherRegistry } from './db/batcher.js';
import { createReadCache, type ReadCache } from './db/cache.js';
import { cachedStores } from './db/cached-stores.js';
import type { Database, PoolStats } from './db/database.js';
import { startHousekeeping } from './db/housekeeping.js';
import { CACHE_CHANNEL, startNoticeListener } from './db/listener.js';
import { openDatabase } from './db/open.js';
import { checkPrivileges } from './db/privileges.js';
import { createServiceAccountStore } from './db/service-account.store.js';
import { createSessionStore } from './db/session.store.js';
import { createAttemptThrottle } from './db/throttle.store.js';
import { createUserStore } from './db/user.store.js';
import { AuthServiceService } from './gen/connectsphere/auth/v1/auth.js';
import { UserServiceService } from './gen/connectsphere/user/v1/user.js';
import { adaptService } from './grpc/adapter.js';
import type { Middleware } from './grpc/context.js';
import { createStrictDecoding } from './grpc/decoding.js';
import { rpcMetricsInterceptor } from './grpc/metrics.js';
import { authenticate } from './grpc/middleware/authenticate.js';
import { resolveClientAddress } from './grpc/middleware/client-address.js';
import { rejectUndecodable } from './grpc/middleware/decode.js';
import { proveLiveness } from './grpc/middleware/liveness.js';
import { logCalls } from './grpc/middleware/log.js';
import { identifyRequest } from './grpc/middleware/request-id.js';
import { mapErrors } from './grpc/middleware/status.js';
import { AUTH_POLICY, USER_POLICY } from './grpc/policy.js';
import { createReloadableTls } from './grpc/tls.js';
import type { Logger } from './logger.js';
import { createAddressResolver, parseCidrs } from './net/addresses.js';
import { startOpsServer } from './ops/http.js';
import { createMetrics, shareMetricsWithPrimary } from './ops/metrics.js';
import { UNCOUNTED } from './ports.js';
import { createAuthenticator } from './security/authenticator.js';
import { createEmailFingerprint } from './security/fingerprint.js';
import { loadKeyRing } from './security/keys.js';
import { createPageTokenCodec } from './security/page-tokens.js';
import { createPasswordStrength } from './security/password-strength.js';
import { createPasswordHasher, type PasswordHasher } from './security/passwords.js';
import { createCurrentPasswordCheck } from './security/reauth.js';
import { deprioritizeThreadPool } from './security/thread-priority.js';
import { createTokenService } from './security/tokens.js';
import { type GrpcServer, startGrpcServer } from './server.js';

export interface AppStats {
  pool: PoolStats;
  hashing: ReturnType<PasswordHasher['stats']>;
  memory: NodeJS.MemoryUsage;
  databaseUp: boolean;
  /** The read cache (CACHE=on): whether it is caching (its listener listens) and its entries. */
  cache: { active: boolean; entries: number } | undefined;
}

export interface AppOptions {
  /**
   * False in a cluster worker: the primary serves the operations port, with the metrics summed
   * over its workers (each worker still collects its own when OPS_PORT is set).
   */
  serveOps?: boolean;
  /** Told when the process becomes ready (gRPC health SERVING) or stops being ready. */
  onReadiness?: (ready: boolean) => void;
}

export interface App {
  readonly port: number;
  /** The operations port, when this process serves one. */
  readonly opsPort: number | undefined;
  readonly db: Database;
  readonly server: GrpcServer;
  stats(): AppStats;
  /** Reads the TLS certificate, key and client CA again (SIGHUP): new connections get them. */
  reloadTls(): Promise<void>;
  /** Graceful stop: NOT_SERVING, drain RPCs (SHUTDOWN_GRACE_MS), close the pool, stop an embedded database. */
  stop(): Promise<void>;
}

export async function startApp(config: AppConfig, logger: Logger, options: AppOptions = {}): Promise<App> {
  const serveOps = options.serveOps ?? true;
  const cleanups: (() => Promise<unknown>)[] = [];
  const cleanup = async () => {
    for (const fn of cleanups.reverse())
      await fn().catch((err) => logger.error({ err }, 'error while stopping'));
  };
  try {
    if (config.SECRET_KEY === DEV_SECRET_KEY) {
      logger.warn(
        'SECRET_KEY is the built-in development key: anyone can forge tokens for this server; set SECRET_KEY (openssl rand -base64 48)',
      );
    }
    // OPS_PORT=0: nothing reads metrics, so none are collected (no interceptor, no observers).
    const metrics = config.OPS_PORT > 0 ? createMetrics() : undefined;
    if (metrics && !serveOps) shareMetricsWithPrimary(metrics.registry);
    const opened = await openDatabase(config, logger, { poolObserver: metrics?.pool });
    cleanups.push(() => opened.close());
    const { db } = opened;
    // The role's privileges on everything the code uses (src/db/privileges.ts), checked once: while
    // one is missing the server runs NOT_SERVING; a restart after the GRANT checks again.
    const privileges = await checkPrivileges(db);
    const privilegesOk = privileges.grants.length === 0;
    if (!privilegesOk) {
      logger.error(
        { role: privileges.role, grants: privileges.grants },
        `the database role ${privileges.role} lacks privileges the service needs: NOT_SERVING; ` +
          `run as the tables' owner, then restart: ${privileges.grants.join(' ')}`,
      );
    }
    if (privileges.superuser || privileges.ownsAudit) {
      logger[config.NODE_ENV === 'production' ? 'warn' : 'info'](
        { role: privileges.role },
        `the database role ${privileges.role} is ${privileges.superuser ? 'a superuser' : 'the owner of audit_events or its schema'}: ` +
          'it could change or delete audit events; connect as a role with only the grants the README lists',
      );
    }

    const batchers = createBatcherRegistry();
    const batching = {
      maxBatch: 500,
      maxInFlight: 2,
      maxWaitMs: config.DB_POOL_ACQUIRE_MS,
      registry: batchers,
    };
    // CACHE=on: the hot-path reads go through the read cache, which stays bypassed (every read asks
    // PostgreSQL) until its listener LISTENs, and again whenever the listener is lost.
    let cache: ReadCache | undefined;
    let stores = {
      users: createUserStore(db, batching),
      sessions: createSessionStore(db, batching),
      serviceAccounts: createServiceAccountStore(db, batching),
    };
    if (config.CACHE === 'on') {
      const readCache = createReadCache(
        { maxEntries: config.CACHE_MAX_ENTRIES, ttlMs: config.CACHE_TTL_MS },
        metrics?.cache,
      );
      cache = readCache;
      stores = cachedStores(db, readCache, stores);
      const listener = startNoticeListener({
        url: config.CACHE_LISTEN_URL || opened.url,
        channel: CACHE_CHANNEL,
        pingMs: config.CACHE_LISTEN_PING_MS,
        connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS,
        logger,
        onNotice: (name) => readCache.evict(name, 'notice'),
        onListening: () => readCache.resume(),
        onLost: () => readCache.bypass(),
      });
      cleanups.push(() => listener.stop());
    }
    const { users, sessions, serviceAccounts } = stores;
    const hasher = createPasswordHasher(config, { observer: metrics?.hashing });
    const counters = metrics?.security ?? UNCOUNTED;
    const strength = createPasswordStrength({
      queueMax: config.HASH_QUEUE_MAX,
      perSourceMax: config.HASH_QUEUE_PER_SOURCE,
    });
    await deprioritizeThreadPool(
      config.HASH_NICE,
      (cost) => bcrypt.hash('find the pool threads', cost),
      logger,
    );
    const keys = await loadKeyRing(config);
    const tokens = createTokenService(config, keys);
    const audit = createAuditLog(db);
    const authenticator = createAuthenticator(tokens, sessions, serviceAccounts);
    const throttle = createAttemptThrottle(db, {
      baseS: config.LOGIN_LOCKOUT_BASE_S,
      maxS: config.LOGIN_LOCKOUT_MAX_S,
      windowS: config.LOGIN_FAILURE_WINDOW_S,
    });
    const checkCurrentPassword = createCurrentPasswordCheck({
      throttle,
      hasher,
      maxFailures: config.LOGIN_MAX_FAILURES,
    });
    const auth = createAuthService({
      transactions: db,
      users,
      sessions,
      serviceAccounts,
      hasher,
      strength,
      tokens,
      throttle,
      checkCurrentPassword,
      counters,
      audit,
      fingerprint: createEmailFingerprint(config.SECRET_KEY),
      policy: {
        refreshReuseGraceS: config.REFRESH_REUSE_GRACE_SECONDS,
        sessionMaxLifetimeS: config.SESSION_MAX_LIFETIME_S,
        loginLimits: {
          pair: config.LOGIN_MAX_FAILURES,
          source: config.LOGIN_SOURCE_MAX_FAILURES,
          account: config.LOGIN_ACCOUNT_MAX_FAILURES,
        },
        registerLimit: config.REGISTER_SOURCE_MAX_FAILURES,
      },
    });
    const user = createUserService({
      transactions: db,
      users,
      sessions,
      pageTokens: createPageTokenCodec(config.SECRET_KEY),
      auditPageTokens: createPageTokenCodec(config.SECRET_KEY, 'list-audit-events'),
      audit,
      checkCurrentPassword,
    });
    const serviceTokens = createServiceTokenIssuer({
      accounts: serviceAccounts,
      tokens,
      throttle,
      limits: {
        pair: config.LOGIN_MAX_FAILURES,
        source: config.LOGIN_SOURCE_MAX_FAILURES,
        account: config.LOGIN_ACCOUNT_MAX_FAILURES,
      },
      counters,
      audit,
    });
    metrics?.watch({
      pool: { stats: () => db.poolStats(), max: config.DB_POOL_MAX, min: config.DB_POOL_MIN },
      pendingLookups: () => batchers.pending(),
      hashing: () => hasher.stats(),
      cache,
    });
    const housekeeping = startHousekeeping(db, config, logger);
    cleanups.push(() => housekeeping.stop());

    // The per-call pipeline, outermost first (see src/grpc/context.ts).
    const pipeline: Middleware[] = [
      // the call's scope for deep log lines only when such lines are written (see request-id.ts)
      identifyRequest({
        scopeLogs: config.DB_ECHO || config.LOG_LEVEL === 'debug' || config.LOG_LEVEL === 'trace',
      }),
      resolveClientAddress(
        createAddressResolver(parseCidrs(config.TRUSTED_PROXIES)),
        config.THROTTLE_IPV6_PREFIX,
      ),
      logCalls(logger),
      mapErrors(logger),
      rejectUndecodable,
      authenticate(authenticator, { introspectionRequired: introspectionRequired(config) }),
      proveLiveness(authenticator),
    ];
    // The operations port opens before the gRPC port, so a taken OPS_PORT stops start-up early.
    let serving = false;
    let stopping = false;
    let databaseUp = true;
    const notReadyBecause = () =>
      stopping
        ? 'shutting down'
        : !serving
          ? 'starting'
          : !privilegesOk
            ? 'the database role lacks privileges (see the log)'
            : databaseUp
              ? null
              : 'the database cannot be reached';
    const ops =
      serveOps && config.OPS_PORT > 0 && metrics
        ? await startOpsServer(
            { host: config.OPS_HOST, port: config.OPS_PORT, logger },
            {
              metrics: async () => ({
                contentType: metrics.registry.contentType,
                body: await metrics.registry.metrics(),
              }),
              notReadyBecause,
              jwks: () => keys.jwks,
            },
          )
        : undefined;
    if (ops) cleanups.push(() => ops.close());
    const strict = createStrictDecoding();
    const tls = config.GRPC_TLS_CERT_FILE
      ? await createReloadableTls({
          certFile: config.GRPC_TLS_CERT_FILE,
          keyFile: config.GRPC_TLS_KEY_FILE,
          caFile: config.GRPC_TLS_CLIENT_CA_FILE || undefined,
          requireClientCertificate: config.GRPC_TLS_CLIENT_AUTH === 'require',
        })
      : undefined;
    const server = await startGrpcServer({
      host: config.GRPC_HOST,
      port: config.GRPC_PORT,
      credentials: tls?.credentials,
      maxReceiveBytes: config.GRPC_MAX_RECEIVE_BYTES,
      interceptors: metrics ? [rpcMetricsInterceptor(metrics.rpc)] : [],
      connections: {
        keepaliveTimeMs: config.GRPC_KEEPALIVE_TIME_MS,
        keepaliveTimeoutMs: config.GRPC_KEEPALIVE_TIMEOUT_MS,
        maxConnectionAgeMs: config.GRPC_MAX_CONNECTION_AGE_MS,
        maxConnectionAgeGraceMs: config.GRPC_MAX_CONNECTION_AGE_GRACE_MS,
        maxConcurrentStreams: config.GRPC_MAX_CONCURRENT_STREAMS,
        maxConnections: config.GRPC_MAX_CONNECTIONS,
      },
      maxHealthWatchers: config.HEALTH_MAX_WATCHERS,
      logger,
      services: [
        {
          name: 'connectsphere.auth.v1.AuthService',
          definition: strict('connectsphere.auth.v1.AuthService', AuthServiceService),
          implementation: adaptService(
            AuthServiceService,
            AUTH_POLICY,
            createAuthHandlers(auth, serviceTokens, () => keys.jwks),
            pipeline,
          ),
        },
        {
          name: 'connectsphere.user.v1.UserService',
          definition: strict('connectsphere.user.v1.UserService', UserServiceService),
          implementation: adaptService(UserServiceService, USER_POLICY, createUserHandlers(user), pipeline),
        },
      ],
    });
    server.setServing(privilegesOk);
    serving = true;
    logger.info({ port: server.port }, privilegesOk ? 'SERVING' : 'NOT_SERVING (database privileges)');
    options.onReadiness?.(privilegesOk);

    // Health follows the database: NOT_SERVING while it cannot be reached, SERVING again when it can.
    const watchdog = createWatchdog(
      config.DB_HEALTH_INTERVAL_MS,
      () => db.ping(),
      (up) => {
        if (stopping || up === databaseUp) return;
        databaseUp = up;
        server.setServing(up && privilegesOk);
        options.onReadiness?.(up && privilegesOk);
        if (up) logger.info('database reachable again: SERVING');
        else logger.warn('database unreachable: NOT_SERVING');
      },
    );
    const stats = (): AppStats => ({
      pool: db.poolStats(),
      hashing: hasher.stats(),
      memory: process.memoryUsage(),
      databaseUp,
      cache: cache ? { active: cache.active, entries: cache.size() } : undefined,
    });
    const statsTimer =
      config.STATS_LOG_INTERVAL_S > 0
        ? setInterval(
            () => logger.info({ stats: stats() }, 'stats'),
            config.STATS_LOG_INTERVAL_S * 1000,
          ).unref()
        : undefined;

    let stopped: Promise<void> | undefined;
    return {
      port: server.port,
      opsPort: ops?.port,
      db,
      server,
      stats,
      async reloadTls() {
        if (!tls) {
          logger.info('SIGHUP: no TLS configured, nothing to reload');
          return;
        }
        try {
          const { notAfter } = await tls.reload();
          logger.info({ notAfter }, 'TLS certificate reloaded: new connections use it');
        } catch (err) {
          logger.error(
            { err: { message: (err as Error).message } },
            'TLS reload failed: the previous certificate stays in use',
          );
          throw err;
        }
      },
      stop() {
        stopped ??= (async () => {
          stopping = true;
          options.onReadiness?.(false);
          watchdog.stop();
          clearInterval(statsTimer);
          const { forced } = await server.stop(config.SHUTDOWN_GRACE_MS);
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
