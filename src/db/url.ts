/**
 * The one reader of a DATABASE_URL: the server, the cluster primary, the CLI and the configuration
 * check (src/config.ts) all go through `connectionOptions`. Pure: no pg, no I/O.
 */
import { bare, tlsSettings } from './tls.js';

/**
 * Connection settings from a postgres:// URL, honouring libpq's `?host=/socket/dir&port=N` form for
 * a Unix socket (Sequelize's own URL parsing does not) and its TLS parameters (`sslmode`,
 * `sslrootcert`, `sslcert`, `sslkey`: src/db/tls.ts). Throws on a bad TLS parameter, naming it.
 */
export function connectionOptions(url: string) {
  const u = new URL(url);
  const socketHost = u.searchParams.get('host');
  const host = socketHost ?? (bare(u.hostname) || 'localhost');
  return {
    database: decodeURIComponent(u.pathname.slice(1)),
    username: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    host,
    port: Number(u.searchParams.get('port') || u.port || 5432),
    tls: tlsSettings(u.searchParams, host),
  };
}
