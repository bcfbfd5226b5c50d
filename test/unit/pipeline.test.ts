import { status as Code, Metadata } from '@grpc/grpc-js';
import { expect } from 'chai';
import type { ServiceCaller, UserCaller } from '../../src/caller.js';
import { BAD_ACCESS_TOKEN, notFound, unauthenticated } from '../../src/errors.js';
import { type CallContext, compose, type Middleware, StatusError } from '../../src/grpc/context.js';
import { DecodeFailure } from '../../src/grpc/decoding.js';
import { authenticate } from '../../src/grpc/middleware/authenticate.js';
import { rejectUndecodable } from '../../src/grpc/middleware/decode.js';
import { proveLiveness } from '../../src/grpc/middleware/liveness.js';
import { logCalls } from '../../src/grpc/middleware/log.js';
import { identifyRequest, traceIdOf } from '../../src/grpc/middleware/request-id.js';
import { mapErrors } from '../../src/grpc/middleware/status.js';
import type { CallPolicy } from '../../src/grpc/policy.js';
import { createLogger } from '../../src/logger.js';
import type { Authenticator } from '../../src/security/authenticator.js';

const ada: UserCaller = { kind: 'user', userId: 'u1', sessionId: 's1', email: 'ada@x.io', roles: ['user'] };
const billing: ServiceCaller = {
  kind: 'service',
  serviceId: 's-1',
  name: 'billing',
  scopes: ['users.read'],
  via: 'token',
};

/** Tokens "good" and "stale" name users (only "good"'s session is live); "svc" names a service account;
 * the certificate name "billing.service" names it too. */
function fakeAuthenticator() {
  const checks: string[] = [];
  const authenticator: Authenticator = {
    async verify(token) {
      if (token === 'svc') return billing;
      if (token !== 'good' && token !== 'stale') throw unauthenticated(BAD_ACCESS_TOKEN);
      return { ...ada, sessionId: token };
    },
    async live(caller) {
      if (caller.kind === 'service') {
        checks.push(caller.name);
        return caller;
      }
      checks.push(caller.sessionId);
      if (caller.sessionId !== 'good') throw unauthenticated(BAD_ACCESS_TOKEN);
      return { ...caller, roles: ['user', 'admin'] };
    },
    async fromCertificate({ names }) {
      if (!names.includes('billing.service')) throw unauthenticated('no service account');
      return { ...billing, via: 'certificate' };
    },
  };
  return { authenticator, checks };
}

function context(policy: CallPolicy, token?: string, request: unknown = {}): CallContext {
  const metadata = new Metadata();
  if (token) metadata.set('authorization', `Bearer ${token}`);
  return {
    method: { path: '/x.v1.S/M', policy },
    request,
    metadata,
    signal: new AbortController().signal,
    peer: '127.0.0.1:5000',
    clientAddress: '127.0.0.1',
    clientSource: '127.0.0.1',
    certificate: undefined,
    caller: undefined,
    live: true,
    requestId: '',
    traceId: undefined,
    responseMetadata: new Metadata(),
  };
}

const PUBLIC: CallPolicy = { auth: 'public' };
const CHECKED: CallPolicy = { auth: 'bearer', session: 'checked' };
const IN_HANDLER: CallPolicy = { auth: 'bearer', session: 'in-handler' };

async function outcome(run: Promise<unknown>) {
  try {
    return { code: Code.OK, value: await run };
  } catch (err) {
    if (err instanceof StatusError) return { code: err.status.code, details: err.status.details };
    throw err;
  }
}

describe('call pipeline (middleware steps)', () => {
  const logger = createLogger('silent');

  it('runs the steps outermost first around the handler', async () => {
    const order: string[] = [];
    const step =
      (name: string): Middleware =>
      async (_ctx, next) => {
        order.push(`${name} in`);
        const r = await next();
        order.push(`${name} out`);
        return r;
      };
    const run = compose([step('a'), step('b')], async () => {
      order.push('handler');
      return 'done';
    });
    expect(await run(context(PUBLIC))).to.equal('done');
    expect(order).to.deep.equal(['a in', 'b in', 'handler', 'b out', 'a out']);
  });

  it('passes public methods without credentials and refuses bearer ones without a valid token', async () => {
    const { authenticator } = fakeAuthenticator();
    const run = compose(
      [mapErrors(logger), authenticate(authenticator, { introspectionRequired: false })],
      async (ctx) => ctx.caller ?? 'anonymous',
    );
    expect((await outcome(run(context(PUBLIC)))).value).to.equal('anonymous');
    expect(await outcome(run(context(CHECKED)))).to.deep.include({ code: Code.UNAUTHENTICATED });
    expect((await outcome(run(context(CHECKED, 'forged')))).details).to.equal(BAD_ACCESS_TOKEN);
    const malformed = context(CHECKED);
    malformed.metadata.set('authorization', 'Basic abc');
    expect((await outcome(run(malformed))).details).to.match(/malformed authorization/);
  });

  it('gives checked methods the caller with its current roles, after one session check', async () => {
    const { authenticator, checks } = fakeAuthenticator();
    const run = compose(
      [
        mapErrors(logger),
        authenticate(authenticator, { introspectionRequired: false }),
        proveLiveness(authenticator),
      ],
      async (ctx) => ctx.caller,
    );
    expect(((await outcome(run(context(CHECKED, 'good')))).value as UserCaller).roles).to.deep.equal([
      'user',
      'admin',
    ]);
    expect(checks).to.deep.equal(['good']);
    expect((await outcome(run(context(CHECKED, 'stale')))).code).to.equal(Code.UNAUTHENTICATED);
  });

  it('for in-handler methods, skips the check when the handler confirms, and checks before answering when it does not', async () => {
    const { authenticator, checks } = fakeAuthenticator();
    const steps = [
      mapErrors(logger),
      authenticate(authenticator, { introspectionRequired: false }),
      proveLiveness(authenticator),
    ];
    const confirming = compose(steps, async (ctx) => {
      ctx.live = true;
      return 'data';
    });
    expect((await outcome(confirming(context(IN_HANDLER, 'stale')))).value).to.equal('data');
    expect(checks, 'the handler proved it').to.deep.equal([]);
    const forgetful = compose(steps, async () => 'data');
    expect(
      (await outcome(forgetful(context(IN_HANDLER, 'stale')))).code,
      'no data for a dead session',
    ).to.equal(Code.UNAUTHENTICATED);
    const notFoundAnswer = compose(steps, async () => {
      throw notFound('no such user');
    });
    expect((await outcome(notFoundAnswer(context(IN_HANDLER, 'stale')))).code, 'not even NOT_FOUND').to.equal(
      Code.UNAUTHENTICATED,
    );
    expect((await outcome(notFoundAnswer(context(IN_HANDLER, 'good')))).code).to.equal(Code.NOT_FOUND);
  });

  it('answers an undecodable request with INVALID_ARGUMENT naming the field, before authentication', async () => {
    const { authenticator, checks } = fakeAuthenticator();
    const run = compose(
      [mapErrors(logger), rejectUndecodable, authenticate(authenticator, { introspectionRequired: false })],
      async () => 'ran',
    );
    const bad = context(
      CHECKED,
      'good',
      new DecodeFailure('x.v1.Req', 'user.email', 'field user.email is not valid UTF-8'),
    );
    const o = await outcome(run(bad));
    expect(o.code).to.equal(Code.INVALID_ARGUMENT);
    expect(o.details).to.match(/^user\.email: not a valid x\.v1\.Req/);
    expect(checks).to.deep.equal([]);
  });

  it('maps a call whose caller has gone to CANCELLED, and logs one line with the final code', async () => {
    const lines: string[] = [];
    const sink = createLogger('info', { write: (l: string) => void lines.push(l) });
    const controller = new AbortController();
    const ctx = { ...context(PUBLIC), signal: controller.signal };
    const run = compose([logCalls(sink), mapErrors(sink)], async () => {
      controller.abort();
      throw new Error('the query was cut off');
    });
    expect((await outcome(run(ctx))).code).to.equal(Code.CANCELLED);
    expect(lines).to.have.length(1);
    expect(JSON.parse(lines[0] as string)).to.include({ method: '/x.v1.S/M', code: 'CANCELLED', msg: 'rpc' });
  });
});

describe('call pipeline: service accounts and introspection', () => {
  const logger = createLogger('silent');
  const run = (policy: CallPolicy, token?: string, names: string[] = [], introspectionRequired = false) => {
    const { authenticator } = fakeAuthenticator();
    const composed = compose(
      [mapErrors(logger), authenticate(authenticator, { introspectionRequired })],
      async (ctx) => ctx.caller,
    );
    return outcome(
      composed({
        ...context(policy, token),
        certificate: names.length ? { names, clientAuth: true } : undefined,
      }),
    );
  };
  const READ: CallPolicy = { auth: 'bearer', session: 'checked', services: ['users.read'] };
  const INTRO: CallPolicy = { auth: 'introspection' };

  it('lets a service account in only where the policy names one of its scopes', async () => {
    expect(((await run(READ, 'svc')).value as ServiceCaller).name).to.equal('billing');
    expect((await run(CHECKED, 'svc')).code, 'a user-only method').to.equal(Code.PERMISSION_DENIED);
    const other: CallPolicy = { auth: 'bearer', session: 'checked', services: ['users.read.private'] };
    expect((await run(other, 'svc')).details).to.match(/needs one of the scopes users\.read\.private/);
  });

  it('takes a verified client certificate for a service account, and a token before it', async () => {
    expect(((await run(READ, undefined, ['billing.service'])).value as ServiceCaller).via).to.equal(
      'certificate',
    );
    expect(
      ((await run(READ, 'good', ['billing.service'])).value as UserCaller).kind,
      'the token wins',
    ).to.equal('user');
    expect((await run(READ, undefined, ['stranger.example'])).code).to.equal(Code.UNAUTHENTICATED);
  });

  it('answers introspection for anyone by default, and only to tokens.introspect when required', async () => {
    expect((await run(INTRO)).code).to.equal(Code.OK);
    expect((await run(INTRO, undefined, [], true)).code).to.equal(Code.UNAUTHENTICATED);
    expect((await run(INTRO, 'good', [], true)).code, 'a user').to.equal(Code.UNAUTHENTICATED);
    expect((await run(INTRO, 'svc', [], true)).code, 'billing lacks the scope').to.equal(
      Code.UNAUTHENTICATED,
    );
  });
});

describe('call pipeline: request ids', () => {
  const run = (ctx: CallContext, lines: string[], scopeLogs = true) => {
    const logger = createLogger('info', { write: (l: string) => void lines.push(l) });
    return compose([identifyRequest({ scopeLogs }), logCalls(logger), mapErrors(logger)], async () => {
      logger.warn('a line from deep inside the call');
      throw new Error('a bug');
    })(ctx).catch(() => {});
  };

  it('keeps a well-formed x-request-id, sends it back, and with scopeLogs puts it in every line of the call', async () => {
    const ctx = context(PUBLIC);
    ctx.metadata.set('x-request-id', 'req-42:a.b_c');
    ctx.metadata.set('traceparent', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
    const lines: string[] = [];
    await run(ctx, lines);
    expect(ctx.responseMetadata.get('x-request-id')).to.deep.equal(['req-42:a.b_c']);
    expect(lines).to.have.length(3); // the deep line, the unexpected error, the rpc line
    for (const line of lines) {
      expect(JSON.parse(line)).to.include({
        request_id: 'req-42:a.b_c',
        trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
      });
    }
  });

  it('without scopeLogs still puts the ids in the lines the call itself writes (the rpc line, an error)', async () => {
    const ctx = context(PUBLIC);
    ctx.metadata.set('x-request-id', 'req-43');
    const lines: string[] = [];
    await run(ctx, lines, false);
    const parsed = lines.map((l) => JSON.parse(l) as { msg: string; request_id?: string });
    expect(
      parsed.filter((l) => l.msg !== 'a line from deep inside the call').map((l) => l.request_id),
    ).to.deep.equal(['req-43', 'req-43']);
    expect(parsed.find((l) => l.msg === 'a line from deep inside the call')?.request_id).to.equal(undefined);
  });

  it('replaces a request id that is too long or has other characters with a new UUID', async () => {
    for (const bad of ['x'.repeat(129), 'has space', 'semi;colon', 'a/b', 'a@b', '']) {
      const ctx = context(PUBLIC);
      ctx.metadata.set('x-request-id', bad);
      const lines: string[] = [];
      await run(ctx, lines);
      const sent = String(ctx.responseMetadata.get('x-request-id')[0]);
      expect(sent, bad).to.match(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(JSON.parse(lines[0] as string).request_id).to.equal(sent);
    }
    const ctx = context(PUBLIC);
    ctx.metadata.set('x-request-id', 'y'.repeat(128)); // the longest accepted
    await run(ctx, []);
    expect(ctx.responseMetadata.get('x-request-id')).to.deep.equal(['y'.repeat(128)]);
  });

  it('logs the trace id of a valid traceparent only', () => {
    const trace = '4bf92f3577b34da6a3ce929d0e0e4736';
    expect(traceIdOf(`00-${trace}-00f067aa0ba902b7-01`)).to.equal(trace);
    expect(traceIdOf(`01-${trace}-00f067aa0ba902b7-01-later-fields`)).to.equal(trace);
    for (const bad of [
      `ff-${trace}-00f067aa0ba902b7-01`, // version ff is invalid
      `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`, // all-zero trace id
      `00-${trace}-${'0'.repeat(16)}-01`, // all-zero parent id
      `00-${trace.toUpperCase()}-00f067aa0ba902b7-01`, // upper case is not allowed
      `00-${trace}-00f067aa0ba902b7-01-extra`, // version 00 has exactly four fields
      'garbage',
      undefined,
    ]) {
      expect(traceIdOf(bad), String(bad)).to.equal(undefined);
    }
  });

  it("logs the client address and the subject's id, never its email", async () => {
    const lines: string[] = [];
    const logger = createLogger('info', { write: (l: string) => void lines.push(l) });
    const ctx = context(PUBLIC);
    await compose([logCalls(logger)], async (c) => {
      c.caller = ada;
      return {};
    })(ctx);
    const line = JSON.parse(lines[0] as string);
    expect(line).to.include({ client_address: '127.0.0.1', subject: 'user:u1' });
    expect(lines[0]).to.not.include(ada.email);
  });
});
