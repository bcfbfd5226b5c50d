/** The pure rules: lockout schedule, page tokens, field validators, update masks, error → status. */
import { status as Code } from '@grpc/grpc-js';
import { expect } from 'chai';
import { resolveUpdate } from '../../services/user/user.service.js';
import { AppError, type ErrorKind, InvalidArgumentError, Violations } from '../../src/errors.js';
import { BadRequest } from '../../src/gen/google/rpc/error_details.js';
import { Status } from '../../src/gen/google/rpc/status.js';
import { BAD_REQUEST_TYPE_URL, STATUS_DETAILS_KEY, toStatus } from '../../src/grpc/status.js';
import { createLogger } from '../../src/logger.js';
import { createAddressResolver, parseCidrs, throttleSource } from '../../src/net/addresses.js';
import { createPageTokenCodec } from '../../src/security/page-tokens.js';
import { ASCII_CONFUSABLES } from '../../src/text/confusables.js';
import {
  asciiSkeleton,
  echo,
  KNOWN_SCRIPTS,
  mixesScripts,
  scriptsOfChar,
  wordsOf,
} from '../../src/text/unicode.js';
import {
  decide,
  grant,
  IN_FLIGHT_TTL_S,
  lockoutSeconds,
  settle,
  type ThrottleRow,
} from '../../src/throttle.js';
import {
  checkDisplayName,
  checkEmail,
  checkGivenPassword,
  checkNewPassword,
  checkUuid,
  normalizeEmail,
} from '../../src/validation.js';

const violations = (check: (v: Violations) => unknown): string[] => {
  const v = new Violations();
  check(v);
  try {
    v.throwIfAny();
    return [];
  } catch (err) {
    return (err as InvalidArgumentError).violations.map((x) => `${x.field}: ${x.description}`);
  }
};

describe('throttle rules', () => {
  const policy = { baseS: 30, maxS: 3600, windowS: 900 };
  const now = 1_000_000_000_000;
  const key = { key: 'pair:a 1.2.3.4', max: 5 };
  it('refuses nothing below the limit, then base, doubling, up to the maximum', () => {
    expect([1, 4].map((f) => lockoutSeconds(f, 5, policy))).to.deep.equal([0, 0]);
    expect([5, 6, 7, 8].map((f) => lockoutSeconds(f, 5, policy))).to.deep.equal([30, 60, 120, 240]);
    expect(lockoutSeconds(12, 5, policy)).to.equal(3600);
    expect(lockoutSeconds(10_000, 5, policy), 'no overflow').to.equal(3600);
  });
  const row = (r: Partial<ThrottleRow> & { key: string }): ThrottleRow => ({
    failures: 0,
    lastFailureAt: now,
    lockedUntil: null,
    inFlight: [],
    ...r,
  });
  const src = { key: 'src:1.2.3.4', max: 20 };
  it('grants below the limit, holding a slot in flight on every key (no failure counted yet)', () => {
    const rows = [row({ key: key.key, failures: 4, lastFailureAt: now - 1000 })];
    expect(decide([key, src], rows, now, policy)).to.deep.equal({ kind: 'grant' });
    const { ticket, next } = grant([key, src], rows, now);
    expect(ticket.expiresAt).to.equal(now + IN_FLIGHT_TTL_S * 1000);
    expect(next.map((r) => [r.key, r.failures, r.inFlight])).to.deep.equal([
      [key.key, 4, [ticket.expiresAt]],
      ['src:1.2.3.4', 0, [ticket.expiresAt]],
    ]);
  });
  it('waits, not refuses, while attempts in flight hold the rest of the budget; refuses only a lock', () => {
    const inFlight = Array.from({ length: 5 }, (_, i) => now + 1000 + i);
    expect(decide([key], [row({ key: key.key, inFlight })], now, policy)).to.deep.equal({ kind: 'wait' });
    expect(
      decide([key], [row({ key: key.key, inFlight: inFlight.slice(1) })], now, policy),
      '4 in flight: one more may start',
    ).to.deep.equal({ kind: 'grant' });
    expect(
      decide([key], [row({ key: key.key, inFlight: inFlight.map((t) => t - 2000) })], now, policy),
      'slots of a dead process expire',
    ).to.deep.equal({ kind: 'grant' });
    const locked = [row({ key: 'acct:a', failures: 100, lockedUntil: now + 12_300 })];
    expect(decide([key, { key: 'acct:a', max: 100 }], locked, now, policy)).to.deep.equal({
      kind: 'locked',
      waitS: 13,
    });
  });
  it('counts a settled failure on every key and locks the one that reaches its limit; releases the slot', () => {
    const { ticket, next } = grant([key, src], [row({ key: key.key, failures: 4 })], now);
    const later = now + 500;
    const out = settle(ticket, next, later, policy, { result: 'failure' });
    expect(out.next).to.deep.equal([
      row({ key: key.key, failures: 5, lastFailureAt: later, lockedUntil: later + 30_000 }),
      row({ key: src.key, failures: 1, lastFailureAt: later }),
    ]);
    expect(out.locks).to.deep.equal([{ key: key.key, lockS: 30 }]);
  });
  it('after a success clears the proven key and releases the others, dropping rows left empty', () => {
    const { ticket, next } = grant(
      [key, src],
      [row({ key: key.key, failures: 3 }), row({ key: src.key, failures: 2 })],
      now,
    );
    const out = settle(ticket, next, now, policy, { result: 'success', clear: [key] });
    expect(out.drop).to.deep.equal([key.key]);
    expect(out.next).to.deep.equal([row({ key: src.key, failures: 2 })]);
    expect(settle(ticket, next, now, policy, { result: 'void' }).next.map((r) => r.failures)).to.deep.equal([
      3, 2,
    ]);
  });
  it("counts an account key only on the first failure of the attempt's pair within the window (distinct sources)", () => {
    const acct = { key: 'acct:a', max: 100, firstOf: key.key };
    const first = grant([key, acct], [], now);
    const one = settle(first.ticket, first.next, now, policy, { result: 'failure' }).next;
    expect(one.map((r) => r.failures)).to.deep.equal([1, 1]);
    const second = grant([key, acct], one, now);
    const two = settle(second.ticket, second.next, now, policy, { result: 'failure' }).next;
    expect(
      two.map((r) => r.failures),
      'the same source again: the account does not move',
    ).to.deep.equal([2, 1]);
  });
  it('forgets failures older than the window', () => {
    const old = [row({ key: key.key, failures: 4, lastFailureAt: now - 901_000 })];
    const { ticket, next } = grant([key], old, now);
    expect(settle(ticket, next, now, policy, { result: 'failure' }).next[0]?.failures).to.equal(1);
  });
  it('doubles the lock up to LOGIN_LOCKOUT_MAX_S: the window counts from the end of the last lock', () => {
    let clock = now;
    let rows: ThrottleRow[] = [];
    const locks: number[] = [];
    // one failure each time the previous lock has ended (and 10 minutes more: still within 900 s)
    for (let i = 0; i < 14; i++) {
      const { ticket, next } = grant([key], rows, clock);
      const out = settle(ticket, next, clock, policy, { result: 'failure' });
      rows = out.next;
      const lock = out.locks[0]?.lockS;
      if (lock) {
        locks.push(lock);
        clock += lock * 1000 + 600_000;
      } else clock += 1000;
      expect(decide([key], rows, clock, policy).kind, `after failure ${i + 1}`).to.equal('grant');
    }
    expect(locks).to.deep.equal([30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]);
    // more than the window after the end of the last lock: a fresh start
    clock = (rows[0]?.lockedUntil ?? 0) + 901_000;
    const { ticket, next } = grant([key], rows, clock);
    expect(settle(ticket, next, clock, policy, { result: 'failure' }).next[0]?.failures).to.equal(1);
  });
});

describe('client addresses (TRUSTED_PROXIES)', () => {
  const resolver = createAddressResolver(parseCidrs('10.0.0.0/8, 2001:db8::/32, 192.0.2.1'));
  it("uses the peer's own address when it is not a trusted proxy, ignoring its x-forwarded-for", () => {
    expect(resolver.clientAddress('203.0.113.5:4000', ['198.51.100.1'])).to.equal('203.0.113.5');
    expect(resolver.clientAddress('[::ffff:203.0.113.5]:4000', [])).to.equal('203.0.113.5');
  });
  it('behind trusted proxies, takes the right-most untrusted entry of x-forwarded-for', () => {
    expect(resolver.clientAddress('10.1.1.1:4000', ['198.51.100.9, 203.0.113.7, 10.2.2.2'])).to.equal(
      '203.0.113.7',
    );
    expect(resolver.clientAddress('[2001:db8::1]:9', ['198.51.100.9', '192.0.2.1'])).to.equal('198.51.100.9');
    expect(resolver.clientAddress('10.1.1.1:4000', [])).to.equal('10.1.1.1');
    expect(
      resolver.clientAddress('10.1.1.1:4000', ['spoofed, 10.2.2.2']),
      'a non-address stops the walk',
    ).to.equal('10.2.2.2');
    expect(resolver.clientAddress('10.1.1.1:4000', ['[2001:db9::5]:443'])).to.equal('2001:db9::5');
  });
  it('refuses a bad CIDR list naming the entry', () => {
    expect(() => parseCidrs('10.0.0.0/33')).to.throw(/10\.0\.0\.0\/33/);
    expect(() => parseCidrs('proxy.internal')).to.throw(/proxy\.internal/);
    expect(parseCidrs('')).to.deep.equal([]);
  });
});

describe('throttle sources (THROTTLE_IPV6_PREFIX)', () => {
  it('counts IPv4 by address and IPv4-mapped IPv6 as IPv4', () => {
    expect(throttleSource('203.0.113.7', 64)).to.equal('203.0.113.7');
    expect(throttleSource('::ffff:203.0.113.7', 64)).to.equal('203.0.113.7');
    expect(throttleSource('::FFFF:cb00:7107', 48)).to.equal('203.0.113.7');
  });
  it('counts IPv6 by its network, in one spelling whatever the compressed form', () => {
    for (const spelling of [
      '2001:db8:1:2:aaaa:bbbb:cccc:dddd',
      '2001:0db8:0001:0002:0000:0000:0000:0001',
      '2001:DB8:1:2::1',
      '2001:db8:1:2::ffff:1.2.3.4',
    ])
      expect(throttleSource(spelling, 64), spelling).to.equal('2001:db8:1:2::/64');
    expect(throttleSource('2001:db8:1:3::1', 64), 'the next /64').to.equal('2001:db8:1:3::/64');
  });
  it('applies prefixes 48, 64 and 128, and the longest zero run becomes ::', () => {
    expect(throttleSource('2001:db8:1:2:3:4:5:6', 48)).to.equal('2001:db8:1::/48');
    expect(throttleSource('2001:db8:1:2:3:4:5:6', 56)).to.equal('2001:db8:1::/56');
    expect(throttleSource('2001:db8:1:2ff:3:4:5:6', 56)).to.equal('2001:db8:1:200::/56');
    expect(throttleSource('2001:db8:1:2:3:4:5:6', 128)).to.equal('2001:db8:1:2:3:4:5:6/128');
    expect(throttleSource('2001:0:0:1:0:0:0:1', 128)).to.equal('2001:0:0:1::1/128');
    expect(throttleSource('2001:db8::', 64)).to.equal('2001:db8::/64');
    expect(throttleSource('::', 64)).to.equal('::/64');
    expect(throttleSource('::1', 128)).to.equal('::1/128');
    expect(throttleSource('fe80::1%eth0', 64)).to.equal('fe80::/64');
  });
  it('leaves anything that is not an IP address as it is', () => {
    expect(throttleSource('unix:/tmp/s.sock', 64)).to.equal('unix:/tmp/s.sock');
    expect(throttleSource('', 64)).to.equal('');
  });
});

describe('page tokens', () => {
  const codec = createPageTokenCodec('a secret key of some length');
  it('round-trips a cursor', () => {
    const token = codec.encode({ afterId: 'u-1', query: 'ada' });
    expect(codec.decode(token)).to.deep.equal({ afterId: 'u-1', query: 'ada' });
  });
  it('refuses a token made with another key, tampered, truncated, with extra parts or oversized', () => {
    const token = codec.encode({ afterId: 'u-1', query: '' });
    const [body, sig] = token.split('.') as [string, string];
    const forged = Buffer.from(JSON.stringify({ a: 'u-2', q: '' })).toString('base64url');
    for (const bad of [
      createPageTokenCodec('another key').encode({ afterId: 'u-1', query: '' }),
      `${forged}.${sig}`,
      `${body}.${sig.slice(0, -2)}AA`,
      body,
      `${token}.x`,
      `${'a'.repeat(1100)}.${sig}`,
      'garbage',
      '',
    ]) {
      expect(codec.decode(bad), bad.slice(0, 30)).to.equal(null);
    }
  });
});

describe('field validators', () => {
  it('normalises emails: lower-case ASCII local part, the domain in its ASCII (IDN) form', () => {
    expect(checkEmail(new Violations(), 'email', '  Ada@Example.COM ')).to.equal('ada@example.com');
    expect(checkEmail(new Violations(), 'email', 'ada@bücher.example')).to.equal('ada@xn--bcher-kva.example');
    const nfd = 'ada@bu\u0308cher.example';
    expect(checkEmail(new Violations(), 'email', nfd), 'NFD and NFC are one address').to.equal(
      'ada@xn--bcher-kva.example',
    );
    expect(normalizeEmail(' ADA@BÜCHER.example')).to.equal('ada@xn--bcher-kva.example');
  });
  it('refuses emails that could impersonate: non-ASCII local parts, mixed-script domain labels, invisible characters', () => {
    expect(violations((x) => checkEmail(x, 'email', ''))).to.deep.equal(['email: is required']);
    for (const bad of [
      'ada',
      'ada@',
      '@example.com',
      'a b@example.com',
      'ada@example',
      'a..b@example.com',
      'josé@example.com',
      'ada@pаypal.com', // Cyrillic а in a Latin label
      'ada\u200b@example.com', // zero-width space
      'ada@exam\u202eple.com', // right-to-left override
      'ada@example.com\u{e0041}', // tag character
      'ada@1.2.3.4',
    ]) {
      expect(
        violations((x) => checkEmail(x, 'email', bad)),
        JSON.stringify(bad),
      ).to.have.length(1);
    }
    expect(
      violations((x) => checkEmail(x, 'email', 'ada@пример.рф')),
      'one script per label is fine',
    ).to.deep.equal([]);
    expect(violations((x) => checkEmail(x, 'email', `${'a'.repeat(250)}@x.io`))[0]).to.match(/at most 254/);
  });
  it('bounds new passwords in bytes (bcrypt reads 72) and refuses NUL', () => {
    expect(violations((x) => checkNewPassword(x, 'password', 'short'))[0]).to.match(/at least 8 bytes/);
    expect(violations((x) => checkNewPassword(x, 'password', 'é'.repeat(37)))[0]).to.match(
      /at most 72 bytes/,
    );
    expect(violations((x) => checkNewPassword(x, 'password', 'nul\u0000inside'))[0]).to.match(/NUL/);
    expect(violations((x) => checkNewPassword(x, 'password', 'a fine passphrase'))).to.deep.equal([]);
  });
  it('accepts any given password bcrypt can compare, and refuses NUL (bcrypt stops there)', () => {
    expect(violations((x) => checkGivenPassword(x, 'password', 'x'))).to.deep.equal([]);
    expect(violations((x) => checkGivenPassword(x, 'password', 'secret\u0000anything'))[0]).to.match(/NUL/);
  });
  it('NFC-normalises display names, bounds them, and refuses invisible and private characters', () => {
    expect(checkDisplayName(new Violations(), 'n', '  Ada Lovelace  ')).to.equal('Ada Lovelace');
    expect(checkDisplayName(new Violations(), 'n', 'Jose\u0301')).to.equal('Jos\u00e9');
    expect(violations((x) => checkDisplayName(x, 'n', ' '))).to.deep.equal(['n: is required']);
    expect(violations((x) => checkDisplayName(x, 'n', 'x'.repeat(65)))[0]).to.match(/at most 64/);
    for (const bad of [
      'bell\u0007',
      'zero\u200bwidth',
      'rtl\u202eevil',
      'private\ue000',
      'nb\u00a0sp',
      'tag\u{e0041}',
    ]) {
      expect(
        violations((x) => checkDisplayName(x, 'n', bad)),
        JSON.stringify(bad),
      ).to.have.length(1);
    }
    expect(violations((x) => checkDisplayName(x, 'n', '---'))[0]).to.match(/at least one letter or digit/);
    expect(violations((x) => checkDisplayName(x, 'n', '李小龍 2'))).to.deep.equal([]);
  });
  it('refuses a domain label written wholly in look-alike letters (UTS #39 whole-script confusable), not other IDNs', () => {
    for (const [email, shown] of [
      ['ada@\u0440\u0430\u0443\u0440\u0430\u04cf.com', '"раураӏ" reads as "paypai"'], // all Cyrillic
      ['ada@\u0430\u0440\u0440\u04cf\u0435.com', '"аррӏе" reads as "appie"'],
      ['ada@xn--80ak6aa92e.com', '"аррӏе" reads as "appie"'], // the same, given as punycode
      ['ada@\u03bf\u03b9\u03bf.example', '"οιο" reads as "oio"'], // all Greek
    ]) {
      const got = violations((x) => checkEmail(x, 'email', email));
      expect(got, email).to.have.length(1);
      expect(got[0], email).to.include('look-alike letters').and.include(shown);
    }
    for (const ok of [
      'ada@пример.рф',
      'ada@bücher.example',
      'ada@яндекс.рф',
      'ada@例え.jp',
      'ada@ελλάδα.gr',
    ]) {
      expect(
        violations((x) => checkEmail(x, 'email', ok)),
        ok,
      ).to.deep.equal([]);
    }
    expect(asciiSkeleton('\u0440\u0430\u0443')).to.equal('pay');
    expect(asciiSkeleton('пример'), 'п, и, м have no ASCII prototype').to.not.match(/^[a-z]+$/);
  });
  it('keeps the generated confusables table current and limited to what the domain check needs', async () => {
    const { confusablesSource, OUTPUT } = await import('../../scripts/gen-confusables.js');
    const fs = await import('node:fs');
    expect(fs.readFileSync(OUTPUT, 'utf8'), 'run npm run gen:confusables').to.equal(confusablesSource());
    expect(ASCII_CONFUSABLES.get('\u0430')).to.equal('a');
    for (const [from, to] of ASCII_CONFUSABLES) {
      expect(from.codePointAt(0), from).to.be.above(0x7f);
      expect(to).to.match(/^[A-Za-z0-9]+$/);
    }
  });
  it('refuses display names that mix scripts within a word, and keeps international names', () => {
    for (const [bad, word] of [
      ['\u0410dmin', '\u0410dmin'], // Cyrillic А
      ['Su\u0440\u0440ort Team', 'Su\u0440\u0440ort'], // Cyrillic р р
      ['Ada L\u03bfvelace', 'L\u03bfvelace'], // Greek ο
      ['\u0410\u0434\u043c\u0438n', '\u0410\u0434\u043c\u0438n'], // Cyrillic with a Latin n
    ]) {
      expect(
        violations((x) => checkDisplayName(x, 'display_name', bad)),
        bad,
      ).to.deep.equal([
        `display_name: mixes scripts within a word ("${word}"); write each word in one alphabet`,
      ]);
    }
    for (const ok of [
      'José Núñez',
      'Zoë',
      '李小龍',
      '山田 太郎',
      'やまだ タロウ 山田',
      'ひらがなカタカナ漢字',
      '김민준 金',
      'Владимир',
      'محمد',
      "O'Brien-Smith",
      'Nguyễn Văn An',
      'Ελένη',
      'नमस्ते',
      'R2-D2 the 3rd',
      'Ada Владимир', // two scripts, but never within one word
    ]) {
      expect(
        violations((x) => checkDisplayName(x, 'display_name', ok)),
        ok,
      ).to.deep.equal([]);
    }
    expect(wordsOf("O'Brien-Smith, Jr.")).to.deep.equal(['O', 'Brien', 'Smith', 'Jr']);
    expect(mixesScripts('Tokyo東京'), 'Latin with Han is highly restrictive').to.equal(false);
    expect(mixesScripts('\u0410dmin')).to.equal(true);
    expect(scriptsOfChar('7'), 'digits are Common').to.deep.equal([]);
  });
  it('knows the script of every letter, mark and digit of this Node', () => {
    const known = new RegExp(`[${KNOWN_SCRIPTS.map((n) => `\\p{Script_Extensions=${n}}`).join('')}]`, 'u');
    const common = /[\p{Script_Extensions=Common}\p{Script_Extensions=Inherited}]/u;
    const unknown: string[] = [];
    for (let cp = 0; cp < 0x110000; cp++) {
      const ch = String.fromCodePoint(cp);
      if (/[\p{L}\p{M}\p{N}]/u.test(ch) && !common.test(ch) && !known.test(ch)) unknown.push(cp.toString(16));
    }
    expect(unknown, 'add the new scripts to SCRIPT_NAMES in src/text/unicode.ts').to.deep.equal([]);
  });
  it('refuses names of letters that draw nothing, and letters under stacked combining marks', () => {
    for (const [bad, code] of [
      ['\u3164', 'U+3164'],
      ['\u3164\u3164\u3164', 'U+3164'],
      ['\u115f', 'U+115F'],
      ['\u1160', 'U+1160'],
      ['\uffa0', 'U+FFA0'],
      ['\u2800', 'U+2800'],
      ['Ada\u3164Lovelace', 'U+3164'],
    ]) {
      expect(
        violations((x) => checkDisplayName(x, 'n', bad)),
        code,
      ).to.deep.equal([`n: must not contain letters that draw nothing (${code}, shown as blank)`]);
    }
    const zalgo = 'Z\u0301\u0302\u0303algo'; // NFC makes Ź, two marks stay: three on one letter
    expect(violations((x) => checkDisplayName(x, 'n', zalgo))).to.deep.equal([
      'n: has more than 2 combining marks on one letter ("Ź\u0302\u0303")',
    ]);
    expect(violations((x) => checkDisplayName(x, 'n', `A${'\u0300'.repeat(40)}`))[0]).to.match(
      /combining marks/,
    );
    expect(
      violations((x) => checkDisplayName(x, 'n', 'Nguye\u0302\u0303n')),
      'two are fine',
    ).to.deep.equal([]);
  });
  it('echoes at most 64 characters of a caller value', () => {
    expect([...echo('x'.repeat(500))]).to.have.length(64);
    expect(echo('short')).to.equal('short');
    const long = `${'\u0430'.repeat(40)}b${'\u0430'.repeat(23)}`; // 64 characters, one word
    const [message] = violations((x) => checkDisplayName(x, 'n', long));
    expect(message).to.include(long);
  });
  it('checks UUIDs', () => {
    expect(violations((x) => checkUuid(x, 'id', '0b5e7c55-1f4e-4e0e-9a55-5f4e1e0e9a55'))).to.deep.equal([]);
    expect(violations((x) => checkUuid(x, 'id', 'nope'))).to.deep.equal(['id: must be a UUID']);
  });
});

describe('update-mask resolution (AIP-134)', () => {
  const input = {
    id: '0b5e7c55-1f4e-4e0e-9a55-5f4e1e0e9a55',
    displayName: ' New ',
    email: 'A@B.io',
    roles: [],
  };
  it('applies only the masked fields, normalised', () => {
    expect(resolveUpdate(input, ['display_name'])).to.deep.equal({ displayName: 'New' });
    expect(resolveUpdate(input, ['email', 'email'])).to.deep.equal({ email: 'a@b.io' });
  });
  it('takes every non-empty field for an empty mask, and all of them for *', () => {
    expect(resolveUpdate(input, [])).to.deep.equal({ displayName: 'New', email: 'a@b.io' });
    expect(() => resolveUpdate(input, ['*'])).to.throw(/user.roles/);
    expect(resolveUpdate({ ...input, roles: ['user', 'admin'] }, ['*']).roles).to.deep.equal([
      'admin',
      'user',
    ]);
  });
  it('refuses unknown and immutable paths, bad values and an empty patch, naming each', () => {
    const err = (() => {
      try {
        resolveUpdate({ ...input, email: 'nope' }, ['nickname', 'create_time', 'email']);
      } catch (e) {
        return e as InvalidArgumentError;
      }
    })();
    expect(
      err?.violations.map((v) => v.field),
      'the paths first',
    ).to.deep.equal(['update_mask', 'update_mask']);
    expect(() =>
      resolveUpdate({ ...input, email: 'nope', displayName: '\u0007' }, ['email', 'display_name']),
    ).to.throw(/user\.email: .*; user\.display_name: /);
    expect(() => resolveUpdate({ ...input, displayName: '', email: '' }, [])).to.throw(
      /names no field to change/,
    );
    expect(() => resolveUpdate({ ...input, roles: ['user', 'root'] }, ['roles'])).to.throw(/unknown role/);
    expect(() => resolveUpdate({ ...input, roles: ['admin'] }, ['roles'])).to.throw(/must include "user"/);
  });
});

describe('error → status table', () => {
  const logger = createLogger('silent');
  const table: [ErrorKind, Code][] = [
    ['UNAUTHENTICATED', Code.UNAUTHENTICATED],
    ['PERMISSION_DENIED', Code.PERMISSION_DENIED],
    ['NOT_FOUND', Code.NOT_FOUND],
    ['ALREADY_EXISTS', Code.ALREADY_EXISTS],
    ['RESOURCE_EXHAUSTED', Code.RESOURCE_EXHAUSTED],
    ['FAILED_PRECONDITION', Code.FAILED_PRECONDITION],
    ['UNAVAILABLE', Code.UNAVAILABLE],
    ['DEADLINE_EXCEEDED', Code.DEADLINE_EXCEEDED],
    ['CANCELLED', Code.CANCELLED],
  ];
  for (const [kind, code] of table) {
    it(`maps ${kind} to ${Code[code]} with the message as it is`, () => {
      const status = toStatus(new AppError(kind, `a ${kind} message`), logger);
      expect(status).to.include({ code, details: `a ${kind} message` });
    });
  }
  it('maps INVALID_ARGUMENT with a google.rpc.BadRequest naming every field', () => {
    const status = toStatus(
      new InvalidArgumentError([
        { field: 'email', description: 'is required' },
        { field: 'password', description: 'is too short' },
      ]),
      logger,
    );
    expect(status.code).to.equal(Code.INVALID_ARGUMENT);
    const details = Status.decode(status.metadata.get(STATUS_DETAILS_KEY)[0] as Buffer);
    expect(details.details[0]?.typeUrl).to.equal(BAD_REQUEST_TYPE_URL);
    const request = BadRequest.decode(details.details[0]?.value as Uint8Array);
    expect(request.fieldViolations.map((v) => v.field)).to.deep.equal(['email', 'password']);
  });
  it('answers anything unexpected with INTERNAL and an error id only, logging the stack under that id', () => {
    const lines: string[] = [];
    const sink = createLogger('error', { write: (l: string) => void lines.push(l) });
    const status = toStatus(new Error('SELECT secret FROM users failed at /src/x.ts:1'), sink);
    expect(status.code).to.equal(Code.INTERNAL);
    expect(status.details).to.match(/^internal error \(id [0-9a-f-]{36}\)$/);
    const id = /id ([0-9a-f-]+)/.exec(status.details)?.[1] as string;
    expect(lines.join('')).to.include(id).and.include('SELECT secret');
  });
});
