/**
 * The gRPC server: our services, the standard health service and reflection on one port.
 * `startGrpcServer` resolves once the port is bound; `stop` turns health to NOT_SERVING, lets
 * in-flight RPCs finish for up to `graceMs`, then cancels what is left (grpc-node issues 1458
 * and 2091: tryShutdown alone can wait forever).
 */
import {
  Server,
  ServerCredentials,
  type ServerInterceptor,
  type ServiceDefinition,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { HealthImplementation, type ServingStatus } from 'grpc-health-check';
import { createReflectionService } from './grpc/reflection.js';
import type { Logger } from './logger.js';

export interface ServiceBinding {
  name: string;
  definition: ServiceDefinition;
  implementation: UntypedServiceImplementation;
}

export interface GrpcServerOptions {
  host: string;
  port: number;
  /** TLS (src/grpc/tls.ts) or, by default, plaintext. */
  credentials?: ServerCredentials;
  maxReceiveBytes: number;
  /** Around every call the server handles (health and reflection too): the metrics. */
  interceptors?: ServerInterceptor[];
  /** Keepalive pings and connection age (GRPC_KEEPALIVE_*, GRPC_MAX_CONNECTION_AGE_*); 0 turns one off. */
  connections: {
    keepaliveTimeMs: number;
    keepaliveTimeoutMs: number;
    maxConnectionAgeMs: number;
    maxConnectionAgeGraceMs: number;
  };
  services: ServiceBinding[];
  logger: Logger;
}

export interface GrpcServer {
  readonly port: number;
  /** Sets the overall ("") and every service's health status. */
  setServing(serving: boolean): void;
  stop(graceMs: number): Promise<{ forced: boolean }>;
}

export async function startGrpcServer(options: GrpcServerOptions): Promise<GrpcServer> {
  const { services, logger } = options;
  const c = options.connections;
  const server = new Server({
    'grpc.max_receive_message_length': options.maxReceiveBytes,
    'grpc.max_send_message_length': 16 * 1024 * 1024,
    interceptors: options.interceptors ?? [],
    // grpc-js leaves each of these unlimited (no pings, connections never aged out) when unset
    ...(c.keepaliveTimeMs > 0
      ? { 'grpc.keepalive_time_ms': c.keepaliveTimeMs, 'grpc.keepalive_timeout_ms': c.keepaliveTimeoutMs }
      : {}),
    ...(c.maxConnectionAgeMs > 0
      ? {
          'grpc.max_connection_age_ms': c.maxConnectionAgeMs,
          'grpc.max_connection_age_grace_ms': c.maxConnectionAgeGraceMs,
        }
      : {}),
  });
  for (const s of services) server.addService(s.definition, s.implementation);

  const names = ['', ...services.map((s) => s.name)];
  const health = new HealthImplementation(
    Object.fromEntries(names.map((n) => [n, 'NOT_SERVING' as ServingStatus])),
  );
  health.addToServer(server);
  createReflectionService().addToServer(server);

  const address = options.host.includes(':')
    ? `[${options.host}]:${options.port}`
    : `${options.host}:${options.port}`;
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, options.credentials ?? ServerCredentials.createInsecure(), (err, bound) =>
      err ? reject(err) : resolve(bound),
    ),
  );
  logger.info({ host: options.host, port, tls: Boolean(options.credentials) }, 'gRPC server listening');

  let stopping: Promise<{ forced: boolean }> | undefined;
  return {
    port,
    setServing(serving) {
      for (const n of names) health.setStatus(n, serving ? 'SERVING' : 'NOT_SERVING');
    },
    stop(graceMs) {
      stopping ??= new Promise((resolve) => {
        for (const n of names) health.setStatus(n, 'NOT_SERVING');
        const timer = setTimeout(() => {
          logger.warn({ graceMs }, 'grace period over: cancelling the RPCs still in flight');
          server.forceShutdown();
          resolve({ forced: true });
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve({ forced: false });
        });
      });
      return stopping;
    },
  };
}
