/** The pure rules: lockout schedule, page tokens, field validators, update masks, error → status. */
import { status as Code } from '@grpc/grpc-js';
import { expect } from 'chai';
import { lockoutSeconds } from '../../services/auth/auth.service.js';
import { resolveUpdate } from '../../services/user/user.service.js';
import { AppError, type ErrorKind, InvalidArgumentError, Violations } from '../../src/errors.js';
import { BadRequest } from '../../src/gen/google/rpc/error_details.js';
import { Status } from '../../src/gen/google/rpc/status.js';
import { BAD_REQUEST_TYPE_URL, STATUS_DETAILS_KEY, toStatus } from '../../src/grpc/status.js';
import { createLogger } from '../../src/logger.js';
import { createPageTokenCodec } from '../../src/security/page-tokens.js';
import {
  checkDisplayName,
  checkEmail,
  checkGivenPassword,
  checkNewPassword,
  checkUuid,
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

describe('lockout schedule', () => {
  const policy = { maxFailures: 5, lockoutBaseS: 30, lockoutMaxS: 3600, failureWindowS: 900 };
  it('refuses nothing below LOGIN_MAX_FAILURES, then base, doubling, up to the maximum', () => {
    expect([1, 4].map((f) => lockoutSeconds(f, policy))).to.deep.equal([0, 0]);
    expect([5, 6, 7, 8].map((f) => lockoutSeconds(f, policy))).to.deep.equal([30, 60, 120, 240]);
    expect(lockoutSeconds(12, policy)).to.equal(3600);
    expect(lockoutSeconds(10_000, policy), 'no overflow').to.equal(3600);
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
  it('normalises and checks emails', () => {
    const v = new Violations();
    expect(checkEmail(v, 'email', '  Ada@Example.COM ')).to.equal('ada@example.com');
    expect(violations((x) => checkEmail(x, 'email', ''))).to.deep.equal(['email: is required']);
    for (const bad of ['ada', 'ada@', '@example.com', 'a b@example.com', 'ada@example', 'a\u0000@x.io']) {
      expect(
        violations((x) => checkEmail(x, 'email', bad)),
        bad,
      ).to.have.length(1);
    }
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
  it('trims display names, bounds them and refuses control characters', () => {
    expect(checkDisplayName(new Violations(), 'n', '  Ada  ')).to.equal('Ada');
    expect(violations((x) => checkDisplayName(x, 'n', ' '))).to.deep.equal(['n: is required']);
    expect(violations((x) => checkDisplayName(x, 'n', 'x'.repeat(101)))[0]).to.match(/at most 100/);
    expect(violations((x) => checkDisplayName(x, 'n', 'bell\u0007'))[0]).to.match(/control characters/);
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
    expect(err?.violations.map((v) => v.field)).to.deep.equal(['update_mask', 'update_mask', 'user.email']);
    expect(() => resolveUpdate({ ...input, displayName: '', email: '' }, [])).to.throw(
      /names no field to change/,
    );
    expect(() => resolveUpdate({ ...input, id: 'x' }, ['display_name'])).to.throw(/user.id: must be a UUID/);
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
