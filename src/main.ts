/**
 * Process entry point: read the configuration, start the app, and stop it gracefully on
 * SIGTERM/SIGINT (exit 0). A bad configuration exits 2 with a message naming the variable.
 */
import { startApp } from './app.js';
import { ConfigError, loadConfig, loadDotEnv } from './config.js';
import { createLogger } from './logger.js';

async function main(): Promise<void> {
  let config: ReturnType<typeof loadConfig>;
  try {
    loadDotEnv();
    config = loadConfig();
  } catch (err) {
    process.stderr.write(`${err instanceof ConfigError ? err.message : String(err)}\n`);
    process.exit(2);
  }
  const logger = createLogger(config.logLevel);
  const app = await startApp(config, logger).catch((err: unknown) => {
    logger.fatal({ err }, 'start-up failed');
    process.exit(1);
  });

  let firstSignalAt = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    if (firstSignalAt) {
      // npm and process managers often deliver one stop request twice (to the group and to the
      // child); only a signal well after the first means "stop now".
      if (Date.now() - firstSignalAt < 1000) return;
      logger.warn({ signal }, 'second signal: exiting without waiting for in-flight RPCs');
      process.exit(1);
    }
    firstSignalAt = Date.now();
    logger.info({ signal, graceMs: config.shutdownGraceMs }, 'shutting down');
    app.stop().then(
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
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

void main();
