/**
 * Typed, promise-based clients for other Node services (and our tests):
 *
 *   const cs = connect('localhost:50051');
 *   const { tokens } = await cs.auth.login({ email, password });
 *   const me = await cs.withToken(tokens!.accessToken).users.getUser({ lookup: { $case: 'email', value: email } });
 *
 * Every call has a deadline (default 5 s). Errors are grpc-js ServiceErrors; `fieldViolations(err)`
 * decodes the google.rpc.BadRequest details of an INVALID_ARGUMENT.
 */
import {
  type CallOptions,
  type ChannelCredentials,
  type ChannelOptions,
  Client,
  credentials as grpcCredentials,
  Metadata,
  type ServiceError,
} from '@grpc/grpc-js';
import { AuthServiceService } from './gen/connectsphere/auth/v1/auth.js';
import { UserServiceService } from './gen/connectsphere/user/v1/user.js';
import { BadRequest, RetryInfo } from './gen/google/rpc/error_details.js';
import { Status } from './gen/google/rpc/status.js';

export { status as Code } from '@grpc/grpc-js';
export type { ServiceError };

interface UnaryMethod<Req, Res> {
  path: string;
  requestSerialize: (value: Req) => Buffer;
  responseDeserialize: (value: Buffer) => Res;
}

export interface CallOpts {
  /** Overrides the client's default deadline for this call. */
  deadlineMs?: number;
  /** Overrides the client's bearer token for this call. */
  token?: string;
  metadata?: Metadata;
}

/** One async function per RPC of a generated service definition. */
export type PromiseClient<S> = {
  [K in keyof S]: S[K] extends UnaryMethod<infer Req, infer Res>
    ? (request: Req, opts?: CallOpts) => Promise<Res>
    : never;
};

export interface ClientDefaults {
  deadlineMs: number;
  token?: string;
  /** Where calls without their own token get one (a service account's, renewed before it expires). */
  tokenSource?: () => Promise<string>;
}

export function promiseClient<S extends Record<string, UnaryMethod<never, unknown>>>(
  definition: S,
  channel: Client,
  defaults: ClientDefaults,
): PromiseClient<S> {
  const out: Record<string, unknown> = {};
  for (const [name, method] of Object.entries(definition)) {
    const call = (request: unknown, opts: CallOpts, sourced?: string) =>
      new Promise((resolve, reject) => {
        const metadata = opts.metadata?.clone() ?? new Metadata();
        const token = opts.token ?? defaults.token ?? sourced;
        if (token && !metadata.get('authorization').length) metadata.set('authorization', `Bearer ${token}`);
        const options: CallOptions = { deadline: Date.now() + (opts.deadlineMs ?? defaults.deadlineMs) };
        channel.makeUnaryRequest(
          method.path,
          method.requestSerialize as (value: unknown) => Buffer,
          method.responseDeserialize,
          request,
          metadata,
          options,
          (err, response) => (err ? reject(err) : resolve(response)),
        );
      });
    const source = defaults.tokenSource;
    out[name] =
      source && !defaults.token
        ? async (request: unknown, opts: CallOpts = {}) =>
            call(request, opts, opts.token ? undefined : await source())
        : (request: unknown, opts: CallOpts = {}) => call(request, opts);
  }
  return out as PromiseClient<S>;
}

export interface ConnectOptions {
  /** Default deadline of every call, ms (default 5000). */
  deadlineMs?: number;
  /** Bearer token sent with every call. */
  token?: string;
  /**
   * TLS: the CA that signed the server's certificate (PEM), and for mutual TLS this client's
   * certificate chain and key. `serverName` overrides the name checked in the server's certificate.
   */
  tls?: { ca: string | Buffer; cert?: string | Buffer; key?: string | Buffer; serverName?: string };
  /**
   * A service account's client credentials: the client gets an access token with
   * IssueServiceToken, sends it with every call, and gets a new one before it expires.
   */
  service?: { clientId: string; clientSecret: string };
  /** Channel credentials of your own (overrides `tls`). Default: plaintext, or TLS with `tls`. */
  credentials?: ChannelCredentials;
  channelOptions?: ChannelOptions;
}

export interface ConnectSphereClient {
  auth: PromiseClient<typeof AuthServiceService>;
  users: PromiseClient<typeof UserServiceService>;
  /** The same connection, sending `authorization: Bearer <token>` with every call. */
  withToken(token: string): ConnectSphereClient;
  /** Resolves when the channel is connected (or rejects after `deadlineMs`). */
  waitForReady(deadlineMs?: number): Promise<void>;
  close(): void;
}

function build(channel: Client, defaults: ClientDefaults): ConnectSphereClient {
  return {
    auth: promiseClient(AuthServiceService, channel, defaults),
    users: promiseClient(UserServiceService, channel, defaults),
    withToken: (token) => build(channel, { ...defaults, token }),
    waitForReady: (deadlineMs = defaults.deadlineMs) =>
      new Promise((resolve, reject) =>
        channel.waitForReady(Date.now() + deadlineMs, (err) => (err ? reject(err) : resolve())),
      ),
    close: () => channel.close(),
  };
}

const pem = (v: string | Buffer | undefined) => (v === undefined ? undefined : Buffer.from(v));

/** Renew a service token when less than this share of its life is left. */
const RENEW_AT = 0.2;

/** Gets a service account's access token when none is held or it is near its end; one request at a time. */
function serviceTokenSource(
  auth: PromiseClient<typeof AuthServiceService>,
  service: { clientId: string; clientSecret: string },
): () => Promise<string> {
  let held: { token: string; renewAt: number; expiresAt: number } | undefined;
  let pending: Promise<string> | undefined;
  const fetch = () => {
    pending ??= auth
      .issueServiceToken({ clientId: service.clientId, clientSecret: service.clientSecret })
      .then((r) => {
        const now = Date.now();
        held = {
          token: r.accessToken,
          renewAt: now + r.expiresIn * 1000 * (1 - RENEW_AT),
          expiresAt: now + r.expiresIn * 1000,
        };
        return r.accessToken;
      })
      .finally(() => {
        pending = undefined;
      });
    return pending;
  };
  return async () => {
    const now = Date.now();
    if (held && now < held.renewAt) return held.token;
    // near the end: renew, but keep using the current one while it lasts if renewal fails
    if (held && now < held.expiresAt) return fetch().catch(() => (held as { token: string }).token);
    return fetch();
  };
}

export function connect(address: string, options: ConnectOptions = {}): ConnectSphereClient {
  const { tls } = options;
  const credentials =
    options.credentials ??
    (tls
      ? grpcCredentials.createSsl(pem(tls.ca), pem(tls.key) ?? null, pem(tls.cert) ?? null)
      : grpcCredentials.createInsecure());
  const channelOptions = {
    ...(tls?.serverName ? { 'grpc.ssl_target_name_override': tls.serverName } : {}),
    ...options.channelOptions,
  };
  const channel = new Client(address, credentials, channelOptions);
  const defaults: ClientDefaults = { deadlineMs: options.deadlineMs ?? 5000, token: options.token };
  if (options.service) {
    defaults.tokenSource = serviceTokenSource(
      promiseClient(AuthServiceService, channel, defaults),
      options.service,
    );
  }
  return build(channel, defaults);
}

export interface FieldViolation {
  field: string;
  description: string;
}

/** The field violations of an INVALID_ARGUMENT error (google.rpc.BadRequest in grpc-status-details-bin). */
export function fieldViolations(err: unknown): FieldViolation[] {
  const metadata = (err as Partial<ServiceError>)?.metadata;
  const raw = metadata?.get('grpc-status-details-bin')[0];
  if (!Buffer.isBuffer(raw)) return [];
  const status = Status.decode(raw);
  return status.details
    .filter((any) => any.typeUrl === 'type.googleapis.com/google.rpc.BadRequest')
    .flatMap((any) => BadRequest.decode(any.value).fieldViolations)
    .map(({ field, description }) => ({ field, description }));
}

/** The wait a throttled RESOURCE_EXHAUSTED asks for (google.rpc.RetryInfo), in seconds; undefined if none. */
export function retryDelaySeconds(err: unknown): number | undefined {
  const metadata = (err as Partial<ServiceError>)?.metadata;
  const raw = metadata?.get('grpc-status-details-bin')[0];
  if (!Buffer.isBuffer(raw)) return undefined;
  const info = Status.decode(raw).details.find(
    (any) => any.typeUrl === 'type.googleapis.com/google.rpc.RetryInfo',
  );
  if (!info) return undefined;
  const delay = RetryInfo.decode(info.value).retryDelay;
  return delay ? delay.seconds + delay.nanos / 1e9 : undefined;
}
