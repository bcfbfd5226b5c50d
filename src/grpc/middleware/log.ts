/**
 * One log line per RPC: method, status code, duration, the client address and the authenticated
 * subject (`user:<id>` or `service:<id>`; never an email), and the error message, which leaks
 * nothing, with the call's request id and trace id (src/grpc/middleware/request-id.ts).
 */
import { status as Code } from '@grpc/grpc-js';
import type { Caller } from '../../caller.js';
import type { Logger } from '../../logger.js';
import { type Middleware, StatusError } from '../context.js';
import { callFields } from './request-id.js';

const elapsed = (since: number) => Math.round((performance.now() - since) * 100) / 100;
const subjectOf = (caller: Caller | undefined) =>
  caller === undefined
    ? undefined
    : caller.kind === 'user'
      ? `user:${caller.userId}`
      : `service:${caller.serviceId}`;

export function logCalls(logger: Logger): Middleware {
  return async (ctx, next) => {
    // (below `info` the line is not built at all: at LOG_LEVEL=warn it cost ~3 % of a cached call)
    if (!logger.isLevelEnabled('info')) return next();
    const started = performance.now();
    const method = ctx.method.path;
    logger.debug({ method }, 'rpc start');
    try {
      const response = await next();
      logger.info(
        {
          ...callFields(ctx),
          method,
          code: 'OK',
          ms: elapsed(started),
          client_address: ctx.clientAddress,
          subject: subjectOf(ctx.caller),
        },
        'rpc',
      );
      return response;
    } catch (err) {
      const status = err instanceof StatusError ? err.status : undefined;
      logger.info(
        {
          ...callFields(ctx),
          method,
          code: status ? Code[status.code] : 'UNKNOWN',
          ms: elapsed(started),
          client_address: ctx.clientAddress,
          subject: subjectOf(ctx.caller),
          error: status?.details,
        },
        'rpc',
      );
      throw err;
    }
  };
}
