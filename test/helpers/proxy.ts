/**
 * A TCP proxy the test controls, in front of the test PostgreSQL: it lets a test refuse new
 * connections for as long as it needs (a listener that cannot reconnect) or stop carrying bytes on
 * the open ones without closing them (a half-open connection: no FIN, no RST, just silence).
 */
import net from 'node:net';

export interface TestProxy {
  /** A URL like `target`, through the proxy. */
  url: string;
  /** New connections are closed at once while refusing. */
  refuse(on: boolean): void;
  /** Open connections stop carrying bytes either way (and stay open) while silent. */
  silence(on: boolean): void;
  /** Bytes from the database reach the client this many milliseconds late (0: at once), in order. */
  delay(ms: number): void;
  close(): Promise<void>;
}

export async function startTestProxy(targetUrl: string): Promise<TestProxy> {
  const target = new URL(targetUrl);
  // libpq's `?host=/socket/dir&port=N` form (the embedded test PostgreSQL) or a TCP host and port
  const socketDir = target.searchParams.get('host');
  const port = Number(target.searchParams.get('port') || target.port || 5432);
  const upstream = () =>
    socketDir?.startsWith('/')
      ? net.connect(`${socketDir}/.s.PGSQL.${port}`)
      : net.connect(port, socketDir || target.hostname);
  let refusing = false;
  let silent = false;
  let delayMs = 0;
  const pairs = new Set<{ a: net.Socket; b: net.Socket }>();
  const server = net.createServer((a) => {
    if (refusing) {
      a.destroy();
      return;
    }
    const b = upstream();
    const pair = { a, b };
    pairs.add(pair);
    const forward = (from: net.Socket, to: net.Socket, late: boolean) =>
      from.on('data', (chunk) => {
        if (silent) return;
        // timers of one duration run in the order they were set: the bytes stay in order
        if (late && delayMs > 0) setTimeout(() => to.write(chunk), delayMs);
        else to.write(chunk);
      });
    forward(a, b, false);
    forward(b, a, true);
    const end = () => {
      pairs.delete(pair);
      a.destroy();
      b.destroy();
    };
    a.on('close', end).on('error', end);
    b.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = new URL(targetUrl);
  url.searchParams.delete('host');
  url.searchParams.delete('port');
  url.hostname = '127.0.0.1';
  url.port = String((server.address() as net.AddressInfo).port);
  return {
    url: url.toString(),
    refuse: (on) => {
      refusing = on;
    },
    silence: (on) => {
      silent = on;
    },
    delay: (ms) => {
      delayMs = ms;
    },
    async close() {
      for (const { a, b } of pairs) {
        a.destroy();
        b.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
