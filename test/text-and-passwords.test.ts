/**
 * Issue 16, "Text and passwords", through Register on the real server and PostgreSQL: random
 * passwords pass, guessable and personal ones are refused; look-alike domains, mixed-script words,
 * invisible names and stacked combining marks are refused, international names and IDNs are kept.
 * Each Register comes from its own documentation address (x-forwarded-for through TRUSTED_PROXIES),
 * so no per-address limit is in play.
 */
import { randomInt } from 'node:crypto';
import { Metadata } from '@grpc/grpc-js';
import { expect } from 'chai';
import { Code, fieldViolations } from '../src/client.js';
import { expectCode, newAccount, startTestServer, type TestServer } from './helpers/server.js';

let address = 0;
const nextAddress = () => {
  address++;
  const metadata = new Metadata();
  metadata.set('x-forwarded-for', `${address % 2 ? '198.51.100' : '203.0.113'}.${(address % 250) + 1}`);
  return { metadata };
};
const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const randomPassword = () => Array.from({ length: 8 }, () => ALNUM[randomInt(ALNUM.length)]).join('');

describe('text and passwords (Register)', function () {
  this.timeout(60_000);
  let s: TestServer;
  before(async () => {
    s = await startTestServer({ TRUSTED_PROXIES: '127.0.0.1' });
  });
  after(async () => {
    await s?.stop();
  });
  const register = (over: Partial<{ email: string; password: string; displayName: string }>) =>
    s.client.auth.register({ ...newAccount('text'), ...over }, nextAddress());
  const refusedField = async (over: Parameters<typeof register>[0], field: string, message: RegExp) => {
    const err = await expectCode(register(over), Code.INVALID_ARGUMENT, message);
    expect(
      fieldViolations(err).map((v) => v.field),
      JSON.stringify(over),
    ).to.deep.equal([field]);
    return err;
  };

  it('accepts random 8-character letters-and-digits passwords', async () => {
    for (let i = 0; i < 10; i++) {
      const password = randomPassword();
      const reg = await register({ password }).catch((e: Error) => e);
      expect(reg, password).to.not.be.instanceOf(Error);
    }
  });

  it('refuses common, breached and keyboard passwords, and the email or name with digits, without echoing them', async () => {
    const tag = `${Date.now().toString(36)}${randomInt(1000)}`;
    const email = `ada.lovelace${tag}@example.com`;
    const displayName = `Ada Lovelace${tag}`;
    for (const password of [
      'password1!',
      'iloveyou2024',
      'qwertyuiop',
      'P@ssw0rd2024',
      `adalovelace${tag}1990`,
      `ada.lovelace${tag}99`,
      `Lovelace${tag}1815`,
    ]) {
      const err = await refusedField({ email, displayName, password }, 'password', /password: /);
      expect(err.details, password).to.match(
        /is too easy to guess|must not be built from your email address or display name/,
      );
      expect(err.details, 'the value is not echoed').to.not.include(password);
    }
  });

  it('refuses look-alike domains, mixed-script words, invisible names and stacked marks, naming the field', async () => {
    const cases: [Parameters<typeof register>[0], string, RegExp][] = [
      [
        { email: `ada${randomInt(1e6)}@\u0440\u0430\u0443\u0440\u0430\u04cf.com` },
        'email',
        /look-alike letters/,
      ],
      [{ displayName: '\u0410dmin' }, 'display_name', /mixes scripts within a word \("\u0410dmin"\)/],
      [{ displayName: 'Su\u0440\u0440ort Team' }, 'display_name', /mixes scripts within a word/],
      [{ displayName: '\u3164' }, 'display_name', /draw nothing \(U\+3164/],
      [{ displayName: '\u115f\u1160' }, 'display_name', /draw nothing/],
      [{ displayName: '\uffa0' }, 'display_name', /draw nothing/],
      [{ displayName: '\u2800\u2800' }, 'display_name', /draw nothing \(U\+2800/],
      [{ displayName: `Za\u0301\u0302\u0303lgo` }, 'display_name', /more than 2 combining marks/],
    ];
    for (const [over, field, message] of cases) await refusedField(over, field, message);
    const long = `${'\u0430'.repeat(40)}b${'\u0430'.repeat(23)}`;
    const err = await refusedField({ displayName: long }, 'display_name', /mixes scripts/);
    expect(err.details.length, 'the echo is bounded').to.be.below(200);
  });

  it('keeps international names and IDN domains', async () => {
    for (const displayName of [
      'José Núñez',
      'Zoë',
      '李小龍',
      '山田 太郎',
      'Владимир',
      'محمد',
      "O'Brien-Smith",
      'Ada Lovelace',
    ]) {
      const reg = await register({ displayName });
      expect(reg.user?.displayName).to.equal(displayName);
    }
    const local = `ada${Date.now().toString(36)}`;
    expect((await register({ email: `${local}@bücher.example` })).user?.email).to.equal(
      `${local}@xn--bcher-kva.example`,
    );
    expect((await register({ email: `${local}@пример.рф` })).user?.email).to.equal(
      `${local}@xn--e1afmkfd.xn--p1ai`,
    );
  });
});
