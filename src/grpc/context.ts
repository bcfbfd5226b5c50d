/**
 * The per-call context and the middleware chain. A call runs through small steps composed once at
 * the root (src/app.ts), outermost first, each `(ctx, next) => Promise<response>`; the handler is
 * the innermost. Errors travel up as exceptions; the status step turns them into a `StatusError`
 * carrying the gRPC status, so the steps outside it (the log line) see the final code.
 */
import type { Metadata, StatusObject } from '@grpc/grpc-js';
import type { Caller, UserCaller } from '../caller.js';
import type { ClientCertificate } from '../security/authenticator.js';
import type { CallPolicy } from './policy.js';

export interface MethodInfo {
  /** Full path, e.g. `/connectsphere.auth.v1.AuthService/Login`. */
  readonly path: string;
  readonly policy: CallPolicy;
}

export interface CallContext {
  readonly method: MethodInfo;
  /** The decoded request, or a DecodeFailure (see decoding.ts). */
  readonly request: unknown;
  readonly metadata: Metadata;
  /** Aborted when the caller cancels or its deadline passes: stop work that only it wanted. */
  readonly signal: AbortSignal;
  /** The transport peer (grpc-js `getPeer()`, e.g. `127.0.0.1:51234`). */
  readonly peer: string;
  /** Where the call comes from (the client address step; see TRUSTED_PROXIES). */
  clientAddress: string;
  /** What per-address limits count by: the IPv4 address, or the IPv6 network (THROTTLE_IPV6_PREFIX). */
  clientSource: string;
  /** The client certificate's names and purpose, when mutual TLS verified one. */
  readonly certificate: ClientCertificate | undefined;
  /** Set by the authentication step for bearer methods. */
  caller: Caller | undefined;
  /** True once the caller's login session is proven live (always for public methods). */
  live: boolean;
  /** The call's request id (the request-id step; '' before it). */
  requestId: string;
  /** The trace id of the caller's W3C `traceparent`, if it sent a valid one (the request-id step). */
  traceId: string | undefined;
  /** Sent as the response's initial metadata, on success and on failure. */
  readonly responseMetadata: Metadata;
}

export type Next = () => Promise<unknown>;
export type Middleware = (ctx: CallContext, next: Next) => Promise<unknown>;

/** `steps` around `handler`, outermost first. */
export function compose(
  steps: readonly Middleware[],
  handler: (ctx: CallContext) => Promise<unknown>,
): (ctx: CallContext) => Promise<unknown> {
  return steps.reduceRight<(ctx: CallContext) => Promise<unknown>>(
    (inner, step) => (ctx) => step(ctx, () => inner(ctx)),
    handler,
  );
}

/** An error already mapped to the status the caller gets. */
export class StatusError extends Error {
  constructor(readonly status: StatusObject) {
    super(status.details);
    this.name = 'StatusError';
  }
}

/** What a handler sees: no transport details beyond metadata, and the caller when its policy has one. */
export interface PublicContext {
  readonly metadata: Metadata;
  readonly signal: AbortSignal;
  /** The client address (see TRUSTED_PROXIES). */
  readonly clientAddress: string;
  /** What per-address limits count by: the IPv4 address, or the IPv6 network (THROTTLE_IPV6_PREFIX). */
  readonly clientSource: string;
  /** The `user-agent` metadata, cut to 256 characters of printable text. */
  readonly userAgent: string;
  /** The call's request id (as logged and sent back in `x-request-id`). */
  readonly requestId: string;
}
export interface AuthedContext<C extends Caller = Caller> extends PublicContext {
  readonly caller: C;
}
export interface SessionInHandlerContext<C extends Caller = Caller> extends AuthedContext<C> {
  /** The handler's own query has confirmed that the caller's session is live. */
  confirmLive(): void;
}

type CallerFor<P> = P extends { services: readonly unknown[] } ? Caller : UserCaller;

export type HandlerContextFor<P extends CallPolicy> = P extends { auth: 'public' } | { auth: 'introspection' }
  ? PublicContext
  : P extends { session: 'in-handler' }
    ? SessionInHandlerContext<CallerFor<P>>
    : AuthedContext<CallerFor<P>>;
