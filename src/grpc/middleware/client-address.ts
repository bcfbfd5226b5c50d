/**
 * Sets `ctx.clientAddress`: the peer, or, behind a trusted proxy, the client it forwarded for; and
 * `ctx.clientSource`, what per-address limits count by (its IPv6 network of THROTTLE_IPV6_PREFIX bits).
 */
import { type AddressResolver, throttleSource } from '../../net/addresses.js';
import type { Middleware } from '../context.js';

export function resolveClientAddress(resolver: AddressResolver, ipv6Prefix = 64): Middleware {
  return (ctx, next) => {
    const forwarded = ctx.metadata.get('x-forwarded-for').filter((v): v is string => typeof v === 'string');
    ctx.clientAddress = resolver.clientAddress(ctx.peer, forwarded);
    ctx.clientSource = throttleSource(ctx.clientAddress, ipv6Prefix);
    return next();
  };
}
