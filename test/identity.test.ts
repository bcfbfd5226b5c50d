/**
 * Transport security and service identity, against the real server: TLS and mutual TLS with
 * certificates the test makes (openssl), certificate rotation on SIGHUP, the production refusal of a
 * plaintext port, service accounts end to end through the operator command, scopes, introspection
 * that needs a service identity, and tokens that other services verify with nothing but the JWK Set.
 */
import {
  createHmac,
  createPublicKey,
  generateKeyPairSync,
  verify as verifySignature,
  X509Certificate,
} from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { credentials } from '@grpc/grpc-js';
import { expect } from 'chai';
import jwt from 'jsonwebtoken';
import { Code, connect, type ServiceError } from '../src/client.js';
import type { User } from '../src/gen/connectsphere/user/v1/user.js';
import { HealthCheckResponse_ServingStatus as Serving } from '../src/gen/health/v1/health.js';
import { createTestCa, type TestCa } from './helpers/certs.js';
import { createTestDatabase } from './helpers/postgres.js';
import { runCli, runUntilExit, spawnServer } from './helpers/process.js';
import { ReflectionClient } from './helpers/reflection.js';
import { expectCode, healthOf, newAccount, startTestServer, type TestServer } from './helpers/server.js';
import { until } from './helpers/wait.js';

const codeOf = (p: Promise<unknown>) =>
  p.then(
    () => 'OK',
    (e: ServiceError) => Code[e.code] as string,
  );

/** The SHA-256 fingerprint of the certificate a TLS server on `port` presents to a new connection. */
function presentedCertificate(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect(
      { host: '127.0.0.1', port, ca: fs.readFileSync(ca), servername: 'localhost', ALPNProtocols: ['h2'] },
      () => {
        const fingerprint = socket.getPeerCertificate().fingerprint256;
        socket.end();
        resolve(fingerprint);
      },
    );
    socket.on('error', reject);
  });
}
const fingerprintOf = (certFile: string) => new X509Certificate(fs.readFileSync(certFile)).fingerprint256;

describe('transport security and service identity', function () {
  this.timeout(60_000);
  let ca: TestCa;
  let server: { cert: string; key: string };
  before(async () => {
    ca = await createTestCa();
    server = await ca.issue('server', { names: ['localhost', '127.0.0.1'] });
  });
  after(() => ca?.remove());

  describe('TLS on the gRPC port', () => {
    it('speaks TLS only: a TLS client with the CA works (RPCs, health, reflection); plaintext does not', async () => {
      const s = await startTestServer(
        { GRPC_TLS_CERT_FILE: server.cert, GRPC_TLS_KEY_FILE: server.key },
        { client: { tls: { ca: fs.readFileSync(ca.cert) } } },
      );
      try {
        const acct = newAccount('tls');
        expect((await s.client.auth.register(acct)).user?.email).to.equal(acct.email);
        const secure = credentials.createSsl(fs.readFileSync(ca.cert));
        expect((await healthOf(s.address, secure).check({ service: '' })).status).to.equal(Serving.SERVING);
        const reflection = new ReflectionClient(s.address, 'v1', secure);
        expect(await reflection.listServices()).to.include('connectsphere.auth.v1.AuthService');
        reflection.close();
        const plain = connect(s.address, { deadlineMs: 3000 });
        await expectCode(plain.auth.login(acct), Code.UNAVAILABLE);
        plain.close();
      } finally {
        await s.stop();
      }
    });

    it('replaces its certificate on SIGHUP: new connections get the new one, calls in flight finish', async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-rotate-'));
      const [certFile, keyFile] = [path.join(dir, 'tls.pem'), path.join(dir, 'tls.key')];
      fs.copyFileSync(server.cert, certFile);
      fs.copyFileSync(server.key, keyFile);
      const db = await createTestDatabase();
      const proc = await spawnServer({
        DATABASE_URL: db.url,
        GRPC_TLS_CERT_FILE: certFile,
        GRPC_TLS_KEY_FILE: keyFile,
      });
      try {
        expect(await presentedCertificate(proc.port, ca.cert)).to.equal(fingerprintOf(server.cert));
        const client = connect(`127.0.0.1:${proc.port}`, { tls: { ca: fs.readFileSync(ca.cert) } });
        const acct = newAccount('rotate');
        await client.auth.register(acct);
        const next = await ca.issue('server-next', { names: ['localhost', '127.0.0.1'] });
        fs.copyFileSync(next.cert, certFile);
        fs.copyFileSync(next.key, keyFile);
        proc.child.kill('SIGHUP');
        await proc.waitForLine(/TLS certificate reloaded/);
        expect(await presentedCertificate(proc.port, ca.cert), 'a new connection').to.equal(
          fingerprintOf(next.cert),
        );
        expect((await client.auth.login(acct)).user?.email, 'the open connection still works').to.equal(
          acct.email,
        );
        // a bad file on the next reload keeps the good certificate
        fs.writeFileSync(certFile, 'not a certificate');
        proc.child.kill('SIGHUP');
        await proc.waitForLine(/TLS reload failed/);
        expect(await presentedCertificate(proc.port, ca.cert)).to.equal(fingerprintOf(next.cert));
        client.close();
      } finally {
        proc.child.kill('SIGTERM');
        await proc.exited;
        await db.drop();
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    it('refuses to start in production on a non-loopback address without TLS, naming both ways out', async () => {
      const { code, output } = await runUntilExit({
        NODE_ENV: 'production',
        SECRET_KEY: 'a7Vq9#kL2$mN8@pR4&tW6*yZ1!bC3^dF5(gH0)jS',
        GRPC_HOST: '0.0.0.0',
      });
      expect(code).to.equal(2);
      expect(output).to.match(
        /GRPC_HOST: 0\.0\.0\.0 .*GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE, or GRPC_ALLOW_PLAINTEXT=true/,
      );
    });
  });

  describe('mutual TLS', () => {
    let s: TestServer;
    let billing: { cert: string; key: string };
    let stranger: { cert: string; key: string };
    let otherCa: TestCa;
    before(async () => {
      billing = await ca.issue('billing', { names: ['billing.service'], client: true });
      otherCa = await createTestCa('Some Other CA');
      stranger = await otherCa.issue('billing-forged', { names: ['billing.service'], client: true });
      s = await startTestServer(
        { GRPC_TLS_CERT_FILE: server.cert, GRPC_TLS_KEY_FILE: server.key, GRPC_TLS_CLIENT_CA_FILE: ca.cert },
        {
          client: {
            tls: {
              ca: fs.readFileSync(ca.cert),
              cert: fs.readFileSync(billing.cert),
              key: fs.readFileSync(billing.key),
            },
          },
        },
      );
      const made = await runCli(['service-account', 'create', 'billing', '--scopes', 'users.read'], {
        DATABASE_URL: s.db.url,
      });
      expect(made.code, made.output).to.equal(0);
    });
    after(async () => {
      await s?.stop();
      otherCa?.remove();
    });
    const mtls = (files?: { cert: string; key: string }) =>
      connect(s.address, {
        deadlineMs: 3000,
        tls: {
          ca: fs.readFileSync(ca.cert),
          ...(files ? { cert: fs.readFileSync(files.cert), key: fs.readFileSync(files.key) } : {}),
        },
      });

    it('authenticates a verified client certificate named <name>.service as that service account, without a token', async () => {
      const reg = await s.client.auth.register(newAccount('seen'));
      const viaCert = await s.client.users.getUser({ lookup: { $case: 'id', value: reg.user?.id ?? '' } });
      expect(viaCert.id).to.equal(reg.user?.id);
      expect(viaCert.email, 'users.read: the public profile').to.equal('');
      await expectCode(
        s.client.users.listUsers({ pageSize: 1, pageToken: '', query: 'seen' }),
        Code.PERMISSION_DENIED,
      );
    });

    it('with GRPC_TLS_CLIENT_AUTH=require, refuses a connection without a client certificate, or with one of another CA', async () => {
      const required = await startTestServer({
        GRPC_TLS_CERT_FILE: server.cert,
        GRPC_TLS_KEY_FILE: server.key,
        GRPC_TLS_CLIENT_CA_FILE: ca.cert,
        GRPC_TLS_CLIENT_AUTH: 'require',
      });
      try {
        for (const files of [undefined, stranger]) {
          const c = connect(required.address, {
            deadlineMs: 3000,
            tls: {
              ca: fs.readFileSync(ca.cert),
              ...(files ? { cert: fs.readFileSync(files.cert), key: fs.readFileSync(files.key) } : {}),
            },
          });
          await expectCode(
            c.auth.login({ email: 'a@example.com', password: 'whatever it is' }),
            Code.UNAVAILABLE,
          );
          c.close();
        }
      } finally {
        await required.stop();
      }
    });

    it('by default (GRPC_TLS_CLIENT_AUTH=optional) lets end users in without a certificate; they, and a certificate of another CA, then need a token', async () => {
      for (const files of [undefined, stranger]) {
        const c = mtls(files);
        const reg = await c.auth.register(newAccount('opt'));
        expect(reg.user?.id).to.be.a('string');
        await expectCode(
          c.users.getUser({ lookup: { $case: 'id', value: reg.user?.id ?? '' } }),
          Code.UNAUTHENTICATED,
          /missing credentials/,
        );
        c.close();
      }
    });

    it('matches a whole CN or DNS SAN only: a longer, shorter or suffixed name is no account', async () => {
      const reg = await s.client.auth.register(newAccount('whole'));
      const getUser = (c: ReturnType<typeof mtls>) =>
        c.users.getUser({ lookup: { $case: 'id', value: reg.user?.id ?? '' } });
      const viaCn = await ca.issue('billing-cn', { cn: 'billing.service', client: true });
      const c = mtls(viaCn);
      expect((await getUser(c)).id, 'the subject CN alone').to.equal(reg.user?.id);
      c.close();
      const lookalikes: [string, { names?: string[]; cn?: string }][] = [
        ['sub', { names: ['evil.billing.service'] }],
        ['suffixed', { names: ['billing.service.evil.example'] }],
        ['prefixed', { names: ['xbilling.service'] }],
        ['bare', { names: ['billing'] }],
        ['wildcard', { names: ['*.service'] }],
        ['cn-suffix', { cn: 'attacker.billing.service' }],
      ];
      for (const [label, names] of lookalikes) {
        const files = await ca.issue(`lookalike-${label}`, { ...names, client: true });
        const lookalike = mtls(files);
        await expectCode(getUser(lookalike), Code.UNAUTHENTICATED, /names no service account/);
        lookalike.close();
      }
    });

    it('refuses a certificate naming two accounts, or without the clientAuth extended key usage', async () => {
      const made = await runCli(
        ['service-account', 'create', 'crm', '--scopes', 'users.read', '--cert-name', 'crm.internal.example'],
        { DATABASE_URL: s.db.url },
      );
      expect(made.code, made.output).to.equal(0);
      const reg = await s.client.auth.register(newAccount('two'));
      const getUser = (files: { cert: string; key: string }) => {
        const c = mtls(files);
        return getUserOn(c).finally(() => c.close());
      };
      const getUserOn = (c: ReturnType<typeof mtls>) =>
        c.users.getUser({ lookup: { $case: 'id', value: reg.user?.id ?? '' } });
      const crm = await ca.issue('crm', { names: ['crm.internal.example'], client: true });
      expect((await getUser(crm)).id, 'its --cert-name').to.equal(reg.user?.id);
      const both = await ca.issue('billing-and-crm', {
        names: ['billing.service', 'crm.internal.example'],
        client: true,
      });
      await expectCode(getUser(both), Code.UNAUTHENTICATED, /more than one service account/);
      const cnAndSan = await ca.issue('cn-and-san', {
        cn: 'billing.service',
        names: ['crm.service'],
        client: true,
      });
      await expectCode(getUser(cnAndSan), Code.UNAUTHENTICATED, /more than one service account/);
      const noUsage = await ca.issue('billing-no-eku', {
        names: ['billing.service'],
        extendedKeyUsage: null,
      });
      await expectCode(getUser(noUsage), Code.UNAUTHENTICATED, /clientAuth/);
      // a server certificate is not a client one (TLS itself does not verify it as a client's)
      const serverOnly = await ca.issue('billing-server-eku', { names: ['billing.service'] });
      await expectCode(getUser(serverOnly), Code.UNAUTHENTICATED);
    });
  });

  describe('service accounts', () => {
    let s: TestServer;
    const cli = (args: string[]) => runCli(['service-account', ...args], { DATABASE_URL: s.db.url });
    const create = async (name: string, scopes: string) => {
      const r = await cli(['create', name, '--scopes', scopes]);
      expect(r.code, r.output).to.equal(0);
      return JSON.parse(r.output.slice(r.output.indexOf('{'), r.output.lastIndexOf('}') + 1)) as {
        client_id: string;
        client_secret: string;
        scopes: string[];
      };
    };
    before(async () => {
      s = await startTestServer({ INTROSPECTION_AUTH: 'required', LOGIN_MAX_FAILURES: '3' });
    });
    after(async () => {
      await s?.stop();
    });

    it('creates an account once, stores only a hash of its secret, and lists it without the secret', async () => {
      const made = await create('directory', 'users.read,users.read.private');
      expect(made.client_id).to.match(/^svc_[0-9a-f]{32}$/);
      expect(Buffer.from(made.client_secret, 'base64url')).to.have.length(32);
      const [row] = await s.sql('SELECT secret_hash FROM service_accounts WHERE client_id = $1', [
        made.client_id,
      ]);
      expect(row?.secret_hash, 'a SHA-256, in hex').to.have.length(64).and.not.include(made.client_secret);
      const listed = await cli(['list']);
      expect(listed.output)
        .to.include('directory')
        .and.include(made.client_id)
        .and.not.include(made.client_secret);
      expect(
        (await cli(['create', 'directory', '--scopes', 'users.read'])).code,
        'a second with the name',
      ).to.equal(1);
      expect((await cli(['create', 'bad', '--scopes', 'users.write'])).output).to.match(/unknown scope/);
      expect((await cli(['create'])).code).to.equal(64);
    });

    it('issues a short-lived token for client credentials; users.read sees public profiles, users.read.private everything', async () => {
      const pub = await create('profiles', 'users.read');
      const priv = await create('crm', 'users.read.private');
      const acct = newAccount('target');
      const reg = await s.client.auth.register(acct);
      const issued = await s.client.auth.issueServiceToken({
        clientId: pub.client_id,
        clientSecret: pub.client_secret,
      });
      expect(issued).to.deep.include({ tokenType: 'Bearer', expiresIn: 15 * 60, scopes: ['users.read'] });
      const asPublic = s.client.withToken(issued.accessToken);
      const id = { lookup: { $case: 'id' as const, value: reg.user?.id ?? '' } };
      expect((await asPublic.users.getUser(id)).email).to.equal('');
      await expectCode(
        asPublic.users.getUser({ lookup: { $case: 'email', value: acct.email } }),
        Code.PERMISSION_DENIED,
        /users\.read\.private/,
      );
      expect((await asPublic.users.batchGetUsers({ ids: [reg.user?.id ?? ''] })).users[0]?.email).to.equal(
        '',
      );
      const asPrivate = connect(s.address, {
        service: { clientId: priv.client_id, clientSecret: priv.client_secret },
      });
      expect((await asPrivate.users.getUser(id)).email).to.equal(acct.email);
      expect((await asPrivate.users.getUser({ lookup: { $case: 'email', value: acct.email } })).id).to.equal(
        reg.user?.id,
      );
      asPrivate.close();
    });

    it('never lets a service token act as a user: PERMISSION_DENIED on user-only RPCs', async () => {
      const svc = await create('nosy', 'users.read,users.read.private,tokens.introspect');
      const token = (
        await s.client.auth.issueServiceToken({ clientId: svc.client_id, clientSecret: svc.client_secret })
      ).accessToken;
      const c = s.client.withToken(token);
      const reg = await s.client.auth.register(newAccount('victim'));
      const user = reg.user ?? { id: '' };
      const calls: [string, Promise<unknown>][] = [
        [
          'ChangePassword',
          c.auth.changePassword({ currentPassword: 'x', newPassword: 'orbit lantern quietly' }),
        ],
        ['ListSessions', c.auth.listSessions({})],
        ['RevokeSession', c.auth.revokeSession({ sessionId: user.id })],
        [
          'UpdateUser',
          c.users.updateUser({
            user: { ...(reg.user as User), displayName: 'pwned' },
            currentPassword: '',
            updateMask: ['display_name'],
          }),
        ],
        ['DeleteUser', c.users.deleteUser({ id: user.id })],
        ['ListUsers', c.users.listUsers({ pageSize: 10, pageToken: '', query: '' })],
      ];
      for (const [name, call] of calls) expect(await codeOf(call), name).to.equal('PERMISSION_DENIED');
    });

    it('answers ValidateToken (INTROSPECTION_AUTH=required) only to a service identity with tokens.introspect, saying token_use', async () => {
      const reader = await create('reader', 'users.read');
      const gateway = await create('gateway', 'tokens.introspect');
      const reg = await s.client.auth.register(newAccount('intro'));
      const userToken = reg.tokens?.accessToken ?? '';
      const ask = (token?: string) =>
        (token ? s.client.withToken(token) : s.client).auth.validateToken({ accessToken: userToken });
      await expectCode(ask(), Code.UNAUTHENTICATED, /tokens\.introspect/);
      await expectCode(ask(userToken), Code.UNAUTHENTICATED);
      const readerToken = (
        await s.client.auth.issueServiceToken({
          clientId: reader.client_id,
          clientSecret: reader.client_secret,
        })
      ).accessToken;
      await expectCode(ask(readerToken), Code.UNAUTHENTICATED);
      const gw = connect(s.address, {
        service: { clientId: gateway.client_id, clientSecret: gateway.client_secret },
      });
      expect(await gw.auth.validateToken({ accessToken: userToken })).to.deep.include({
        active: true,
        tokenUse: 'user',
        userId: reg.user?.id,
      });
      expect(await gw.auth.validateToken({ accessToken: readerToken })).to.deep.include({
        active: true,
        tokenUse: 'service',
        serviceAccount: 'reader',
        scopes: ['users.read'],
      });
      gw.close();
    });

    it('rotates a secret (the previous one works for SERVICE_SECRET_OVERLAP_S), and a deleted account’s tokens stop at once', async () => {
      const first = await create('rotator', 'users.read');
      const rotated = await cli(['rotate', 'rotator']);
      expect(rotated.code, rotated.output).to.equal(0);
      const second = JSON.parse(
        rotated.output.slice(rotated.output.indexOf('{'), rotated.output.lastIndexOf('}') + 1),
      ) as typeof first;
      expect(second.client_id).to.equal(first.client_id);
      expect(second.client_secret).to.not.equal(first.client_secret);
      const issue = (secret: string) =>
        s.client.auth.issueServiceToken({ clientId: first.client_id, clientSecret: secret });
      expect(await codeOf(issue(first.client_secret)), 'within the overlap').to.equal('OK');
      await s.sql(
        "UPDATE service_accounts SET previous_secret_expires_at = now() - interval '1 s' WHERE name = 'rotator'",
      );
      await expectCode(issue(first.client_secret), Code.UNAUTHENTICATED, /invalid client credentials/);
      const token = (await issue(second.client_secret)).accessToken;
      const reg = await s.client.auth.register(newAccount('deleted'));
      const asService = s.client.withToken(token);
      expect(
        await codeOf(asService.users.getUser({ lookup: { $case: 'id', value: reg.user?.id ?? '' } })),
      ).to.equal('OK');
      expect((await cli(['delete', 'rotator'])).code).to.equal(0);
      await expectCode(
        asService.users.getUser({ lookup: { $case: 'id', value: reg.user?.id ?? '' } }),
        Code.UNAUTHENTICATED,
      );
      await expectCode(issue(second.client_secret), Code.UNAUTHENTICATED);
    });

    it('revoke-secret ends the previous secret at once, even one still in its rotation overlap', async () => {
      const first = await create('leaky', 'users.read');
      const json = (output: string) =>
        JSON.parse(output.slice(output.indexOf('{'), output.lastIndexOf('}') + 1)) as typeof first;
      const rotated = await cli(['rotate', 'leaky']);
      const second = json(rotated.output);
      const issue = (secret: string) =>
        s.client.auth.issueServiceToken({ clientId: first.client_id, clientSecret: secret });
      expect(await codeOf(issue(first.client_secret)), 'in the overlap').to.equal('OK');
      const revoked = await cli(['revoke-secret', 'leaky']);
      expect(revoked.code, revoked.output).to.equal(0);
      const third = json(revoked.output);
      expect(third.client_id).to.equal(first.client_id);
      await expectCode(issue(first.client_secret), Code.UNAUTHENTICATED, /^invalid client credentials$/);
      await expectCode(issue(second.client_secret), Code.UNAUTHENTICATED, /^invalid client credentials$/);
      expect(await codeOf(issue(third.client_secret))).to.equal('OK');
      expect((await cli(['revoke-secret', 'nobody'])).code, 'no such account').to.not.equal(0);
    });

    it('revoke-tokens ends every token already issued to the account at once (RPCs and ValidateToken); new ones work', async () => {
      const svc = await create('compromised', 'users.read');
      const gateway = await create('gateway-2', 'tokens.introspect');
      const gw = connect(s.address, {
        service: { clientId: gateway.client_id, clientSecret: gateway.client_secret },
      });
      const issue = async () =>
        (await s.client.auth.issueServiceToken({ clientId: svc.client_id, clientSecret: svc.client_secret }))
          .accessToken;
      const reg = await s.client.auth.register(newAccount('revtok'));
      const getUser = (token: string) =>
        codeOf(
          s.client.withToken(token).users.getUser({ lookup: { $case: 'id', value: reg.user?.id ?? '' } }),
        );
      const active = async (token: string) => (await gw.auth.validateToken({ accessToken: token })).active;
      const old = await issue();
      expect(await getUser(old), 'before (and now in the read cache)').to.equal('OK');
      expect(await active(old)).to.equal(true);
      const revoked = await cli(['revoke-tokens', 'compromised']);
      expect(revoked.code, revoked.output).to.equal(0);
      // the operator command is another process: the server hears of it by the cache notice
      await until('the old token refused', async () => (await getUser(old)) === 'UNAUTHENTICATED', 10_000);
      expect(await active(old), 'ValidateToken').to.equal(false);
      const fresh = await issue();
      expect(await getUser(fresh), 'a token issued afterwards').to.equal('OK');
      expect(await active(fresh)).to.equal(true);
      expect(await getUser(old), 'still refused').to.equal('UNAUTHENTICATED');
      gw.close();
    });

    it('throttles wrong client secrets per client id and address like Logins', async () => {
      const svc = await create('throttled', 'users.read');
      const wrong = () =>
        s.client.auth.issueServiceToken({ clientId: svc.client_id, clientSecret: 'not the secret at all' });
      for (let i = 0; i < 3; i++)
        await expectCode(wrong(), Code.UNAUTHENTICATED, /^invalid client credentials$/);
      await expectCode(
        s.client.auth.issueServiceToken({ clientId: svc.client_id, clientSecret: svc.client_secret }),
        Code.RESOURCE_EXHAUSTED,
        /too many failed attempts/,
      );
      await expectCode(
        s.client.auth.issueServiceToken({ clientId: 'svc_nope', clientSecret: 'x' }),
        Code.UNAUTHENTICATED,
      );
    });
  });

  describe('keys other services verify locally (JWKS)', () => {
    const keyFiles = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-jwt-'));
    const pemPair = (name: string, type: 'ec' | 'ed25519') => {
      const { privateKey, publicKey } =
        type === 'ec' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('ed25519');
      const priv = path.join(keyFiles, `${name}.key`);
      const pub = path.join(keyFiles, `${name}.pub`);
      fs.writeFileSync(priv, privateKey.export({ type: 'pkcs8', format: 'pem' }));
      fs.writeFileSync(pub, publicKey.export({ type: 'spki', format: 'pem' }));
      return { priv, pub };
    };
    after(() => fs.rmSync(keyFiles, { recursive: true, force: true }));
    const SECRET = { SECRET_KEY: 'same-secret-key-for-both-servers-0123456789' };

    /** Verifies a token with nothing but the JWK Set, with jsonwebtoken (ES256) or node:crypto (EdDSA). */
    const verifyWithJwks = (token: string, jwks: { keys: { kid: string; alg: string }[] }) => {
      const { header, payload, signature } = jwt.decode(token, { complete: true }) as jwt.Jwt;
      const jwk = jwks.keys.find((k) => k.kid === header.kid);
      if (!jwk) throw new Error(`no key ${header.kid} in the JWK Set`);
      const key = createPublicKey({ key: jwk as never, format: 'jwk' });
      if (jwk.alg === 'ES256')
        return jwt.verify(token, key, {
          algorithms: ['ES256'],
          issuer: 'connectsphere-auth',
          audience: 'connectsphere',
        });
      const [h, p] = token.split('.');
      if (!verifySignature(null, Buffer.from(`${h}.${p}`), key, Buffer.from(signature, 'base64url')))
        throw new Error('bad EdDSA signature');
      return payload;
    };

    for (const [alg, type] of [
      ['ES256', 'ec'],
      ['EdDSA', 'ed25519'],
    ] as const) {
      it(`signs ${alg} tokens that verify with nothing but GetJwks' keys`, async () => {
        const key = pemPair(`k-${alg}`, type);
        const s = await startTestServer({ ...SECRET, JWT_ALGORITHM: alg, JWT_PRIVATE_KEY_FILE: key.priv });
        try {
          const reg = await s.client.auth.register(newAccount('jwks'));
          const jwks = await s.client.auth.getJwks({});
          expect(jwks.keys).to.have.length(1);
          expect(jwks.keys[0]).to.include({ alg, use: 'sig', kty: alg === 'ES256' ? 'EC' : 'OKP' });
          const claims = verifyWithJwks(reg.tokens?.accessToken ?? '', jwks) as { sub: string };
          expect(claims.sub).to.equal(reg.user?.id);
        } finally {
          await s.stop();
        }
      });
    }

    it('keeps tokens of the previous key valid through a rotation, keeps page tokens, and refuses algorithm confusion', async () => {
      const oldKey = pemPair('old', 'ec');
      const newKey = pemPair('new', 'ec');
      const first = await startTestServer({
        ...SECRET,
        JWT_ALGORITHM: 'ES256',
        JWT_PRIVATE_KEY_FILE: oldKey.priv,
      });
      const acct = newAccount('rot');
      const reg = await first.client.auth.register(acct);
      const oldToken = reg.tokens?.accessToken ?? '';
      await first.sql("UPDATE users SET roles = '{admin,user}' WHERE id = $1", [reg.user?.id]);
      await first.client.auth.register(newAccount('rot'));
      const page = await first.client
        .withToken(oldToken)
        .users.listUsers({ pageSize: 1, pageToken: '', query: '' });
      await first.stop({ keepDatabase: true });
      const second = await startTestServer(
        {
          ...SECRET,
          JWT_ALGORITHM: 'ES256',
          JWT_PRIVATE_KEY_FILE: newKey.priv,
          JWT_PREVIOUS_PUBLIC_KEY_FILES: `${oldKey.pub}@${new Date().toISOString()}`,
        },
        { database: first.db },
      );
      try {
        const me = second.client.withToken(oldToken);
        expect(
          (await me.users.getUser({ lookup: { $case: 'id', value: reg.user?.id ?? '' } })).id,
          'the old key still verifies',
        ).to.equal(reg.user?.id);
        expect(
          (await me.users.listUsers({ pageSize: 1, pageToken: page.nextPageToken, query: '' })).users,
          'page tokens survive',
        ).to.have.length(1);
        const jwks = await second.client.auth.getJwks({});
        expect(jwks.keys.map((k) => k.kid)).to.have.length(2);
        const fresh = (await second.client.auth.login(acct)).tokens?.accessToken ?? '';
        expect(jwt.decode(fresh, { complete: true })?.header.kid).to.equal(jwks.keys[0]?.kid);
        expect(verifyWithJwks(oldToken, jwks), 'the JWK Set verifies both').to.be.an('object');

        // algorithm confusion: the public key (PEM) as an HMAC secret, with its own kid
        const { header, payload } = jwt.decode(fresh, { complete: true }) as jwt.Jwt;
        const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
        const confused = (alg: string, sign: (input: string) => string) => {
          const input = `${b64({ ...header, alg })}.${b64(payload as object)}`;
          return `${input}.${sign(input)}`;
        };
        const pem = fs.readFileSync(newKey.pub, 'utf8');
        const hs = confused('HS256', (input) => createHmac('sha256', pem).update(input).digest('base64url'));
        const none = confused('none', () => '');
        const es384 = confused('ES384', () => fresh.split('.')[2] as string);
        for (const [what, token] of [
          ['HS256 with the public key as secret', hs],
          ['alg none', none],
          ['another algorithm than the key’s', es384],
        ]) {
          await expectCode(
            second.client
              .withToken(token as string)
              .users.getUser({ lookup: { $case: 'id', value: reg.user?.id ?? '' } }),
            Code.UNAUTHENTICATED,
            undefined,
          );
          expect(
            (await second.client.auth.validateToken({ accessToken: token as string })).active,
            what as string,
          ).to.equal(false);
        }
      } finally {
        await second.stop();
      }
    });

    it('serves an empty JWK Set with HS256, whose key is secret', async () => {
      const s = await startTestServer();
      try {
        expect((await s.client.auth.getJwks({})).keys).to.deep.equal([]);
      } finally {
        await s.stop();
      }
    });
  });

  describe('the typed client with service credentials', () => {
    it('fetches a service token over TLS and sends it', async () => {
      const s = await startTestServer(
        { GRPC_TLS_CERT_FILE: server.cert, GRPC_TLS_KEY_FILE: server.key },
        { client: { tls: { ca: fs.readFileSync(ca.cert) } } },
      );
      try {
        const made = await runCli(['service-account', 'create', 'client-test', '--scopes', 'users.read'], {
          DATABASE_URL: s.db.url,
        });
        const creds = JSON.parse(
          made.output.slice(made.output.indexOf('{'), made.output.lastIndexOf('}') + 1),
        ) as { client_id: string; client_secret: string };
        const reg = await s.client.auth.register(newAccount('cli'));
        const svc = connect(s.address, {
          tls: { ca: fs.readFileSync(ca.cert) },
          service: { clientId: creds.client_id, clientSecret: creds.client_secret },
        });
        for (let i = 0; i < 3; i++)
          expect(
            (await svc.users.getUser({ lookup: { $case: 'id', value: reg.user?.id ?? '' } })).id,
          ).to.equal(reg.user?.id);
        const issued = s.logs.filter(
          (l) => l.includes('AuthService/IssueServiceToken') && l.includes('"msg":"rpc"'),
        );
        expect(issued, 'one token fetched for the three calls').to.have.length(1);
        svc.close();
      } finally {
        await s.stop();
      }
    });
  });
});
