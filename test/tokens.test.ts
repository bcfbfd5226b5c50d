import { generateKeyPairSync } from 'node:crypto';
import { Metadata } from '@grpc/grpc-js';
import { expect } from 'chai';
import jwt from 'jsonwebtoken';
import { Code } from '../src/client.js';
import { DEV_SECRET_KEY } from '../src/config.js';
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
  ];
  for (const [name, make] of rejected) {
    it(`rejects a token ${name} with UNAUTHENTICATED`, async () => {
      const err = await expectCode(getWith(make()), Code.UNAUTHENTICATED, /invalid or expired access token/);
      expect(err.details).to.not.match(/jwt|signature|stack|select/i);
    });
  }

  it('rejects a refresh token used as an access token', async () => {
    const reg = await s.client.auth.register(newAccount());
    await expectCode(getWith(reg.tokens?.refreshToken), Code.UNAUTHENTICATED);
  });
});
