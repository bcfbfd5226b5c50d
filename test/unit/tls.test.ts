/**
 * DATABASE_URL → TLS (src/db/url.ts, src/db/tls.ts): the libpq rules as pure functions; and the
 * sslmode=prefer socket (src/db/prefer-tls.ts) against a fake PostgreSQL that answers the SSLRequest.
 * No database (test/db-tls.test.ts has the real one).
 */
import fs from 'node:fs';
import net from 'node:net';
import tls, { type PeerCertificate } from 'node:tls';
import { expect } from 'chai';
import { loadConfig } from '../../src/config.js';
import { PreferTlsSocket } from '../../src/db/prefer-tls.js';
import {
  explainTlsFailure,
  isLoopback,
  productionTlsWarning,
  type TlsSettings,
  tlsFiles,
  tlsOptions,
} from '../../src/db/tls.js';
import { connectionOptions } from '../../src/db/url.js';
import { createTestCa, type TestCa } from '../helpers/certs.js';

const BASE = 'postgres://svc:s3cret@db.example.com:6432/identity';
const settings = (query: string) => connectionOptions(`${BASE}?${query}`).tls;
const refusal = (query: string) => {
  try {
    connectionOptions(`${BASE}?${query}`);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error(`accepted ${query}`);
};

describe('DATABASE_URL TLS parameters (libpq rules)', () => {
  it('reads the host, port, database and credentials, and the socket form', () => {
    const { tls: _, ...target } = connectionOptions(`${BASE}?sslmode=require`);
    expect(target).to.deep.equal({
      database: 'identity',
      username: 'svc',
      password: 's3cret',
      host: 'db.example.com',
      port: 6432,
    });
    const socket = connectionOptions('postgres://u:p@localhost/app?host=%2Fvar%2Frun%2Fpg&port=5433');
    expect([socket.host, socket.port, socket.tls.effective]).to.deep.equal(['/var/run/pg', 5433, 'disable']);
    expect(connectionOptions('postgres://u:p@[::1]:5432/app').host, 'IPv6 without brackets').to.equal('::1');
  });

  it('defaults to prefer, as libpq does; each mode is what it says', () => {
    expect(connectionOptions(BASE).tls).to.deep.include({ sslmode: 'prefer', effective: 'prefer' });
    for (const mode of ['disable', 'prefer', 'require'] as const) {
      expect(settings(`sslmode=${mode}`)).to.deep.include({ sslmode: mode, effective: mode });
    }
    for (const mode of ['verify-ca', 'verify-full'] as const) {
      expect(settings(`sslmode=${mode}&sslrootcert=/ca.pem`)).to.deep.include({
        sslmode: mode,
        effective: mode,
        sslrootcert: '/ca.pem',
      });
    }
  });

  it('treats require with an sslrootcert as verify-ca, and sslrootcert=system as verify-full', () => {
    expect(settings('sslmode=require&sslrootcert=/ca.pem')).to.deep.include({
      sslmode: 'require',
      effective: 'verify-ca',
    });
    expect(settings('sslrootcert=system')).to.deep.include({
      sslmode: 'verify-full',
      effective: 'verify-full',
    });
  });

  it('never uses TLS on a Unix socket (libpq ignores sslmode there)', () => {
    const s = connectionOptions('postgres://u:p@x/app?host=/run/pg&sslmode=verify-full&sslrootcert=/ca.pem');
    expect(s.tls).to.deep.include({ sslmode: 'verify-full', effective: 'disable' });
    expect(tlsFiles(s.tls)).to.deep.equal({});
  });

  const refused: [string, RegExp][] = [
    [
      'sslmode=verify_full',
      /^sslmode "verify_full" is not one of disable, prefer, require, verify-ca, verify-full$/,
    ],
    ['sslmode=allow', /^sslmode "allow" is not supported/],
    ['sslmode=verify-ca', /^sslmode "verify-ca" needs sslrootcert/],
    ['sslmode=verify-full', /^sslmode "verify-full" needs sslrootcert/],
    ['sslmode=require&sslrootcert=system', /^sslmode "require" may not be used with sslrootcert=system/],
    ['sslcert=/c.pem', /^sslcert and sslkey go together/],
    ['sslmode=require&sslkey=/k.pem', /^sslcert and sslkey go together/],
  ];
  for (const [query, message] of refused) {
    it(`refuses ${query}`, () => expect(refusal(query)).to.match(message));
  }

  it('refuses at config load naming DATABASE_URL, never printing the URL or an odd value', () => {
    const fail = (url: string) => {
      try {
        loadConfig({ DATABASE_URL: url });
      } catch (err) {
        return (err as Error).message;
      }
      throw new Error('accepted');
    };
    const message = fail(`${BASE}?sslmode=verify-fulll`);
    expect(message).to.match(/^DATABASE_URL: sslmode "verify-fulll" is not one of/m);
    expect(message).to.not.include('s3cret').and.not.include('db.example.com');
    // a value that may be a pasted secret is not repeated
    expect(fail(`${BASE}?sslmode=${encodeURIComponent('s3cret pass!')}`))
      .to.match(/^DATABASE_URL: sslmode is not one of/m)
      .and.not.include('s3cret');
    expect(
      loadConfig({ DATABASE_URL: `${BASE}?sslmode=verify-full&sslrootcert=/ca.pem` }).DATABASE_URL,
    ).to.equal(`${BASE}?sslmode=verify-full&sslrootcert=/ca.pem`);
  });
});

describe('DATABASE_URL TLS → Node TLS options', () => {
  const material = { ca: Buffer.from('CA'), cert: Buffer.from('CERT'), key: Buffer.from('KEY') };
  const options = (query: string, host = 'db.example.com') =>
    tlsOptions(settings(query), host, material) as tls.ConnectionOptions;
  const cert = (san: string) => ({ subject: { CN: 'x' }, subjectaltname: san }) as unknown as PeerCertificate;

  it('disable: none; prefer and require: TLS that checks nothing', () => {
    expect(tlsOptions(settings('sslmode=disable'), 'h', material)).to.equal(false);
    for (const mode of ['prefer', 'require']) {
      expect(tlsOptions(settings(`sslmode=${mode}`), 'h', {})).to.deep.equal({ rejectUnauthorized: false });
    }
  });

  it('reads only the files the mode uses: the CA when it verifies, the client pair when given', () => {
    expect(tlsFiles(settings('sslmode=require'))).to.deep.equal({});
    expect(tlsFiles(settings('sslmode=require&sslcert=/c&sslkey=/k'))).to.deep.equal({
      cert: '/c',
      key: '/k',
    });
    expect(tlsFiles(settings('sslmode=verify-ca&sslrootcert=/ca'))).to.deep.equal({ ca: '/ca' });
    expect(tlsFiles(settings('sslrootcert=system')), 'system: the built-in roots').to.deep.equal({});
    expect(tlsFiles(settings('sslmode=disable&sslcert=/c&sslkey=/k'))).to.deep.equal({});
  });

  it('verify-ca: the chain against sslrootcert, no name check', () => {
    const o = options('sslmode=verify-ca&sslrootcert=/ca');
    expect(o).to.deep.include({
      ca: material.ca,
      cert: material.cert,
      key: material.key,
      rejectUnauthorized: true,
    });
    expect(o.checkServerIdentity?.('db.example.com', cert('DNS:other.example.com'))).to.equal(undefined);
  });

  it('verify-full: the chain, and the URL host must be in the certificate', () => {
    const o = options('sslmode=verify-full&sslrootcert=/ca');
    expect(o).to.deep.include({ ca: material.ca, rejectUnauthorized: true });
    expect(o.checkServerIdentity?.('db.example.com', cert('DNS:db.example.com'))).to.equal(undefined);
    const wrong = o.checkServerIdentity?.('db.example.com', cert('DNS:other.example.com'));
    expect(wrong).to.be.instanceOf(Error).with.property('code', 'ERR_TLS_CERT_ALTNAME_INVALID');
    const byIp = options('sslmode=verify-full&sslrootcert=/ca', '[::1]');
    expect(byIp.checkServerIdentity?.('::1', cert('IP Address:0:0:0:0:0:0:0:1'))).to.equal(undefined);
    expect(byIp.checkServerIdentity?.('::1', cert('DNS:localhost'))).to.be.instanceOf(Error);
    const system = tlsOptions(settings('sslrootcert=system'), 'h', {}) as tls.ConnectionOptions;
    expect(system, "system: Node's trusted roots").to.not.have.property('ca');
  });
});

describe('the production warning and the start-up messages', () => {
  it('knows loopback hosts', () => {
    for (const h of [
      'localhost',
      'LocalHost',
      'db.localhost',
      '127.0.0.1',
      '127.1.2.3',
      '::1',
      '[::1]',
      '/run/pg',
    ]) {
      expect(isLoopback(h), h).to.equal(true);
    }
    for (const h of ['db.example.com', '10.0.0.5', '128.0.0.1', '::2', 'localhost.example.com', '0.0.0.0']) {
      expect(isLoopback(h), h).to.equal(false);
    }
  });

  it('warns about another host unless the server is verified', () => {
    const warn = (query: string, host = 'db.example.com') => productionTlsWarning(settings(query), host);
    expect(warn('sslmode=disable')).to.equal(
      'DATABASE_URL: sslmode=disable to db.example.com is not encrypted; in production use sslmode=verify-full with sslrootcert',
    );
    expect(warn('')).to.match(/^DATABASE_URL: sslmode=prefer to db.example.com does not verify the server/);
    expect(warn('sslmode=require')).to.match(/sslmode=require to db.example.com does not verify/);
    expect(warn('sslmode=verify-ca&sslrootcert=/ca')).to.equal(null);
    expect(warn('sslmode=require&sslrootcert=/ca'), 'that is verify-ca').to.equal(null);
    expect(warn('sslmode=verify-full&sslrootcert=/ca')).to.equal(null);
    expect(warn('sslmode=disable', '127.0.0.1')).to.equal(null);
    expect(warn('sslmode=disable', '/run/pg')).to.equal(null);
  });

  const s = (query: string): TlsSettings => settings(query);
  it('says which check failed, for which sslmode, through the wrapping of Sequelize and our errors', () => {
    const wrapped = (inner: Error) => {
      const sequelizeError = Object.assign(new Error('ConnectionError'), { parent: inner });
      return new Error('the database is unavailable; retry later', { cause: sequelizeError });
    };
    const altname = Object.assign(new Error('Hostname/IP does not match'), {
      code: 'ERR_TLS_CERT_ALTNAME_INVALID',
      cert: { subjectaltname: 'DNS:localhost', subject: { CN: 'localhost' } },
    });
    expect(
      explainTlsFailure(wrapped(altname), s('sslmode=verify-full&sslrootcert=/ca'), '127.0.0.1'),
    ).to.equal(
      "DATABASE_URL (sslmode=verify-full): host name check failed: the database server's certificate does not name 127.0.0.1 (it names DNS:localhost)",
    );
    const chain = Object.assign(new Error('unable to verify the first certificate'), {
      code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    });
    expect(explainTlsFailure(wrapped(chain), s('sslmode=require&sslrootcert=/ca'), 'h')).to.equal(
      "DATABASE_URL (sslmode=require, checked as verify-ca): certificate check failed: the database server's certificate is not trusted by sslrootcert (UNABLE_TO_VERIFY_LEAF_SIGNATURE: unable to verify the first certificate)",
    );
    expect(
      explainTlsFailure(
        wrapped(new Error('The server does not support SSL connections')),
        s('sslmode=require'),
        'h',
      ),
    ).to.equal(
      'DATABASE_URL (sslmode=require): the database server does not offer TLS (its ssl setting is off)',
    );
    const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    expect(explainTlsFailure(wrapped(refused), s('sslmode=require'), 'h'), 'not about TLS').to.equal(null);
  });
});

/** A fake PostgreSQL: answers the SSLRequest with `answer`, then (in TLS on 'S' when a cert is given) echoes. */
async function fakeServer(answer: Buffer, certFiles?: { cert: string; key: string }) {
  const requests: Buffer[] = [];
  const server = net.createServer((socket) => {
    socket.once('data', (request: Buffer) => {
      requests.push(request);
      socket.write(answer);
      if (answer[0] === 0x53 && certFiles) {
        const secure = new tls.TLSSocket(socket, {
          isServer: true,
          cert: fs.readFileSync(certFiles.cert),
          key: fs.readFileSync(certFiles.key),
        });
        secure.on('error', () => {});
        secure.pipe(secure);
      } else {
        socket.pipe(socket);
      }
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as net.AddressInfo).port, requests, close: () => server.close() };
}

/** Connects a PreferTlsSocket as pg does; resolves once connected, or with the error. */
function preferConnect(port: number): Promise<PreferTlsSocket> {
  const socket = new PreferTlsSocket({ rejectUnauthorized: false });
  socket.setNoDelay(true);
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
    socket.connect(port, '127.0.0.1');
  });
}

const echo = (socket: PreferTlsSocket, text: string) =>
  new Promise<string>((resolve) => {
    socket.once('data', (d: Buffer) => resolve(d.toString()));
    socket.write(text);
  });

describe('sslmode=prefer socket (PreferTlsSocket)', () => {
  let ca: TestCa;
  before(async () => {
    ca = await createTestCa();
  });
  after(() => ca?.remove());
  const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);

  it("sends PostgreSQL's SSLRequest; on 'N' carries the connection in plaintext", async () => {
    const server = await fakeServer(Buffer.from('N'));
    try {
      const socket = await preferConnect(server.port);
      expect(server.requests).to.deep.equal([SSL_REQUEST]);
      expect(socket.encrypted).to.equal(false);
      expect(await echo(socket, 'startup')).to.equal('startup');
      const closed = new Promise((r) => socket.once('close', r));
      socket.end();
      await closed;
    } finally {
      server.close();
    }
  });

  it("on 'S' runs the TLS handshake and carries the connection inside it", async () => {
    const files = await ca.issue('fake-pg', { names: ['localhost'] });
    const server = await fakeServer(Buffer.from('S'), files);
    try {
      const socket = await preferConnect(server.port);
      expect(socket.encrypted).to.equal(true);
      expect(await echo(socket, 'startup over tls')).to.equal('startup over tls');
      socket.destroy();
    } finally {
      server.close();
    }
  });

  it("refuses bytes sent after the 'S' (data injected before the handshake)", async () => {
    const server = await fakeServer(Buffer.from('Sjunk'));
    try {
      const err = await preferConnect(server.port).then(
        () => null,
        (e: Error) => e,
      );
      expect(err?.message).to.match(/unexpected data after the server's answer to SSLRequest/);
    } finally {
      server.close();
    }
  });

  it('passes connection errors on with their code (what pg and Sequelize map)', async () => {
    const server = await fakeServer(Buffer.from('N'));
    server.close(); // a port nobody listens on any more
    const err = await preferConnect(server.port).then(
      () => null,
      (e: NodeJS.ErrnoException) => e,
    );
    expect(err?.code).to.equal('ECONNREFUSED');
  });
});
