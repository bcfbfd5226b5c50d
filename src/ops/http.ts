/**
 * The operations port (OPS_HOST:OPS_PORT): a small HTTP server for Prometheus and probes.
 *
 *   GET /metrics                Prometheus text format
 *   GET /healthz                200 while the process runs (liveness)
 *   GET /readyz                 200 while the gRPC health is SERVING, else 503 (readiness)
 *   GET /.well-known/jwks.json  the JWK Set that verifies our access tokens
 *
 * GET and HEAD only; anything else is 405, an unknown path 404. Nothing here is secret, but it
 * answers on loopback unless OPS_HOST says otherwise.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../logger.js';

export interface OpsEndpoints {
  metrics(): Promise<{ contentType: string; body: string }>;
  /** Null when ready, else why not (said in the 503 body). */
  notReadyBecause(): string | null;
  jwks(): unknown;
}

export interface OpsServer {
  readonly port: number;
  close(): Promise<void>;
}

export async function startOpsServer(
  options: { host: string; port: number; logger: Logger },
  endpoints: OpsEndpoints,
): Promise<OpsServer> {
  const { logger } = options;
  const send = (res: http.ServerResponse, status: number, type: string, body: string, head: boolean) => {
    res.writeHead(status, {
      'content-type': type,
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
    });
    res.end(head ? undefined : body);
  };
  const text = 'text/plain; charset=utf-8';

  const server = http.createServer((req, res) => {
    const head = req.method === 'HEAD';
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && !head) {
      res.setHeader('allow', 'GET, HEAD');
      return send(res, 405, text, 'method not allowed: GET or HEAD\n', false);
    }
    switch (path) {
      case '/metrics':
        endpoints.metrics().then(
          ({ contentType, body }) => send(res, 200, contentType, body, head),
          (err: unknown) => {
            logger.error({ err: { message: (err as Error).message } }, 'metrics collection failed');
            send(res, 500, text, 'metrics collection failed\n', head);
          },
        );
        return;
      case '/healthz':
        return send(res, 200, text, 'ok\n', head);
      case '/readyz': {
        const reason = endpoints.notReadyBecause();
        return reason === null
          ? send(res, 200, text, 'ready\n', head)
          : send(res, 503, text, `not ready: ${reason}\n`, head);
      }
      case '/.well-known/jwks.json':
        return send(res, 200, 'application/json', JSON.stringify(endpoints.jwks()), head);
      default:
        return send(
          res,
          404,
          text,
          'not found: try /metrics, /healthz, /readyz, /.well-known/jwks.json\n',
          head,
        );
    }
  });
  // A scraper or probe sends one small request: no slow-loris holding sockets open.
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  server.keepAliveTimeout = 5_000;
  server.maxHeadersCount = 50;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((err: NodeJS.ErrnoException) => {
    throw new Error(
      `the operations port ${options.host}:${options.port} could not be opened (${err.code ?? err.message}); set OPS_PORT to a free port, or 0 to turn it off`,
    );
  });
  const port = (server.address() as AddressInfo).port;
  logger.info({ host: options.host, port }, 'operations port listening (/metrics, /healthz, /readyz)');
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
