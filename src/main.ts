/**
 * Process entry point: read the configuration, start the app, and stop it gracefully on
 * SIGTERM/SIGINT (exit 0). A bad configuration exits 2 with a message naming the variable; any other
 * start-up failure (no database, a TLS check, migrations pending with DB_SYNC=false) logs
 * `start-up failed` with the reason and exits 1.
 *
 * With WORKERS > 1 this process becomes a Node cluster primary: it starts the embedded database
 * (if any) and applies the pending migrations once (DB_SYNC; else it checks that none is pending),
 * then forks WORKERS servers (DB_SYNC=false: each only checks) that share the gRPC port
 * (connections are spread across them), replaces a worker that dies, and on a signal stops the
 * workers gracefully before the database.
 */
import cluster, { type Worker } from 'node:cluster';
import os from 'node:os';
import { startApp } from './app.js';
import { type AppConfig, ConfigError, loadConfig, loadDotEnv, productionWarnings } from './config.js';
import { openDatabase } from './db/open.js';
import { createLogger, type Logger } from './logger.js';
import { startOpsServer } from './ops/http.js';
import { clusterMetrics } from './ops/metrics.js';
import { loadKeyRing } from './security/keys.js';

type Message = { type: 'serving'; port: number } | { type: 'ready'; ready: boolean };

/** Calls `stop` on SIGTERM/SIGINT, once; npm and process managers often deliver one request twice. */
function onStopSignal(logger: Logger, graceMs: number, stop: () => Promise<void>): void {
  let firstSignalAt = 0;
  const handler = (signal: NodeJS.Signals) => {
    if (firstSignalAt) {
      if (Date.now() - firstSignalAt < 1000) return;
      logger.warn({ signal }, 'second signal: exiting without waiting for in-flight RPCs');
      process.exit(1);
    }
    firstSignalAt = Date.now();
    logger.info({ signal, graceMs }, 'shutting down');
    stop().then(
      () => {
        logger.info('stopped');
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
}

async function runServer(config: AppConfig, logger: Logger): Promise<void> {
  const tell = (msg: Message) => {
    if (cluster.isWorker && process.connected) process.send?.(msg);
  };
  const app = await startApp(config, logger, {
    serveOps: !cluster.isWorker,
    onReadiness: (ready) => tell({ type: 'ready', ready }),
  });
  tell({ type: 'serving', port: app.port });
  onStopSignal(logger, config.SHUTDOWN_GRACE_MS, () => app.stop());
  // SIGHUP: read the TLS certificate files again (rotation without a restart)
  process.on('SIGHUP', () => void app.reloadTls().catch(() => {}));
}

async function runPrimary(config: AppConfig, logger: Logger, workers: number): Promise<void> {
  // The database is opened and migrated (DB_SYNC) once, here; workers only check that nothing is pending.
  const { url, db, embedded } = await openDatabase(config, logger);
  await db.close();

  const workerEnv = { DATABASE_URL: url, DB_SYNC: 'false', WORKERS: '1' };
  let stopping = false;
  const serving = new Set<number>();
  const ready = new Set<number>();
  let announced = false;
  // The operations port is the primary's: metrics summed over the workers, ready when all are.
  const ops =
    config.OPS_PORT > 0
      ? await startOpsServer(
          { host: config.OPS_HOST, port: config.OPS_PORT, logger },
          {
            metrics: clusterMetrics(),
            notReadyBecause: () =>
              stopping
                ? 'shutting down'
                : ready.size < workers
                  ? `${ready.size} of ${workers} workers ready`
                  : null,
            jwks: await loadKeyRing(config).then((keys) => () => keys.jwks),
          },
        )
      : undefined;
  const fork = (): Worker => {
    const worker = cluster.fork(workerEnv);
    worker.on('message', (msg: Message) => {
      if (msg?.type === 'ready') {
        if (msg.ready) ready.add(worker.id);
        else ready.delete(worker.id);
        return;
      }
      if (msg?.type !== 'serving') return;
      serving.add(worker.id);
      if (!announced && serving.size === workers) {
        announced = true;
        logger.info({ port: msg.port, workers: workers }, 'SERVING');
      }
    });
    return worker;
  };
  cluster.on('exit', (worker, code, signal) => {
    serving.delete(worker.id);
    ready.delete(worker.id);
    if (stopping) return;
    logger.error({ worker: worker.process.pid, code, signal }, 'worker died; starting another');
    setTimeout(fork, 1000);
  });
  for (let i = 0; i < workers; i++) fork();
  process.on('SIGHUP', () => {
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGHUP');
  });

  onStopSignal(logger, config.SHUTDOWN_GRACE_MS, async () => {
    stopping = true;
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
    await Promise.all(
      workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            if (w.isDead()) return resolve();
            w.once('exit', () => resolve());
            w.process.kill('SIGTERM'); // each drains its own RPCs within SHUTDOWN_GRACE_MS
          }),
      ),
    );
    await ops?.close();
    await embedded?.stop();
  });
}

async function main(): Promise<void> {
  let config: AppConfig;
  try {
    loadDotEnv();
    config = loadConfig();
  } catch (err) {
    process.stderr.write(`${err instanceof ConfigError ? err.message : String(err)}\n`);
    process.exit(2);
  }
  const logger = createLogger(config.LOG_LEVEL);
  // once per start (the primary only, with WORKERS > 1)
  if (!cluster.isWorker) for (const warning of productionWarnings(config)) logger.warn(warning);
  const workers = config.WORKERS || os.availableParallelism();
  const run = workers > 1 && cluster.isPrimary ? runPrimary : runServer;
  await run(config, cluster.isWorker ? logger.child({ worker: process.pid }) : logger, workers).catch(
    (err: unknown) => {
      logger.fatal({ err }, 'start-up failed');
      process.exit(1);
    },
  );
}

void main();
