/**
 * One log line per RPC: method, status code, duration, the client address and the authenticated
 * subject (`user:<id>` or `service:<id>`; never an email), and the error message, which leaks
 * nothing. The request id and trace id come with every line of the call (src/logger.ts).
 */
import { status as Code } from '@grpc/grpc-js';
import type { Caller } from '../../caller.js';
import type { Logger } from '../../logger.js';
import { type Middleware, StatusError } from '../context.js';

const elapsed = (since: number) => Math.round((performance.now() - since) * 100) / 100;
const subjectOf = (caller: Caller | undefined) =>
  caller === undefined
    ? undefined
    : caller.kind === 'user'
      ? `user:${caller.userId}`
      : `service:${caller.serviceId}`;

export function logCalls(logger: Logger): Middleware {
  return async (ctx, next) => {
    const started = performance.now();
    const method = ctx.method.path;
    logger.debug({ method }, 'rpc start');
    try {
      const response = await next();
      logger.info(
        {
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
