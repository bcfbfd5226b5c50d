/**
 * For methods whose handler reads the caller's session in its own query (policy `session:
 * 'in-handler'`): if the handler returns, or fails with an answer about data (NOT_FOUND, ...),
 * without having confirmed the session live, the full check runs before anything is sent. Input
 * errors and the server's own trouble say nothing about data and stay fast.
 */
import { AppError, type ErrorKind } from '../../errors.js';
import type { Authenticator } from '../../security/authenticator.js';
import type { Middleware } from '../context.js';

const DATA_NEUTRAL = new Set<ErrorKind>([
  'INVALID_ARGUMENT',
  'UNAUTHENTICATED',
  'RESOURCE_EXHAUSTED',
  'UNAVAILABLE',
  'CANCELLED',
  'DEADLINE_EXCEEDED',
]);

export function proveLiveness(authenticator: Authenticator): Middleware {
  return async (ctx, next) => {
    if (ctx.live) return next();
    const prove = async () => {
      if (!ctx.caller) throw new Error('liveness step before authentication');
      await authenticator.live(ctx.caller, ctx.signal);
    };
    let response: unknown;
    try {
      response = await next();
    } catch (err) {
      if (!ctx.live && !(err instanceof AppError && DATA_NEUTRAL.has(err.kind))) await prove();
      throw err;
    }
    if (!ctx.live) await prove();
    return response;
  };
}
