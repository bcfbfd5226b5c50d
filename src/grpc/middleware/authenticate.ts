/**
 * Bearer authentication, by the method's policy: public methods pass; bearer methods need
 * `authorization: Bearer <access token>`, verified, and (policy `session: 'checked'`) the login
 * session proven live with the caller's current email and roles.
 */
import type { Metadata } from '@grpc/grpc-js';
import { unauthenticated } from '../../errors.js';
import type { Authenticator } from '../../security/authenticator.js';
import type { Middleware } from '../context.js';

const BEARER = /^bearer\s+(\S+)\s*$/i;

/** The access token of `authorization: Bearer <token>`; UNAUTHENTICATED when missing or malformed. */
export function bearerToken(metadata: Metadata): string {
  const values = metadata.get('authorization');
  if (values.length === 0) {
    throw unauthenticated('missing credentials: send metadata `authorization: Bearer <access token>`');
  }
  const match = typeof values[0] === 'string' ? BEARER.exec(values[0]) : null;
  if (values.length > 1 || !match?.[1]) {
    throw unauthenticated('malformed authorization metadata: expected `Bearer <access token>`');
  }
  return match[1];
}

export function authenticate(authenticator: Authenticator): Middleware {
  return async (ctx, next) => {
    const { policy } = ctx.method;
    if (policy.auth === 'public') return next();
    const fromToken = authenticator.verify(bearerToken(ctx.metadata));
    if (policy.session === 'checked') {
      ctx.caller = await authenticator.live(fromToken, ctx.signal);
      ctx.live = true;
    } else {
      ctx.caller = fromToken;
      ctx.live = false;
    }
    return next();
  };
}
