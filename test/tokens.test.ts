import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Metadata } from '@grpc/grpc-js';
import { expect } from 'chai';
import jwt from 'jsonwebtoken';
import { Code } from '../src/client.js';
import { DEV_SECRET_KEY } from '../src/config.js';
import { runCli } from './helpers/process.js';
import { expectCode, newAccount, startTestServer, type TestServer } from './helpers/server.js';

const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');

describe('bearer authentication on UserService', () => {
  let s: TestServer;
  let userId: string;
  let email: string;
  let sessionId: string;
  let good: string;
  let kid: string;
  const claims = () => ({ email, roles: ['user'], sid: sessionId, token_use: 'access' });
  const sign = (
    overrides: jwt.SignOptions = {},
    secret: jwt.Secret = DEV_SECRET_KEY,
    payload: object = claims(),
  ) =>
    jwt.sign(payload, secret, {
      algorithm: 'HS256',
      keyid: kid,
      subject: userId,
      issuer: 'connectsphere-auth',
      audience: 'connectsphere',
      expiresIn: 60,
      ...overrides,
    });
  const getWith = (token: string | undefined, metadata?: Metadata) =>
    s.client.users.getUser({ lookup: { $case: 'email', value: email } }, { token, metadata });

  before(async () => {
    s = await startTestServer();
    const acct = newAccount('tok');
    const reg = await s.client.auth.register(acct);
    userId = reg.user?.id ?? '';
    email = acct.email;
    good = reg.tokens?.accessToken ?? '';
    sessionId = (jwt.decode(good) as { sid: string }).sid;
    kid = jwt.decode(good, { complete: true })?.header.kid as string;
  });
  after(async () => {
    await s?.stop();
  });

  it('accepts the issued token, whose claims carry sub, email, roles, sid, jti, iat, exp, iss and aud', async () => {
    expect((await getWith(good)).id).to.equal(userId);
    const decoded = jwt.decode(good, { complete: true });
    expect(decoded?.header.alg).to.equal('HS256');
    expect(decoded?.header.kid, 'the key id').to.be.a('string').with.length.greaterThan(10);
    expect(decoded?.payload).to.include({
      sub: userId,
      email,
      iss: 'connectsphere-auth',
      aud: 'connectsphere',
    });
    expect(decoded?.payload).to.have.keys(
      'sub',
      'email',
      'roles',
      'sid',
      'jti',
      'iat',
      'exp',
      'iss',
      'aud',
      'token_use',
    );
    expect((await getWith(sign())).id, 'a token signed the same way by the test').to.equal(userId);
  });

  it('rejects a call without metadata, or with a malformed authorization header', async () => {
    await expectCode(getWith(undefined), Code.UNAUTHENTICATED, /missing credentials/);
    const basic = new Metadata();
    basic.set('authorization', 'Basic dXNlcjpwYXNz');
    await expectCode(getWith(undefined, basic), Code.UNAUTHENTICATED, /malformed authorization/);
    const empty = new Metadata();
    empty.set('authorization', 'Token abc.def.ghi');
    await expectCode(getWith(undefined, empty), Code.UNAUTHENTICATED, /malformed authorization/);
  });

  const rejected: [string, () => string][] = [
    ['expired', () => sign({ expiresIn: -10 })],
    ['not yet valid', () => sign({ notBefore: 600 })],
    ['signed with another key', () => sign({}, 'another-secret-key-another-secret-key')],
    [
      'without a kid',
      () =>
        jwt.sign(claims(), DEV_SECRET_KEY, {
          algorithm: 'HS256',
          subject: userId,
          issuer: 'connectsphere-auth',
          audience: 'connectsphere',
          expiresIn: 60,
        }),
    ],
    ['naming an unknown kid', () => sign({ keyid: 'not-a-key-of-ours' })],
    ['from another issuer', () => sign({ issuer: 'evil' })],
    ['for another audience', () => sign({ audience: 'other-service' })],
    [
      'with alg none',
      () =>
        `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ ...claims(), sub: userId, iss: 'connectsphere-auth', aud: 'connectsphere', exp: Math.floor(Date.now() / 1000) + 60 })}.`,
    ],
    ['signed HS512 with the right key', () => sign({ algorithm: 'HS512' })],
    [
      'RS256 (HS/RS confusion)',
      () => {
        const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
        return sign({ algorithm: 'RS256' }, privateKey);
      },
    ],
    ['truncated', () => good.slice(0, -5)],
    [
      'with a tampered payload',
      () => {
        const [h, , sig] = good.split('.');
        return `${h}.${b64({ ...claims(), sub: userId, roles: ['admin'], iss: 'connectsphere-auth', aud: 'connectsphere', exp: 9_999_999_999 })}.${sig}`;
      },
    ],
    ['without a session id', () => sign({}, DEV_SECRET_KEY, { email, roles: ['user'], token_use: 'access' })],
    [
      'for a session that does not exist',
      () => sign({}, DEV_SECRET_KEY, { ...claims(), sid: '00000000-0000-4000-8000-000000000000' }),
    ],
    ['not a JWT at all', () => 'hello'],
    // lifetimes (exp - iat) beyond ACCESS_TOKEN_EXPIRE_MINUTES (30) and the 60 s clock skew
    ['living 32 minutes', () => sign({ expiresIn: 32 * 60 })],
    [
      'expiring in 2100',
      () => sign({ expiresIn: Math.floor(Date.UTC(2100, 0, 1) / 1000 - Date.now() / 1000) }),
    ],
    [
      'issued in the future',
      () => {
        const iat = Math.floor(Date.now() / 1000) + 600;
        return jwt.sign({ ...claims(), iat, exp: iat + 60 }, DEV_SECRET_KEY, {
          algorithm: 'HS256',
          keyid: kid,
          subject: userId,
          issuer: 'connectsphere-auth',
          audience: 'connectsphere',
        });
      },
    ],
  ];
  for (const [name, make] of rejected) {
    it(`rejects a token ${name} with UNAUTHENTICATED`, async () => {
      const err = await expectCode(getWith(make()), Code.UNAUTHENTICATED, /invalid or expired access token/);
      expect(err.details).to.not.match(/jwt|signature|stack|select/i);
    });
  }

  it('accepts a token living exactly ACCESS_TOKEN_EXPIRE_MINUTES, and checks a service token against SERVICE_TOKEN_EXPIRE_MINUTES', async () => {
    expect((await getWith(sign({ expiresIn: 30 * 60 }))).id).to.equal(userId);
    const made = await runCli(['service-account', 'create', 'lifetimes', '--scopes', 'users.read'], {
      DATABASE_URL: s.db.url,
    });
    expect(made.code, made.output).to.equal(0);
    const [account] = await s.sql("SELECT id FROM service_accounts WHERE name = 'lifetimes'");
    const service = (minutes: number) =>
      s.client.users.getUser(
        { lookup: { $case: 'id', value: userId } },
        {
          token: jwt.sign({ scope: 'users.read', svc: 'lifetimes', token_use: 'service' }, DEV_SECRET_KEY, {
            algorithm: 'HS256',
            keyid: kid,
            subject: account?.id as string,
            issuer: 'connectsphere-auth',
            audience: 'connectsphere',
            expiresIn: minutes * 60,
          }),
        },
      );
    expect((await service(15)).id, 'SERVICE_TOKEN_EXPIRE_MINUTES (15)').to.equal(userId);
    await expectCode(service(30), Code.UNAUTHENTICATED, /invalid or expired access token/);
  });

  it('rejects a refresh token used as an access token', async () => {
    const reg = await s.client.auth.register(newAccount());
    await expectCode(getWith(reg.tokens?.refreshToken), Code.UNAUTHENTICATED);
  });
});

describe('tokens of a retired signing key (JWT_PREVIOUS_PUBLIC_KEY_FILES=<file>@<retirement>)', () => {
  let s: TestServer;
  let dir: string;
  let oldPrivate: KeyObject;
  let newPrivate: KeyObject;
  let oldKid: string;
  let newKid: string;
  let user: { id: string; email: string; sid: string };
  const now = () => Math.floor(Date.now() / 1000);
  let retiredAt: number;
  const forge = (key: KeyObject, keyid: string, iat: number, exp: number) =>
    jwt.sign(
      { email: user.email, roles: ['user'], sid: user.sid, token_use: 'access', iat, exp },
      key.export({ type: 'pkcs8', format: 'pem' }) as string,
      {
        algorithm: 'ES256',
        keyid,
        subject: user.id,
        issuer: 'connectsphere-auth',
        audience: 'connectsphere',
      },
    );
  const outcome = async (token: string) => {
    const active = (await s.client.auth.validateToken({ accessToken: token })).active;
    const call = await s.client.users.getUser({ lookup: { $case: 'id', value: user.id } }, { token }).then(
      () => 'OK',
      (e: { code: number }) => Code[e.code],
    );
    return { active, call };
  };

  before(async () => {
    retiredAt = now() - 600;
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-retired-'));
    const pair = () => generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const [old, current] = [pair(), pair()];
    oldPrivate = old.privateKey;
    newPrivate = current.privateKey;
    fs.writeFileSync(path.join(dir, 'old.pub'), old.publicKey.export({ type: 'spki', format: 'pem' }));
    fs.writeFileSync(path.join(dir, 'new.key'), current.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    s = await startTestServer({
      JWT_ALGORITHM: 'ES256',
      JWT_PRIVATE_KEY_FILE: path.join(dir, 'new.key'),
      JWT_PREVIOUS_PUBLIC_KEY_FILES: `${path.join(dir, 'old.pub')}@${new Date(retiredAt * 1000).toISOString()}`,
    });
    const acct = newAccount('retired');
    const reg = await s.client.auth.register(acct);
    const token = reg.tokens?.accessToken ?? '';
    newKid = jwt.decode(token, { complete: true })?.header.kid as string;
    oldKid = (await s.client.auth.getJwks({})).keys.map((k) => k.kid).find((k) => k !== newKid) as string;
    user = { id: reg.user?.id ?? '', email: acct.email, sid: (jwt.decode(token) as { sid: string }).sid };
  });
  after(async () => {
    await s?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('accepts a token the old key signed before its retirement, within its lifetime', async () => {
    const iat = retiredAt - 300;
    expect(await outcome(forge(oldPrivate, oldKid, iat, iat + 30 * 60))).to.deep.equal({
      active: true,
      call: 'OK',
    });
  });

  it('refuses one it signed before its retirement but expiring in 2100', async () => {
    const token = forge(oldPrivate, oldKid, retiredAt - 300, Math.floor(Date.UTC(2100, 0, 1) / 1000));
    expect(await outcome(token)).to.deep.equal({ active: false, call: 'UNAUTHENTICATED' });
  });

  it('refuses one it signed after its retirement, which the current key may still sign', async () => {
    const iat = now() - 60;
    expect(await outcome(forge(oldPrivate, oldKid, iat, iat + 600))).to.deep.equal({
      active: false,
      call: 'UNAUTHENTICATED',
    });
    expect(await outcome(forge(newPrivate, newKid, iat, iat + 600))).to.deep.equal({
      active: true,
      call: 'OK',
    });
  });
});
