/**
 * The gRPC server: our services, the standard health service and reflection on one port.
 * `startGrpcServer` resolves once the port is bound; `stop` turns health to NOT_SERVING, lets
 * in-flight RPCs finish for up to `graceMs`, then cancels what is left (grpc-node issues 1458
 * and 2091: tryShutdown alone can wait forever).
 *
 * What one caller may hold is bounded: streams per connection (`grpc.max_concurrent_streams`, told
 * to the client in HTTP/2 SETTINGS, so grpc-js clients queue the rest), connections (grpc-js has no
 * such option: the port is our own net.Server, one per address the host names, which closes any
 * connection beyond the limit at once and hands the others to grpc-js through its public
 * connection injector), and health
 * watchers (src/grpc/health.ts).
 */
import dns from 'node:dns/promises';
import net from 'node:net';
import {
  Server,
  ServerCredentials,
  type ServerInterceptor,
  type ServiceDefinition,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { createHealth } from './grpc/health.js';
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
    /** Streams (calls) in flight on one connection; the client queues the rest. */
    maxConcurrentStreams: number;
    /** Connections open at once (per process); one beyond is closed as it arrives. */
    maxConnections: number;
  };
  /** Health Watch streams open at once; one beyond is refused with RESOURCE_EXHAUSTED. */
  maxHealthWatchers: number;
  services: ServiceBinding[];
  logger: Logger;
}

export interface GrpcServer {
  readonly port: number;
  /** Sets the overall ("") and every service's health status. */
  setServing(serving: boolean): void;
  stop(graceMs: number): Promise<{ forced: boolean }>;
  /** Connections open now, those closed on arrival for being over the limit, and health watchers. */
  stats(): { connections: number; refusedConnections: number; healthWatchers: number };
}

export async function startGrpcServer(options: GrpcServerOptions): Promise<GrpcServer> {
  const { services, logger } = options;
  const c = options.connections;
  const server = new Server({
    'grpc.max_receive_message_length': options.maxReceiveBytes,
    'grpc.max_send_message_length': 16 * 1024 * 1024,
    'grpc.max_concurrent_streams': c.maxConcurrentStreams,
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
  const health = createHealth(names, options.maxHealthWatchers);
  health.addToServer(server);
  createReflectionService().addToServer(server);

  const injector = server.createConnectionInjector(options.credentials ?? ServerCredentials.createInsecure());
  let connections = 0;
  let refusedConnections = 0;
  const accept = (socket: net.Socket) => {
    if (connections >= c.maxConnections) {
      socket.destroy();
      if (refusedConnections++ % 1000 === 0) {
        logger.warn(
          { maxConnections: c.maxConnections, refusedConnections },
          'connection refused: GRPC_MAX_CONNECTIONS reached',
        );
      }
      return;
    }
    connections++;
    socket.once('close', () => connections--);
    injector.injectConnection(socket);
  };
  // every address the host names, as grpc-js's bindAsync did (localhost: 127.0.0.1 and ::1)
  const hosts = net.isIP(options.host)
    ? [options.host]
    : [...new Set((await dns.lookup(options.host, { all: true })).map((a) => a.address))];
  const listeners: net.Server[] = [];
  let port = options.port;
  for (const [i, host] of hosts.entries()) {
    const listener = net.createServer(accept);
    try {
      port = await new Promise<number>((resolve, reject) => {
        listener.once('error', reject);
        listener.listen({ host, port }, () => {
          listener.off('error', reject);
          resolve((listener.address() as net.AddressInfo).port);
        });
      });
      listeners.push(listener);
    } catch (err) {
      // the first address must work; another one (::1 without IPv6) may not, as with grpc-js
      if (i === 0) throw err;
      logger.warn({ host, port, err: { message: (err as Error).message } }, 'cannot listen on this address');
    }
  }
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
        for (const listener of listeners) listener.close();
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
    stats: () => ({ connections, refusedConnections, healthWatchers: health.watchers() }),
  };
}
