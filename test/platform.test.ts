import { type DescMessage, fromBinary } from '@bufbuild/protobuf';
import { anyUnpack } from '@bufbuild/protobuf/wkt';
import { credentials } from '@grpc/grpc-js';
import { expect } from 'chai';
import { Code, fieldViolations, promiseClient } from '../src/client.js';
import {
  HealthClient,
  HealthService,
  HealthCheckResponse_ServingStatus as Serving,
} from '../src/gen/health/v1/health.js';
import { ReflectionClient } from './helpers/reflection.js';
import { expectCode, startTestServer, type TestServer } from './helpers/server.js';

const OUR_SERVICES = ['connectsphere.auth.v1.AuthService', 'connectsphere.user.v1.UserService'];

/** Every message type reachable from `message` (what `grpcurl describe` would print). */
function reachable(message: DescMessage, seen = new Set<string>()): Set<string> {
  if (seen.has(message.typeName)) return seen;
  seen.add(message.typeName);
  for (const field of message.fields) {
    if (field.message) reachable(field.message, seen);
  }
  return seen;
}

describe('server reflection and health', () => {
  let s: TestServer;
  let reflection: ReflectionClient;
  before(async () => {
    s = await startTestServer();
    reflection = new ReflectionClient(s.address);
  });
  after(async () => {
    reflection?.close();
    await s?.stop();
  });

  for (const version of ['v1', 'v1alpha'] as const) {
    it(`lists our services and the health service through reflection ${version}`, async () => {
      const client = new ReflectionClient(s.address, version);
      try {
        expect(await client.listServices()).to.include.members([...OUR_SERVICES, 'grpc.health.v1.Health']);
        const registry = await client.registryFor('connectsphere.user.v1.UserService');
        expect(registry.getService('connectsphere.user.v1.UserService')).to.not.equal(undefined);
      } finally {
        client.close();
      }
    });
  }

  it('describes every method and every message they use, well-known types included, as grpcurl resolves them', async () => {
    const described = new Set<string>();
    for (const name of [...OUR_SERVICES, 'grpc.health.v1.Health']) {
      const registry = await reflection.registryFor(name);
      const service = registry.getService(name);
      expect(service, name).to.not.equal(undefined);
      for (const method of service?.methods ?? []) {
        reachable(method.input, described);
        reachable(method.output, described);
      }
    }
    expect([...described]).to.include.members([
      'connectsphere.auth.v1.RegisterRequest',
      'connectsphere.auth.v1.LoginResponse',
      'connectsphere.auth.v1.TokenPair',
      'connectsphere.user.v1.User',
      'connectsphere.user.v1.GetUserRequest',
      'google.protobuf.Timestamp',
      'grpc.health.v1.HealthCheckRequest',
    ]);
  });

  it('serves google.rpc.Status and BadRequest, so a client decodes INVALID_ARGUMENT details from reflection alone', async () => {
    const err = await expectCode(s.client.auth.login({ email: 'bad', password: '' }), Code.INVALID_ARGUMENT);
    const statusRegistry = await reflection.registryFor('google.rpc.Status');
    const detailsRegistry = await reflection.registryFor('google.rpc.BadRequest');
    const StatusDesc = statusRegistry.getMessage('google.rpc.Status') as DescMessage;
    const raw = err.metadata.get('grpc-status-details-bin')[0] as Buffer;
    const status = fromBinary(StatusDesc, raw) as unknown as {
      code: number;
      details: { typeUrl: string; value: Uint8Array }[];
    };
    expect(status.code).to.equal(Code.INVALID_ARGUMENT);
    const detail = status.details[0];
    expect(detail?.typeUrl).to.equal('type.googleapis.com/google.rpc.BadRequest');
    const bad = anyUnpack(detail as never, detailsRegistry) as unknown as {
      fieldViolations: { field: string }[];
    };
    expect(bad.fieldViolations.map((v) => v.field)).to.have.members(['email', 'password']);
    expect(bad.fieldViolations.map((v) => v.field)).to.deep.equal(fieldViolations(err).map((v) => v.field));
  });

  it('reports SERVING overall and for each service, NOT_FOUND for an unknown one', async () => {
    const channel = new HealthClient(s.address, credentials.createInsecure());
    const health = promiseClient(HealthService, channel, { deadlineMs: 5000 });
    try {
      for (const service of ['', ...OUR_SERVICES]) {
        expect((await health.check({ service })).status, service || '(overall)').to.equal(Serving.SERVING);
      }
      await expectCode(health.check({ service: 'no.such.Service' }), Code.NOT_FOUND);
    } finally {
      channel.close();
    }
  });
});
