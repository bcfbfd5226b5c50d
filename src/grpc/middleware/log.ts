/** One log line per RPC: method, status code, duration (and the error message, which leaks nothing). */
import { status as Code } from '@grpc/grpc-js';
import type { Logger } from '../../logger.js';
import { type Middleware, StatusError } from '../context.js';

const elapsed = (since: number) => Math.round((performance.now() - since) * 100) / 100;

export function logCalls(logger: Logger): Middleware {
  return async (ctx, next) => {
    const started = performance.now();
    const method = ctx.method.path;
    logger.debug({ method }, 'rpc start');
    try {
      const response = await next();
      logger.info({ method, code: 'OK', ms: elapsed(started) }, 'rpc');
      return response;
    } catch (err) {
      const status = err instanceof StatusError ? err.status : undefined;
      logger.info(
        {
          method,
          code: status ? Code[status.code] : 'UNKNOWN',
          ms: elapsed(started),
          error: status?.details,
        },
        'rpc',
      );
      throw err;
    }
  };
}
