/**
 * TLS to PostgreSQL with libpq's meanings: the `sslmode`, `sslrootcert`, `sslcert` and `sslkey`
 * parameters of a DATABASE_URL become the TLS options of pg's connections. Pure functions (no pg,
 * no I/O): `connectionOptions` (src/db/database.ts) parses the URL with them, src/config.ts refuses a
 * bad combination at load, and src/db/open.ts turns a failed check at start into a clear message and
 * logs the production warning. Messages name DATABASE_URL and the parameter, never the URL (its
 * password).
 *
 * What each mode does (https://www.postgresql.org/docs/current/libpq-ssl.html):
 * - `disable`: plaintext.
 * - `prefer` (libpq's default, so also no `sslmode`): asks for TLS and continues in plaintext when
 *   the server declines (src/db/prefer-tls.ts); the certificate is not checked.
 * - `require`: TLS or no connection, the certificate is not checked; with `sslrootcert` it is
 *   `verify-ca`, as in libpq.
 * - `verify-ca`: the server's chain must lead to `sslrootcert`.
 * - `verify-full`: that, and the certificate must name the host of the URL.
 * A Unix-socket host (`?host=/dir`) never uses TLS, whatever the mode (libpq ignores sslmode there).
 */
import net from 'node:net';
import tls from 'node:tls';

export const SSL_MODES = ['disable', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
export type SslMode = (typeof SSL_MODES)[number];

/** The TLS parameters of a DATABASE_URL, checked. */
export interface TlsSettings {
  /** As the URL says it; libpq's default, `prefer`, when it says nothing (`verify-full` with sslrootcert=system). */
  sslmode: SslMode;
  /** What is done: `require` with an `sslrootcert` is `verify-ca`; a Unix socket is `disable`. */
  effective: SslMode;
  /** The CA file the server's chain must lead to, or `system` (the trusted roots Node.js knows). */
  sslrootcert?: string;
  /** The client certificate (PEM) and its key, presented when the server asks for one. */
  sslcert?: string;
  sslkey?: string;
}

/** The contents of the files a TlsSettings names, as read for one connection. */
export interface TlsMaterial {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

const isSslMode = (v: string): v is SslMode => (SSL_MODES as readonly string[]).includes(v);
/** A value shown in a message only when it cannot be a piece of a secret pasted in the wrong place. */
const shown = (v: string) => (/^[\w-]{1,24}$/.test(v) ? ` "${v}"` : '');

/**
 * Checks and reads the TLS parameters of a URL's query string; throws an Error whose message names
 * the parameter (src/config.ts prefixes DATABASE_URL). `host` is the one connectionOptions connects to.
 */
export function tlsSettings(params: URLSearchParams, host: string): TlsSettings {
  const value = (name: string) => params.get(name) || undefined; // empty means unset, as in libpq
  const sslrootcert = value('sslrootcert');
  const sslcert = value('sslcert');
  const sslkey = value('sslkey');
  const given = value('sslmode');
  if (given === 'allow') {
    throw new Error(
      'sslmode "allow" is not supported (it tries plaintext first); use prefer, require, verify-ca or verify-full',
    );
  }
  if (given !== undefined && !isSslMode(given)) {
    throw new Error(`sslmode${shown(given)} is not one of ${SSL_MODES.join(', ')}`);
  }
  const sslmode: SslMode = given ?? (sslrootcert === 'system' ? 'verify-full' : 'prefer');
  if (sslrootcert === 'system' && sslmode !== 'verify-full' && sslmode !== 'disable') {
    throw new Error(`sslmode "${sslmode}" may not be used with sslrootcert=system (use verify-full)`);
  }
  if ((sslmode === 'verify-ca' || sslmode === 'verify-full') && !sslrootcert) {
    throw new Error(
      `sslmode "${sslmode}" needs sslrootcert: the file of the CA that signed the server's certificate (or system)`,
    );
  }
  if (Boolean(sslcert) !== Boolean(sslkey)) {
    throw new Error('sslcert and sslkey go together: give both files, or neither');
  }
  let effective: SslMode = sslmode === 'require' && sslrootcert ? 'verify-ca' : sslmode;
  if (isUnixSocket(host)) effective = 'disable';
  return { sslmode, effective, sslrootcert, sslcert, sslkey };
}

export const isUnixSocket = (host: string) => host.startsWith('/');

const LOOPBACK = new net.BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4'); // also matches ::ffff:127.x.x.x
LOOPBACK.addAddress('::1', 'ipv6');

/** A host whose traffic never leaves the machine: a Unix socket, `localhost`, 127.0.0.0/8, ::1. */
export function isLoopback(host: string): boolean {
  const h = bare(host).toLowerCase();
  if (isUnixSocket(h) || h === 'localhost' || h.endsWith('.localhost')) return true;
  const family = net.isIP(h);
  return family !== 0 && LOOPBACK.check(h, family === 4 ? 'ipv4' : 'ipv6');
}

/** A URL's IPv6 host without its brackets. */
export const bare = (host: string) => host.replace(/^\[(.*)\]$/, '$1');

/** The files to read before each new connection (none for plaintext). */
export function tlsFiles(s: TlsSettings): { ca?: string; cert?: string; key?: string } {
  if (s.effective === 'disable') return {};
  const verifies = s.effective === 'verify-ca' || s.effective === 'verify-full';
  return {
    ...(verifies && s.sslrootcert !== 'system' ? { ca: s.sslrootcert } : {}),
    ...(s.sslcert ? { cert: s.sslcert, key: s.sslkey } : {}),
  };
}

/** The parameter each file of `tlsFiles` comes from, for messages. */
export const FILE_PARAMETER = { ca: 'sslrootcert', cert: 'sslcert', key: 'sslkey' } as const;

/**
 * Node's TLS options for one connection to `host` (pg's `ssl`, or the upgrade in prefer-tls.ts);
 * false for plaintext.
 */
export function tlsOptions(s: TlsSettings, host: string, m: TlsMaterial): tls.ConnectionOptions | false {
  if (s.effective === 'disable') return false;
  const client = m.cert && m.key ? { cert: m.cert, key: m.key } : {};
  switch (s.effective) {
    case 'prefer':
    case 'require':
      return { ...client, rejectUnauthorized: false };
    case 'verify-ca':
      // The chain is checked (rejectUnauthorized); the names in the certificate are not.
      return {
        ...client,
        ...(m.ca ? { ca: m.ca } : {}),
        rejectUnauthorized: true,
        checkServerIdentity: () => undefined,
      };
    case 'verify-full':
      return {
        ...client,
        ...(m.ca ? { ca: m.ca } : {}),
        rejectUnauthorized: true,
        checkServerIdentity: (_servername, cert) => tls.checkServerIdentity(bare(host), cert),
      };
  }
}

/** The warning for production: traffic to another machine whose server is not verified. */
export function productionTlsWarning(s: TlsSettings, host: string): string | null {
  if (isLoopback(host) || s.effective === 'verify-ca' || s.effective === 'verify-full') return null;
  const what =
    s.effective === 'disable'
      ? 'is not encrypted'
      : 'does not verify the server (anyone on the path can pose as it)';
  return `DATABASE_URL: sslmode=${s.sslmode} to ${host} ${what}; in production use sslmode=verify-full with sslrootcert`;
}

/** A TLS file that could not be read; its message names the parameter and the path, nothing else. */
export class TlsFileError extends Error {
  override name = 'TlsFileError';
}
export const unreadableFile = (file: keyof typeof FILE_PARAMETER, path: string, err: unknown) =>
  new TlsFileError(
    `cannot read ${FILE_PARAMETER[file]} file ${JSON.stringify(path)}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
  );

/** Node's codes for a certificate chain that does not verify. */
const CHAIN_CODES = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'INVALID_CA',
  'INVALID_PURPOSE',
  'PATH_LENGTH_EXCEEDED',
]);

/** The error and its causes (`cause`, and Sequelize's `parent`), outermost first. */
type Failure = Error & { code?: string; cert?: { subjectaltname?: string; subject?: { CN?: string } } };
function* chain(err: unknown): Generator<Failure> {
  const seen = new Set<unknown>();
  for (let e = err; e instanceof Error && !seen.has(e); ) {
    seen.add(e);
    yield e;
    e = e.cause ?? (e as { parent?: unknown }).parent;
  }
}

/**
 * What went wrong when a connection failed a TLS step, said for an operator: which check, which
 * sslmode; null when the failure is not about TLS. Carries no part of the URL but the host.
 */
export function explainTlsFailure(err: unknown, s: TlsSettings, host: string): string | null {
  const mode =
    s.effective === s.sslmode ? `sslmode=${s.sslmode}` : `sslmode=${s.sslmode}, checked as ${s.effective}`;
  const say = (what: string) => `DATABASE_URL (${mode}): ${what}`;
  for (const e of chain(err)) {
    if (e instanceof TlsFileError) return say(e.message);
    const code = e.code ?? '';
    if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
      const names = e.cert?.subjectaltname || (e.cert?.subject?.CN ? `CN=${e.cert.subject.CN}` : 'no names');
      return say(
        `host name check failed: the database server's certificate does not name ${host} (it names ${names})`,
      );
    }
    if (CHAIN_CODES.has(code)) {
      const against = s.sslrootcert === 'system' ? 'the system trusted roots' : 'sslrootcert';
      return say(
        `certificate check failed: the database server's certificate is not trusted by ${against} (${code}: ${e.message})`,
      );
    }
    if (e.message === 'The server does not support SSL connections') {
      return say('the database server does not offer TLS (its ssl setting is off)');
    }
    if (code.startsWith('ERR_OSSL') || code.startsWith('ERR_SSL') || code.startsWith('ERR_TLS')) {
      return say(`the TLS handshake with the database server failed (${code}: ${e.message})`);
    }
  }
  return null;
}
