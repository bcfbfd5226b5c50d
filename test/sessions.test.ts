import { expect } from 'chai';
import jwt from 'jsonwebtoken';
import { Code, type ConnectSphereClient, fieldViolations } from '../src/client.js';
import type { TokenPair } from '../src/gen/connectsphere/auth/v1/auth.js';
import { expectCode, newAccount, startTestServer, type TestServer } from './helpers/server.js';

const tokensOf = (t: TokenPair | undefined): TokenPair => {
  if (!t) throw new Error('no tokens in the response');
  return t;
};

describe('sessions: refresh rotation, replay detection, logout, introspection, password change', () => {
  let s: TestServer;
  let c: ConnectSphereClient;
  before(async () => {
    s = await startTestServer();
    c = s.client;
  });
  after(async () => {
    await s?.stop();
  });

  const signUp = async () => {
    const acct = newAccount('sess');
    const reg = await c.auth.register(acct);
    return { acct, userId: reg.user?.id ?? '', tokens: tokensOf(reg.tokens) };
  };
  const active = async (accessToken: string) => (await c.auth.validateToken({ accessToken })).active;

  it('rotates: each refresh token works once and returns a new pair for the same session', async () => {
    const { tokens, userId } = await signUp();
    const r1 = tokensOf((await c.auth.refreshToken({ refreshToken: tokens.refreshToken })).tokens);
    expect(r1.refreshToken).to.not.equal(tokens.refreshToken);
    expect(r1.accessToken).to.not.equal(tokens.accessToken);
    expect(r1.tokenType).to.equal('Bearer');
    const sid = (t: string) => (jwt.decode(t) as { sid: string }).sid;
    expect(sid(r1.accessToken)).to.equal(sid(tokens.accessToken));
    const r2 = tokensOf((await c.auth.refreshToken({ refreshToken: r1.refreshToken })).tokens);
    expect(
      (await c.withToken(r2.accessToken).users.getUser({ lookup: { $case: 'id', value: userId } })).id,
    ).to.equal(userId);
    const stored = await s.sql(
      'SELECT count(*)::int AS n, count(used_at)::int AS used FROM refresh_tokens rt JOIN sessions se ON se.id = rt.session_id WHERE se.user_id = $1',
      [userId],
    );
    expect(stored[0]).to.deep.equal({ n: 3, used: 2 });
  });

  it('treats a used refresh token as a replay: the whole session ends, its newest tokens included', async () => {
    const { tokens } = await signUp();
    const r1 = tokensOf((await c.auth.refreshToken({ refreshToken: tokens.refreshToken })).tokens);
    const r2 = tokensOf((await c.auth.refreshToken({ refreshToken: r1.refreshToken })).tokens);
    expect(await active(r2.accessToken)).to.equal(true);
    await expectCode(
      c.auth.refreshToken({ refreshToken: tokens.refreshToken }),
      Code.UNAUTHENTICATED,
      /already used.*session has been ended/,
    );
    await expectCode(
      c.auth.refreshToken({ refreshToken: r2.refreshToken }),
      Code.UNAUTHENTICATED,
      /invalid or expired refresh token/,
    );
    expect(await active(r2.accessToken)).to.equal(false);
    expect(await active(r1.accessToken)).to.equal(false);
    await expectCode(
      c.withToken(r2.accessToken).users.getUser({ lookup: { $case: 'email', value: 'x@example.com' } }),
      Code.UNAUTHENTICATED,
    );
  });

  it('lets exactly one of concurrent refreshes of one token win (decided by the database)', async () => {
    for (let round = 0; round < 3; round++) {
      const { tokens } = await signUp();
      const results = await Promise.allSettled(
        Array.from({ length: 10 }, () => c.auth.refreshToken({ refreshToken: tokens.refreshToken })),
      );
      const won = results.filter((r) => r.status === 'fulfilled');
      expect(won, `round ${round}`).to.have.length(1);
      for (const r of results)
        if (r.status === 'rejected') expect(r.reason.code).to.equal(Code.UNAUTHENTICATED);
    }
  });

  it('rejects unknown, malformed and empty refresh tokens', async () => {
    await expectCode(
      c.auth.refreshToken({ refreshToken: 'A'.repeat(43) }),
      Code.UNAUTHENTICATED,
      /invalid or expired/,
    );
    await expectCode(c.auth.refreshToken({ refreshToken: 'not a token' }), Code.UNAUTHENTICATED);
    const { tokens } = await signUp();
    await expectCode(
      c.auth.refreshToken({ refreshToken: tokens.accessToken }),
      Code.UNAUTHENTICATED,
      /refresh token/,
    );
    const err = await expectCode(c.auth.refreshToken({ refreshToken: '' }), Code.INVALID_ARGUMENT);
    expect(fieldViolations(err)[0]?.field).to.equal('refresh_token');
  });

  it('rejects an expired refresh token', async () => {
    const { tokens, userId } = await signUp();
    await s.sql(
      `UPDATE refresh_tokens SET expires_at = now() - interval '1 second'
       WHERE session_id IN (SELECT id FROM sessions WHERE user_id = $1)`,
      [userId],
    );
    await expectCode(
      c.auth.refreshToken({ refreshToken: tokens.refreshToken }),
      Code.UNAUTHENTICATED,
      /invalid or expired/,
    );
  });

  it('logs out: the session ends at once for ValidateToken and bearer calls; a second logout is OK', async () => {
    const { tokens, acct } = await signUp();
    const other = tokensOf((await c.auth.login(acct)).tokens);
    expect(await active(tokens.accessToken)).to.equal(true);
    await c.auth.logout({ refreshToken: tokens.refreshToken });
    expect(await active(tokens.accessToken)).to.equal(false);
    // a logged-out token learns nothing, not even whether a user exists
    const ghost = '00000000-0000-4000-8000-000000000777';
    await expectCode(
      c.withToken(tokens.accessToken).users.getUser({ lookup: { $case: 'id', value: ghost } }),
      Code.UNAUTHENTICATED,
    );
    await expectCode(
      c.withToken(tokens.accessToken).users.batchGetUsers({ ids: [ghost] }),
      Code.UNAUTHENTICATED,
    );
    await expectCode(
      c.withToken(tokens.accessToken).users.getUser({ lookup: { $case: 'email', value: acct.email } }),
      Code.UNAUTHENTICATED,
    );
    await expectCode(c.auth.refreshToken({ refreshToken: tokens.refreshToken }), Code.UNAUTHENTICATED);
    await c.auth.logout({ refreshToken: tokens.refreshToken });
    await c.auth.logout({ refreshToken: 'B'.repeat(43) });
    expect(await active(other.accessToken), 'another login of the same user is untouched').to.equal(true);
    await expectCode(c.auth.logout({ refreshToken: '' }), Code.INVALID_ARGUMENT, /refresh_token/);
  });

  it('introspects an access token like RFC 7662', async () => {
    const { tokens, userId, acct } = await signUp();
    const res = await c.auth.validateToken({ accessToken: tokens.accessToken });
    const claims = jwt.decode(tokens.accessToken) as { sid: string; exp: number };
    expect(res).to.deep.include({
      active: true,
      tokenUse: 'user',
      userId,
      email: acct.email,
      roles: ['user'],
      sessionId: claims.sid,
      serviceAccount: '',
      scopes: [],
    });
    expect(res.expireTime?.getTime()).to.equal(claims.exp * 1000);
    for (const bad of [
      'garbage',
      `${tokens.accessToken}x`,
      tokens.refreshToken,
      `Bearer ${tokens.accessToken}`,
    ]) {
      const r = await c.auth.validateToken({ accessToken: bad });
      expect(r).to.deep.equal({
        active: false,
        userId: '',
        email: '',
        roles: [],
        sessionId: '',
        expireTime: undefined,
        tokenUse: '',
        serviceAccount: '',
        scopes: [],
      });
    }
    const expired = jwt.sign(
      { email: acct.email, roles: ['user'], sid: claims.sid, token_use: 'access' },
      'dev-only-insecure-secret-change-me',
      {
        keyid: (jwt.decode(tokens.accessToken, { complete: true })?.header.kid ?? '') as string,
        subject: userId,
        issuer: 'connectsphere-auth',
        audience: 'connectsphere',
        expiresIn: -1,
      },
    );
    expect(await active(expired)).to.equal(false);
    await expectCode(c.auth.validateToken({ accessToken: '' }), Code.INVALID_ARGUMENT, /access_token/);
  });

  it('changes the password: needs a bearer token and the right current password; ends every other session', async () => {
    const { tokens, acct } = await signUp();
    const other = tokensOf((await c.auth.login(acct)).tokens);
    const me = c.withToken(tokens.accessToken);
    const newPassword = 'a brand new passphrase';
    await expectCode(
      c.auth.changePassword({ currentPassword: acct.password, newPassword }),
      Code.UNAUTHENTICATED,
      /missing credentials/,
    );
    await expectCode(
      me.auth.changePassword({ currentPassword: 'wrong password', newPassword }),
      Code.UNAUTHENTICATED,
      /current_password is incorrect/,
    );
    const bad = await expectCode(
      me.auth.changePassword({ currentPassword: '', newPassword: 'short' }),
      Code.INVALID_ARGUMENT,
    );
    expect(fieldViolations(bad).map((v) => v.field)).to.have.members(['current_password', 'new_password']);

    const fresh = tokensOf(
      (await me.auth.changePassword({ currentPassword: acct.password, newPassword })).tokens,
    );
    expect(await active(fresh.accessToken)).to.equal(true);
    expect(await active(other.accessToken), 'other session ended').to.equal(false);
    expect(await active(tokens.accessToken), 'the old tokens of this session ended too').to.equal(false);
    await expectCode(c.auth.refreshToken({ refreshToken: other.refreshToken }), Code.UNAUTHENTICATED);
    await expectCode(c.auth.login(acct), Code.UNAUTHENTICATED);
    expect((await c.auth.login({ email: acct.email, password: newPassword })).user?.email).to.equal(
      acct.email,
    );
    expect((await c.auth.refreshToken({ refreshToken: fresh.refreshToken })).tokens?.accessToken).to.be.a(
      'string',
    );
  });
});

describe('refresh reuse grace window (REFRESH_REUSE_GRACE_SECONDS)', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer({ REFRESH_REUSE_GRACE_SECONDS: '30' });
  });
  after(async () => {
    await s?.stop();
  });

  it('answers the token just rotated away with a valid pair of the same session, keeping one live token', async () => {
    const reg = await s.client.auth.register(newAccount('grace'));
    const t0 = tokensOf(reg.tokens);
    const lost = tokensOf((await s.client.auth.refreshToken({ refreshToken: t0.refreshToken })).tokens); // response "lost"
    const retry = tokensOf((await s.client.auth.refreshToken({ refreshToken: t0.refreshToken })).tokens);
    const sid = (t: string) => (jwt.decode(t) as { sid: string }).sid;
    expect(sid(retry.accessToken)).to.equal(sid(t0.accessToken));
    expect(retry.refreshToken).to.not.equal(lost.refreshToken);
    const live = await s.sql(
      'SELECT count(*)::int AS n FROM refresh_tokens WHERE session_id = $1 AND used_at IS NULL',
      [sid(t0.accessToken)],
    );
    expect(live[0]?.n, 'one live refresh token per session').to.equal(1);
    // the lost pair's refresh token was superseded: presenting it now is a replay
    await expectCode(
      s.client.auth.refreshToken({ refreshToken: lost.refreshToken }),
      Code.UNAUTHENTICATED,
      /already used/,
    );
    expect((await s.client.auth.validateToken({ accessToken: retry.accessToken })).active).to.equal(false);
  });

  it('still treats reuse as a replay once the successor was used, or after the window', async () => {
    const reg = await s.client.auth.register(newAccount('grace'));
    const t0 = tokensOf(reg.tokens);
    const t1 = tokensOf((await s.client.auth.refreshToken({ refreshToken: t0.refreshToken })).tokens);
    const t2 = tokensOf((await s.client.auth.refreshToken({ refreshToken: t1.refreshToken })).tokens);
    await expectCode(
      s.client.auth.refreshToken({ refreshToken: t0.refreshToken }),
      Code.UNAUTHENTICATED,
      /already used/,
    );
    expect((await s.client.auth.validateToken({ accessToken: t2.accessToken })).active).to.equal(false);

    const other = tokensOf((await s.client.auth.register(newAccount('grace'))).tokens);
    await s.client.auth.refreshToken({ refreshToken: other.refreshToken });
    await s.sql(
      "UPDATE refresh_tokens SET used_at = now() - interval '31 seconds' WHERE used_at IS NOT NULL",
    );
    await expectCode(
      s.client.auth.refreshToken({ refreshToken: other.refreshToken }),
      Code.UNAUTHENTICATED,
      /already used/,
    );
  });
});
