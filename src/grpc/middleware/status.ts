/** Maps whatever a call threw to the status the caller gets (once), as a StatusError. */
import { status as Code, Metadata } from '@grpc/grpc-js';
import type { Logger } from '../../logger.js';
import { type Middleware, StatusError } from '../context.js';
import { toStatus } from '../status.js';
import { callFields } from './request-id.js';

export function mapErrors(logger: Logger): Middleware {
  return async (ctx, next) => {
    try {
      return await next();
    } catch (err) {
      if (err instanceof StatusError) throw err;
      throw new StatusError(
        ctx.signal.aborted
          ? {
              code: Code.CANCELLED,
              details: 'the call was cancelled or its deadline passed',
              metadata: new Metadata(),
            }
          : toStatus(err, logger.child(callFields(ctx))),
      );
    }
  };
}
