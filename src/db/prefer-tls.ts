/**
 * The socket pg is given (its `stream` option) for sslmode=prefer. pg's own `ssl` can only demand
 * TLS: when the server declines, the connection fails. libpq's prefer asks and goes on in plaintext
 * on the same connection. So this socket does the asking itself: it sends PostgreSQL's SSLRequest,
 * and on 'S' runs the TLS handshake and carries the connection inside TLS, on 'N' carries it as it
 * is. pg, configured for plaintext, then speaks the protocol through it either way.
 */
import net from 'node:net';
import { Duplex } from 'node:stream';
import tls from 'node:tls';

/** SSLRequest: length 8, then the code 80877103 (1234 << 16 | 5679). */
const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);

export class PreferTlsSocket extends Duplex {
  /** True once the connection runs inside TLS (the server answered 'S'). */
  encrypted = false;
  private raw: net.Socket | undefined;
  private inner: net.Socket | undefined;
  private noDelay = false;
  private keepAlive: [boolean, number] | undefined;
  private referenced = true;

  constructor(private readonly tlsOptions: tls.ConnectionOptions) {
    super({ allowHalfOpen: false });
  }

  // The parts of net.Socket that pg's Connection calls.
  setNoDelay(noDelay = true): this {
    this.noDelay = noDelay;
    this.raw?.setNoDelay(noDelay);
    return this;
  }
  setKeepAlive(enable = false, initialDelay = 0): this {
    this.keepAlive = [enable, initialDelay];
    this.raw?.setKeepAlive(enable, initialDelay);
    return this;
  }
  ref(): this {
    this.referenced = true;
    this.raw?.ref();
    return this;
  }
  unref(): this {
    this.referenced = false;
    this.raw?.unref();
    return this;
  }

  /** pg calls `connect(port, host)` (a Unix socket path never gets here: no TLS there). */
  connect(port: number, host: string): this {
    const raw = net.connect({ port, host });
    this.raw = raw;
    raw.setNoDelay(this.noDelay);
    if (this.keepAlive) raw.setKeepAlive(...this.keepAlive);
    if (!this.referenced) raw.unref();
    raw.on('error', (err) => this.destroy(err));
    raw.on('close', () => this.destroy());
    raw.once('connect', () => raw.write(SSL_REQUEST));
    raw.once('data', (answer: Buffer) => {
      // More than the one byte would be data sent before the handshake: never trust it (CVE-2021-23222).
      if (answer.length !== 1)
        return this.destroy(new Error("unexpected data after the server's answer to SSLRequest"));
      if (answer[0] === 0x4e /* N: no TLS here */) return this.start(raw);
      if (answer[0] !== 0x53 /* S */) {
        return this.destroy(new Error('There was an error establishing an SSL connection'));
      }
      const secure = tls.connect({
        ...this.tlsOptions,
        socket: raw,
        ...(net.isIP(host) ? {} : { servername: host }), // SNI is for names only (RFC 6066)
      });
      secure.on('error', (err) => this.destroy(err));
      secure.once('secureConnect', () => {
        this.encrypted = true;
        this.start(secure);
      });
    });
    return this;
  }

  private start(inner: net.Socket): void {
    this.inner = inner;
    inner.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) inner.pause();
    });
    inner.on('end', () => this.push(null));
    inner.resume();
    this.emit('connect');
  }

  override _read(): void {
    this.inner?.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    if (this.inner) this.inner.write(chunk, done);
    else this.once('connect', () => this._write(chunk, _encoding, done));
  }

  override _final(done: (err?: Error | null) => void): void {
    if (this.inner) this.inner.end(done);
    else done();
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    this.inner?.destroy();
    this.raw?.destroy();
    done(err);
  }
}
