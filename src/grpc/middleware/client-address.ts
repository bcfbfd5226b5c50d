/** Sets `ctx.clientAddress`: the peer, or, behind a trusted proxy, the client it forwarded for. */
import type { AddressResolver } from '../../net/addresses.js';
import type { Middleware } from '../context.js';

export function resolveClientAddress(resolver: AddressResolver): Middleware {
  return (ctx, next) => {
    const forwarded = ctx.metadata.get('x-forwarded-for').filter((v): v is string => typeof v === 'string');
    ctx.clientAddress = resolver.clientAddress(ctx.peer, forwarded);
    return next();
  };
}
