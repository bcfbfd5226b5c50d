/**
 * Hostile input on the wire, for every method: seeded random bytes, truncations, wrong wire types,
 * invalid UTF-8, NUL bytes, oversized messages and strings, unknown oneof cases, and arbitrary
 * strings (fast-check) with SQL metacharacters. Each must get a clear status (never INTERNAL or
 * UNKNOWN), never a stack trace or SQL in the message, never a stored row, and the server must keep
 * serving.
 */
import fs from 'node:fs';
import { createFileRegistry, type DescMessage, fromBinary, ScalarType } from '@bufbuild/protobuf';
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { Client, credentials, Metadata } from '@grpc/grpc-js';
import { expect } from 'chai';
import fc from 'fast-check';
import { Code } from '../src/client.js';
import {
  AuthServiceService,
  ChangePasswordRequest,
  GetJwksRequest,
  IssueServiceTokenRequest,
  ListSessionsRequest,
  LoginRequest,
  LogoutRequest,
  RefreshTokenRequest,
  RegisterRequest,
  RevokeSessionRequest,
  ValidateTokenRequest,
} from '../src/gen/connectsphere/auth/v1/auth.js';
import {
  BatchGetUsersRequest,
  DeleteUserRequest,
  GetUserRequest,
  ListAuditEventsRequest,
  ListUsersRequest,
  UpdateUserRequest,
  UserServiceService,
} from '../src/gen/connectsphere/user/v1/user.js';
import { DESCRIPTOR_SET_URL } from '../src/grpc/reflection.js';
import { healthOf, newAccount, startTestServer, type TestServer } from './helpers/server.js';

interface Outcome {
  code: number;
  details: string;
}

/** Never acceptable for bad input: these mean the server did not handle it. */
const UNHANDLED = new Set([
  Code.INTERNAL,
  Code.UNKNOWN,
  Code.UNAVAILABLE,
  Code.CANCELLED,
  Code.DEADLINE_EXCEEDED,
]);
const LEAK =
  /\n\s+at |node_modules|\.ts:\d|sequelize|\bSELECT\b|\bINSERT\b|\bUPDATE\b.*\bSET\b|syntax error|password_hash|\$2[aby]\$/i;

/** Deterministic PRNG (mulberry32), so a failure replays exactly. */
function prng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('hostile input on the wire', () => {
  let s: TestServer;
  let raw: Client;
  let token: string;
  let userId: string;
  const registry = createFileRegistry(
    fromBinary(FileDescriptorSetSchema, fs.readFileSync(DESCRIPTOR_SET_URL)),
  );

  /** Sends raw bytes as the request of `path` with the test user's bearer token. */
  const send = (path: string, bytes: Uint8Array): Promise<Outcome> =>
    new Promise((resolve) => {
      const md = new Metadata();
      md.set('authorization', `Bearer ${token}`);
      raw.makeUnaryRequest(
        path,
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.from(bytes),
        md,
        { deadline: Date.now() + 10_000 },
        (err) => resolve(err ? { code: err.code, details: err.details } : { code: Code.OK, details: '' }),
      );
    });

  const expectHandled = (o: Outcome, what: string) => {
    expect(UNHANDLED.has(o.code), `${what}: ${Code[o.code]} ${o.details}`).to.equal(false);
    expect(o.details, what).to.not.match(LEAK);
    expect(o.details.length, `${what}: short message`).to.be.lessThan(600);
  };

  let methods: { path: string; sample: Uint8Array; input: DescMessage }[];
  const counts = async () =>
    (
      await s.sql(
        `SELECT (SELECT count(*) FROM users)::int AS users, (SELECT count(*) FROM sessions)::int AS sessions,
                (SELECT count(*) FROM login_throttle)::int AS attempts`,
      )
    )[0];

  before(async () => {
    s = await startTestServer({ LOG_LEVEL: 'warn', LOGIN_MAX_FAILURES: '1000' });
    raw = new Client(s.address, credentials.createInsecure());
    const acct = newAccount('hostile');
    const reg = await s.client.auth.register(acct);
    token = reg.tokens?.accessToken ?? '';
    userId = reg.user?.id ?? '';
    const other = '00000000-0000-4000-8000-0000000000aa';
    const samples: [string, Uint8Array][] = [
      [
        AuthServiceService.register.path,
        RegisterRequest.encode({ email: 'fuzz@example.com', password: 'x', displayName: 'F' }).finish(),
      ],
      [
        AuthServiceService.login.path,
        LoginRequest.encode({ email: acct.email, password: 'wrong password' }).finish(),
      ],
      [
        AuthServiceService.refreshToken.path,
        RefreshTokenRequest.encode({ refreshToken: 'A'.repeat(43) }).finish(),
      ],
      [AuthServiceService.logout.path, LogoutRequest.encode({ refreshToken: 'B'.repeat(43) }).finish()],
      [AuthServiceService.validateToken.path, ValidateTokenRequest.encode({ accessToken: token }).finish()],
      [
        AuthServiceService.changePassword.path,
        ChangePasswordRequest.encode({
          currentPassword: 'not the password',
          newPassword: 'another password',
        }).finish(),
      ],
      [
        UserServiceService.getUser.path,
        GetUserRequest.encode({ lookup: { $case: 'id', value: userId } }).finish(),
      ],
      [
        UserServiceService.batchGetUsers.path,
        BatchGetUsersRequest.encode({ ids: [userId, userId] }).finish(),
      ],
      [
        UserServiceService.listUsers.path,
        ListUsersRequest.encode({ pageSize: 3, pageToken: '', query: 'ho' }).finish(),
      ],
      [
        UserServiceService.updateUser.path,
        UpdateUserRequest.encode({
          user: {
            id: userId,
            email: '',
            displayName: 'Fuzzy',
            roles: [],
            createTime: undefined,
            updateTime: undefined,
          },
          currentPassword: '',
          updateMask: ['display_name'],
        }).finish(),
      ],
      [UserServiceService.deleteUser.path, DeleteUserRequest.encode({ id: other }).finish()],
      [
        UserServiceService.listAuditEvents.path,
        ListAuditEventsRequest.encode({
          pageSize: 5,
          pageToken: '',
          subjectUserId: other,
          eventTypes: ['login.failed'],
          startTime: new Date(0),
        }).finish(),
      ],
      [AuthServiceService.listSessions.path, ListSessionsRequest.encode({}).finish()],
      [
        AuthServiceService.issueServiceToken.path,
        IssueServiceTokenRequest.encode({
          clientId: `svc_${'0'.repeat(32)}`,
          clientSecret: 'x'.repeat(43),
        }).finish(),
      ],
      [AuthServiceService.getJwks.path, GetJwksRequest.encode({}).finish()],
      [AuthServiceService.revokeSession.path, RevokeSessionRequest.encode({ sessionId: other }).finish()],
    ];
    methods = samples.map(([path, sample]) => {
      const [, service, method] = path.split('/');
      const input = registry.getService(service as string)?.methods.find((m) => m.name === method)?.input;
      if (!input) throw new Error(`no descriptor for ${path}`);
      return { path, sample, input };
    });
    expect(methods.map((m) => m.path)).to.have.length(
      Object.keys(AuthServiceService).length + Object.keys(UserServiceService).length,
    );
  });
  after(async () => {
    raw?.close();
    await s?.stop();
  });

  it('answers seeded random bytes and every truncation of a valid request for every method, storing nothing', async function () {
    this.timeout(120_000);
    const before = await counts();
    const random = prng(20261126);
    let cases = 0;
    for (const m of methods) {
      for (let i = 0; i < 150; i++) {
        const bytes = Uint8Array.from({ length: 1 + Math.floor(random() * 300) }, () =>
          Math.floor(random() * 256),
        );
        expectHandled(await send(m.path, bytes), `${m.path} random #${i}`);
        cases++;
      }
      for (let n = 1; n < m.sample.length; n++) {
        expectHandled(await send(m.path, m.sample.subarray(0, n)), `${m.path} truncated to ${n}`);
        cases++;
      }
    }
    const after = await counts();
    expect(after, 'no row stored by hostile bytes').to.deep.equal(before);
    expect(cases).to.be.greaterThan(2000);
  });

  it('refuses a known field with the wrong wire type, and invalid UTF-8 in any string field, with INVALID_ARGUMENT', async () => {
    let checked = 0;
    for (const m of methods) {
      for (const field of m.input.fields) {
        const isString =
          (field.fieldKind === 'scalar' || (field.fieldKind === 'list' && field.listKind === 'scalar')) &&
          field.scalar === ScalarType.STRING;
        const expected =
          field.fieldKind === 'scalar' && field.scalar === ScalarType.INT32
            ? WireType.Varint
            : WireType.LengthDelimited;
        for (const wt of [WireType.Varint, WireType.Bit64, WireType.LengthDelimited, WireType.Bit32]) {
          if (wt === expected) continue;
          const w = new BinaryWriter().tag(field.number, wt);
          if (wt === WireType.Varint) w.uint32(7);
          else if (wt === WireType.Bit64) w.fixed64(7);
          else if (wt === WireType.Bit32) w.fixed32(7);
          else w.bytes(new Uint8Array([1, 2, 3]));
          const o = await send(m.path, w.finish());
          expect(o.code, `${m.path} ${field.name} as wire type ${wt}: ${o.details}`).to.equal(
            Code.INVALID_ARGUMENT,
          );
          expect(o.details).to.include(field.name);
          checked++;
        }
        if (isString) {
          const bad = new BinaryWriter()
            .tag(field.number, WireType.LengthDelimited)
            .bytes(new Uint8Array([0x61, 0xff, 0xfe, 0xc0, 0x80]))
            .finish();
          const o = await send(m.path, bad);
          expect(o.code, `${m.path} ${field.name} invalid UTF-8: ${o.details}`).to.equal(
            Code.INVALID_ARGUMENT,
          );
          expect(o.details).to.match(new RegExp(`${field.name}.*not valid UTF-8`));
          checked++;
        }
      }
    }
    expect(checked).to.be.greaterThan(40);
  });

  it('refuses NUL bytes in strings, huge strings, an unknown oneof case, and messages over the size limit', async () => {
    const valid = { email: 'nul@example.com', password: 'long enough', displayName: 'Nul' };
    const reg = (over: Partial<typeof valid>) => RegisterRequest.encode({ ...valid, ...over }).finish();
    const cases: [string, string, Uint8Array, number][] = [
      [
        'Register email NUL',
        AuthServiceService.register.path,
        reg({ email: 'nu\u0000l@example.com' }),
        Code.INVALID_ARGUMENT,
      ],
      [
        'Register password NUL',
        AuthServiceService.register.path,
        reg({ password: 'long\u0000enough' }),
        Code.INVALID_ARGUMENT,
      ],
      [
        'Register name NUL',
        AuthServiceService.register.path,
        reg({ displayName: 'N\u0000l' }),
        Code.INVALID_ARGUMENT,
      ],
      [
        'Login password NUL',
        AuthServiceService.login.path,
        LoginRequest.encode({ email: 'a@example.com', password: 'x\u0000y' }).finish(),
        Code.INVALID_ARGUMENT,
      ],
      [
        'Refresh NUL',
        AuthServiceService.refreshToken.path,
        RefreshTokenRequest.encode({ refreshToken: '\u0000'.repeat(43) }).finish(),
        Code.INVALID_ARGUMENT,
      ],
      [
        'Validate NUL',
        AuthServiceService.validateToken.path,
        ValidateTokenRequest.encode({ accessToken: `${token}\u0000` }).finish(),
        Code.INVALID_ARGUMENT,
      ],
      [
        'GetUser email NUL',
        UserServiceService.getUser.path,
        GetUserRequest.encode({ lookup: { $case: 'email', value: 'a\u0000@example.com' } }).finish(),
        Code.INVALID_ARGUMENT,
      ],
      [
        'List query NUL',
        UserServiceService.listUsers.path,
        ListUsersRequest.encode({ pageSize: 1, pageToken: '', query: 'a\u0000' }).finish(),
        Code.INVALID_ARGUMENT,
      ],
      [
        'Register 60 kB email',
        AuthServiceService.register.path,
        reg({ email: `${'a'.repeat(60_000)}@example.com` }),
        Code.INVALID_ARGUMENT,
      ],
      [
        'Register 60 kB password',
        AuthServiceService.register.path,
        reg({ password: 'p'.repeat(60_000) }),
        Code.INVALID_ARGUMENT,
      ],
      [
        'Validate 60 kB token',
        AuthServiceService.validateToken.path,
        ValidateTokenRequest.encode({ accessToken: 't'.repeat(60_000) }).finish(),
        Code.INVALID_ARGUMENT,
      ],
      [
        'Update 60 kB mask path',
        UserServiceService.updateUser.path,
        UpdateUserRequest.encode({
          user: {
            id: userId,
            email: '',
            displayName: 'x',
            roles: [],
            createTime: undefined,
            updateTime: undefined,
          },
          currentPassword: '',
          updateMask: ['p'.repeat(60_000)],
        }).finish(),
        Code.INVALID_ARGUMENT,
      ],
      [
        'GetUser unknown oneof case',
        UserServiceService.getUser.path,
        new BinaryWriter().tag(7, WireType.LengthDelimited).string('x').finish(),
        Code.INVALID_ARGUMENT,
      ],
      [
        'Register 1 MB string',
        AuthServiceService.register.path,
        reg({ displayName: 'x'.repeat(1_000_000) }),
        Code.RESOURCE_EXHAUSTED,
      ],
      [
        'GetUser 70 kB of bytes',
        UserServiceService.getUser.path,
        new Uint8Array(70_000).fill(0x0a),
        Code.RESOURCE_EXHAUSTED,
      ],
    ];
    const before = await counts();
    for (const [name, path, bytes, code] of cases) {
      const o = await send(path, bytes);
      expect(o.code, `${name}: ${Code[o.code]} ${o.details}`).to.equal(code);
      expectHandled(o, name);
    }
    expect(await counts()).to.deep.equal(before);
  });

  it('handles arbitrary strings (fast-check, SQL metacharacters included) in every text field', async function () {
    this.timeout(120_000);
    const sqlish = fc.constantFrom(
      "'",
      '"',
      ';',
      '--',
      '/*',
      '*/',
      '%',
      '_',
      '\\',
      "' OR '1'='1",
      '); DROP TABLE users; --',
      '\u0000',
      '\ufffd',
      '@',
    );
    const text = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 80 }),
      fc.array(fc.oneof(sqlish, fc.string({ maxLength: 6 })), { maxLength: 8 }).map((xs) => xs.join('')),
      fc.tuple(fc.string({ maxLength: 10 }), sqlish).map(([a, b]) => `${a}${b}@example.com`),
    );
    const usersBefore = (await counts())?.users as number;
    let registered = 0;
    await fc.assert(
      fc.asyncProperty(text, text, text, async (email, password, displayName) => {
        const o = await send(
          AuthServiceService.register.path,
          RegisterRequest.encode({ email, password, displayName }).finish(),
        );
        expectHandled(o, 'Register');
        expect([Code.OK, Code.INVALID_ARGUMENT, Code.ALREADY_EXISTS]).to.include(o.code);
        if (o.code === Code.OK) {
          registered++;
          const rows = await s.sql('SELECT email, display_name FROM users WHERE email = $1', [
            email.trim().toLowerCase(),
          ]);
          expect(rows[0]).to.deep.equal({
            email: email.trim().toLowerCase(),
            display_name: displayName.trim(),
          });
        }
      }),
      { numRuns: 250, seed: 42 },
    );
    expect((await counts())?.users, 'exactly the accepted registrations were stored').to.equal(
      usersBefore + registered,
    );

    const calls: [string, (t: string) => Uint8Array, number[]][] = [
      [
        AuthServiceService.login.path,
        (t) => LoginRequest.encode({ email: t, password: t }).finish(),
        [Code.INVALID_ARGUMENT, Code.UNAUTHENTICATED],
      ],
      [
        UserServiceService.getUser.path,
        (t) => GetUserRequest.encode({ lookup: { $case: 'email', value: t } }).finish(),
        // another address than one's own: PERMISSION_DENIED, whether or not it exists
        [Code.INVALID_ARGUMENT, Code.PERMISSION_DENIED, Code.OK],
      ],
      [
        UserServiceService.listUsers.path,
        (t) => ListUsersRequest.encode({ pageSize: 5, pageToken: t, query: t }).finish(),
        [Code.INVALID_ARGUMENT, Code.OK],
      ],
      [
        UserServiceService.listUsers.path,
        (t) => ListUsersRequest.encode({ pageSize: 5, pageToken: '', query: t }).finish(),
        [Code.INVALID_ARGUMENT, Code.OK],
      ],
      [
        UserServiceService.batchGetUsers.path,
        (t) => BatchGetUsersRequest.encode({ ids: [t, userId] }).finish(),
        [Code.INVALID_ARGUMENT, Code.NOT_FOUND],
      ],
      [
        AuthServiceService.refreshToken.path,
        (t) => RefreshTokenRequest.encode({ refreshToken: t }).finish(),
        [Code.INVALID_ARGUMENT, Code.UNAUTHENTICATED],
      ],
      [
        AuthServiceService.validateToken.path,
        (t) => ValidateTokenRequest.encode({ accessToken: t }).finish(),
        [Code.INVALID_ARGUMENT, Code.OK],
      ],
      [
        UserServiceService.updateUser.path,
        (t) =>
          UpdateUserRequest.encode({
            user: {
              id: userId,
              email: t,
              displayName: t,
              roles: [t],
              createTime: undefined,
              updateTime: undefined,
            },
            currentPassword: '',
            updateMask: [t],
          }).finish(),
        [Code.INVALID_ARGUMENT, Code.PERMISSION_DENIED],
      ],
    ];
    for (const [path, encode, allowed] of calls) {
      await fc.assert(
        fc.asyncProperty(text, async (t) => {
          const o = await send(path, encode(t));
          expectHandled(o, path);
          expect(allowed, `${path} ${JSON.stringify(t)}: ${Code[o.code]} ${o.details}`).to.include(o.code);
        }),
        { numRuns: 120, seed: 7 },
      );
    }
  });

  it('keeps serving afterwards', async () => {
    const health = healthOf(s.address);
    expect((await health.check({ service: '' })).status).to.equal(1);
    const me = s.client.withToken(token);
    expect((await me.users.getUser({ lookup: { $case: 'id', value: userId } })).id).to.equal(userId);
  });
});
