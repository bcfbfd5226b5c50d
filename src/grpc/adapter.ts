/**
 * Turns a service's `async (request, ctx) => response` handlers into grpc-js unary handlers that
 * run the middleware chain. grpc-js ignores a handler's returned promise, so this is the one place
 * that awaits the chain and calls back exactly once; everything else (decoding failures,
 * authentication, liveness, status mapping, the log line) is a step of the chain (context.ts).
 */
import {
  status as Code,
  Metadata,
  type ServerUnaryCall,
  type sendUnaryData,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { type ClientCertificate, clientCertificateOf } from '../security/authenticator.js';
import {
  type CallContext,
  compose,
  type HandlerContextFor,
  type Middleware,
  StatusError,
} from './context.js';
import type { PolicyTable } from './policy.js';

interface UnaryMethod {
  path: string;
  requestStream: false;
  responseStream: false;
  // biome-ignore lint/suspicious/noExplicitAny: contravariant position; the mapped type below restores exact types
  requestDeserialize: (b: Buffer) => any;
  // biome-ignore lint/suspicious/noExplicitAny: as above
  responseSerialize: (v: any) => Buffer;
}

/**
 * The handlers of a generated service definition under its policy table: a missing or mistyped RPC
 * is a compile error, and each handler's context type follows from its method's policy.
 */
export type ServiceHandlers<S extends Record<string, UnaryMethod>, P extends PolicyTable<S>> = {
  [K in keyof S]: (
    request: ReturnType<S[K]['requestDeserialize']>,
    ctx: HandlerContextFor<P[K]>,
  ) => Promise<Parameters<S[K]['responseSerialize']>[0]>;
};

/** The client certificate mutual TLS verified (grpc-js reports only verified ones): its names and purpose. */
function certificateOf(call: ServerUnaryCall<unknown, unknown>): ClientCertificate | undefined {
  const cert = call.getAuthContext?.().sslPeerCertificate;
  return cert ? clientCertificateOf(cert) : undefined;
}

const USER_AGENT_MAX = 256;
/** The `user-agent` metadata as printable text of at most 256 characters ('' if none). */
function userAgentOf(metadata: Metadata): string {
  const value = metadata.get('user-agent')[0];
  if (typeof value !== 'string') return '';
  return value.replace(/[\p{Cc}\p{Cf}\uFFFD]/gu, '').slice(0, USER_AGENT_MAX);
}

export function adaptService<S extends Record<string, UnaryMethod>, P extends PolicyTable<S>>(
  definition: S,
  policies: P,
  handlers: ServiceHandlers<S, P>,
  steps: readonly Middleware[],
): UntypedServiceImplementation {
  const impl: UntypedServiceImplementation = {};
  for (const key of Object.keys(definition) as (keyof S & string)[]) {
    const method = { path: definition[key].path, policy: policies[key] };
    const handler = handlers[key] as (request: unknown, ctx: object) => Promise<unknown>;
    const run = compose(steps, (ctx) =>
      handler(ctx.request, {
        metadata: ctx.metadata,
        signal: ctx.signal,
        clientAddress: ctx.clientAddress,
        clientSource: ctx.clientSource,
        // read when a handler wants it (Login, Register: the session's user agent), not per call
        get userAgent() {
          return userAgentOf(ctx.metadata);
        },
        requestId: ctx.requestId,
        caller: ctx.caller,
        confirmLive: () => {
          ctx.live = true;
        },
      }),
    );
    impl[key] = (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
      const controller = new AbortController();
      // grpc-js also emits 'cancelled' after a call it has answered: listen only while we work.
      const onCancelled = () => controller.abort();
      call.once('cancelled', onCancelled);
      const ctx: CallContext = {
        method,
        request: call.request,
        metadata: call.metadata,
        signal: controller.signal,
        peer: call.getPeer(),
        clientAddress: '',
        certificate: certificateOf(call),
        clientSource: '',
        caller: undefined,
        live: true,
        requestId: '',
        traceId: undefined,
        responseMetadata: new Metadata(),
      };
      const sendHeaders = () => {
        call.removeListener('cancelled', onCancelled);
        if (Object.keys(ctx.responseMetadata.getMap()).length > 0) call.sendMetadata(ctx.responseMetadata);
      };
      run(ctx).then(
        (response) => {
          sendHeaders();
          callback(null, response);
        },
        (err: unknown) => {
          sendHeaders();
          callback(
            err instanceof StatusError
              ? err.status
              : { code: Code.INTERNAL, details: 'internal error', metadata: new Metadata() },
          );
        },
      );
    };
  }
  return impl;
}
