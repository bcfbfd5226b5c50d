/**
 * Authentication, by the method's policy (src/grpc/policy.ts): public methods pass; bearer methods
 * need `authorization: Bearer <access token>` (or, for a service account, a client certificate mutual
 * TLS verified), verified, a service account only where the policy lets one in, and (policy
 * `session: 'checked'`) the caller proven live and read fresh. Introspection needs a service identity
 * with `tokens.introspect` when INTROSPECTION_AUTH requires it.
 */
import type { Metadata } from '@grpc/grpc-js';
import { type Caller, hasScope } from '../../caller.js';
import { permissionDenied, unauthenticated } from '../../errors.js';
import type { Authenticator } from '../../security/authenticator.js';
import type { CallContext, Middleware } from '../context.js';

const BEARER = /^bearer\s+(\S+)\s*$/i;
const MISSING = 'missing credentials: send metadata `authorization: Bearer <access token>`';

/** The access token of `authorization: Bearer <token>`; undefined without one; UNAUTHENTICATED when malformed. */
export function bearerToken(metadata: Metadata): string | undefined {
  const values = metadata.get('authorization');
  if (values.length === 0) return undefined;
  const match = typeof values[0] === 'string' ? BEARER.exec(values[0]) : null;
  if (values.length > 1 || !match?.[1]) {
    throw unauthenticated('malformed authorization metadata: expected `Bearer <access token>`');
  }
  return match[1];
}

export function authenticate(
  authenticator: Authenticator,
  options: { introspectionRequired: boolean },
): Middleware {
  /** Who the call's credentials name (token first, then certificate); undefined when it has none. */
  const identify = async (ctx: CallContext): Promise<Caller | undefined> => {
    const token = bearerToken(ctx.metadata);
    if (token !== undefined) return authenticator.verify(token);
    if (ctx.certificate) return authenticator.fromCertificate(ctx.certificate, ctx.signal);
    return undefined;
  };

  return async (ctx, next) => {
    const { policy } = ctx.method;
    if (policy.auth === 'public') return next();
    if (policy.auth === 'introspection') {
      if (!options.introspectionRequired) return next();
      const found = await identify(ctx);
      const caller = found && (await authenticator.live(found, ctx.signal));
      if (!caller || !hasScope(caller, 'tokens.introspect')) {
        throw unauthenticated('introspection needs a service identity with the scope tokens.introspect');
      }
      ctx.caller = caller;
      return next();
    }
    const found = await identify(ctx);
    if (!found) throw unauthenticated(MISSING);
    if (found.kind === 'service') {
      if (!policy.services)
        throw permissionDenied('this method acts for a user: a service account cannot call it');
      const live = await authenticator.live(found, ctx.signal);
      if (!policy.services.some((s) => hasScope(live, s))) {
        throw permissionDenied(`this method needs one of the scopes ${policy.services.join(', ')}`);
      }
      ctx.caller = live;
      ctx.live = true;
    } else if (policy.session === 'checked') {
      ctx.caller = await authenticator.live(found, ctx.signal);
      ctx.live = true;
    } else {
      ctx.caller = found;
      ctx.live = false;
    }
    return next();
  };
}
