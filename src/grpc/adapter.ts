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
import { runWithCallSignal } from '../call-context.js';
import { InvalidArgumentError, unauthenticated } from '../errors.js';
import type { Logger } from '../logger.js';
import { DecodeFailure } from './decoding.js';
import { toStatus } from './status.js';

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
}

/** Checks the call's credentials; throws UNAUTHENTICATED. */
export type Authenticator = (metadata: Metadata) => Promise<Principal>;

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
  const { authenticate, publicMethods, logger } = options;
  const impl: UntypedServiceImplementation = {};
  for (const key of Object.keys(definition) as (keyof S & string)[]) {
    const method = definition[key].path;
    const handler = handlers[key];
    const isPublic = publicMethods.has(method);
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
        const principal = isPublic ? undefined : await authenticate(call.metadata);
        const ctx: CallContext = { method, metadata: call.metadata, signal: controller.signal, principal };
        return handler(call.request as never, ctx);
      };
      runWithCallSignal(controller.signal, run).then(
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
