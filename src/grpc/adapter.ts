/**
 * Turns `async (request, ctx) => response` handlers into grpc-js unary handlers. grpc-js ignores a
 * handler's returned promise, so this is the one place that awaits it and calls back exactly once,
 * maps errors to statuses, authenticates (every method not listed as public needs a bearer token)
 * and logs one line per RPC.
 */
import {
  status as Code,
  Metadata,
  type ServerUnaryCall,
  type StatusObject,
  type sendUnaryData,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { AppError, type ErrorKind, InvalidArgumentError, unauthenticated } from '../errors.js';
import type { Logger } from '../logger.js';
import { DecodeFailure } from './decoding.js';
import { toStatus } from './status.js';

const DATA_NEUTRAL = new Set<ErrorKind>([
  'INVALID_ARGUMENT',
  'UNAUTHENTICATED',
  'RESOURCE_EXHAUSTED',
  'UNAVAILABLE',
  'CANCELLED',
  'DEADLINE_EXCEEDED',
]);

export interface Principal {
  userId: string;
  email: string;
  roles: string[];
  sessionId: string;
}

export interface CallContext {
  /** Full method path, e.g. `/connectsphere.auth.v1.AuthService/Login`. */
  readonly method: string;
  readonly metadata: Metadata;
  /** Aborted when the caller cancels or its deadline passes: stop work that only it wanted. */
  readonly signal: AbortSignal;
  /** The authenticated caller; set for every non-public method. */
  readonly principal: Principal | undefined;
  /**
   * For methods in `deferredLiveness`: the handler's own query has confirmed that the caller's
   * session is live (see AdapterOptions.deferredLiveness).
   */
  confirmLive(): void;
}

export interface Authenticator {
  /** The bearer token alone (no I/O); throws UNAUTHENTICATED. */
  verify(metadata: Metadata): Principal;
  /** The token and its live session, with the caller's current roles; throws UNAUTHENTICATED. */
  authenticate(metadata: Metadata, signal?: AbortSignal): Promise<Principal>;
}

interface UnaryMethod {
  path: string;
  requestStream: false;
  responseStream: false;
  // biome-ignore lint/suspicious/noExplicitAny: contravariant position; the mapped type below restores exact types
  requestDeserialize: (b: Buffer) => any;
  // biome-ignore lint/suspicious/noExplicitAny: as above
  responseSerialize: (v: any) => Buffer;
}

/** The handlers of a generated service definition: a missing or mistyped RPC is a compile error. */
export type ServiceHandlers<S extends Record<string, UnaryMethod>> = {
  [K in keyof S]: (
    request: ReturnType<S[K]['requestDeserialize']>,
    ctx: CallContext,
  ) => Promise<Parameters<S[K]['responseSerialize']>[0]>;
};

export interface AdapterOptions {
  authenticate: Authenticator;
  /** Method paths callable without a bearer token. */
  publicMethods: ReadonlySet<string>;
  /**
   * Read-only methods whose handler checks the caller's session in the same query as its read
   * (one round trip instead of two). For them only the token is verified up front and
   * `principal.roles` are the token's; if the handler has not called `ctx.confirmLive()` when it
   * returns, the adapter runs the full session check before answering, so a live session is
   * always proven before any data leaves.
   */
  deferredLiveness: ReadonlySet<string>;
  logger: Logger;
}

export function requirePrincipal(ctx: CallContext): Principal {
  if (!ctx.principal)
    throw unauthenticated('this method needs `authorization: Bearer <access token>` metadata');
  return ctx.principal;
}

export function adaptService<S extends Record<string, UnaryMethod>>(
  definition: S,
  handlers: ServiceHandlers<S>,
  options: AdapterOptions,
): UntypedServiceImplementation {
  const { authenticate, publicMethods, deferredLiveness, logger } = options;
  const impl: UntypedServiceImplementation = {};
  for (const key of Object.keys(definition) as (keyof S & string)[]) {
    const method = definition[key].path;
    const handler = handlers[key];
    const isPublic = publicMethods.has(method);
    const deferred = deferredLiveness.has(method);
    impl[key] = (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
      const started = performance.now();
      logger.debug({ method }, 'rpc start');
      const controller = new AbortController();
      // grpc-js also emits 'cancelled' after a call it has answered: listen only while we work.
      const onCancelled = () => controller.abort();
      call.once('cancelled', onCancelled);
      const run = async () => {
        const request = call.request;
        if (request instanceof DecodeFailure) {
          throw new InvalidArgumentError([
            {
              field: request.field || 'request',
              description: `not a valid ${request.typeName}: ${request.reason}`,
            },
          ]);
        }
        let live = !deferred;
        const principal = isPublic
          ? undefined
          : deferred
            ? authenticate.verify(call.metadata)
            : await authenticate.authenticate(call.metadata, controller.signal);
        const ctx: CallContext = {
          method,
          metadata: call.metadata,
          signal: controller.signal,
          principal,
          confirmLive: () => {
            live = true;
          },
        };
        try {
          const response = await handler(call.request as never, ctx);
          if (!live) await authenticate.authenticate(call.metadata, controller.signal);
          return response;
        } catch (err) {
          // no answer about data (NOT_FOUND, ...) may reach a caller whose session is not proven live;
          // input errors and the server's own trouble say nothing about data and stay fast
          if (!live && !(err instanceof AppError && DATA_NEUTRAL.has(err.kind))) {
            await authenticate.authenticate(call.metadata, controller.signal);
          }
          throw err;
        }
      };
      run().then(
        (response) => {
          call.removeListener('cancelled', onCancelled);
          logger.info({ method, code: 'OK', ms: elapsed(started) }, 'rpc');
          callback(null, response);
        },
        (err: unknown) => {
          call.removeListener('cancelled', onCancelled);
          const status: StatusObject = controller.signal.aborted
            ? {
                code: Code.CANCELLED,
                details: 'the call was cancelled or its deadline passed',
                metadata: new Metadata(),
              }
            : toStatus(err, logger);
          logger.info(
            { method, code: Code[status.code], ms: elapsed(started), error: status.details },
            'rpc',
          );
          callback(status);
        },
      );
    };
  }
  return impl;
}

const elapsed = (since: number) => Math.round((performance.now() - since) * 100) / 100;
