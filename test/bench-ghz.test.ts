/**
 * The ghz configs of bench/ghz/ (written for ghz v0.121.0), filled as `npm run bench:ghz` fills
 * them, sent to the real server the way ghz sends them: the `call` must be a method the server's
 * reflection serves (ghz finds it there), `data` must decode as its request message through the
 * protobuf JSON mapping with unknown fields refused (as ghz's protojson decoding does; an array is
 * one message per request, round-robin), ghz's template actions rendered, `metadata` sent as
 * metadata, `timeout` as the deadline, and every call must answer OK.
 */
import fs from 'node:fs';
import {
  createFileRegistry,
  type DescMessage,
  fromBinary,
  fromJson,
  type JsonValue,
  toBinary,
} from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { Client, credentials, Metadata } from '@grpc/grpc-js';
import { expect } from 'chai';
import { fillConfig, type GhzConfig, loadConfigs, placeholderValues } from '../bench/ghz.js';
import { ReflectionClient } from './helpers/reflection.js';
import { newAccount, startTestServer, type TestServer } from './helpers/server.js';

const registry = createFileRegistry(
  fromBinary(
    FileDescriptorSetSchema,
    fs.readFileSync(new URL('../src/gen/descriptors.binpb', import.meta.url)),
  ),
);

/** ghz's call template data (www/docs/calldata.md) for the n-th request; any other action fails, as in ghz. */
function render(value: JsonValue, n: number, call: string): JsonValue {
  const [service = '', method = ''] = call.split('/');
  const now = Date.now();
  const data: Record<string, string> = {
    WorkerID: 'g1c0',
    RequestNumber: String(n),
    FullyQualifiedName: call.replace('/', '.'),
    MethodName: method,
    ServiceName: service,
    Timestamp: new Date(now).toISOString(),
    TimestampUnix: String(Math.floor(now / 1000)),
    TimestampUnixMilli: String(now),
    TimestampUnixNano: `${now}000000`,
    UUID: crypto.randomUUID(),
  };
  if (typeof value === 'string')
    return value.replace(/\{\{\s*([^}]*?)\s*\}\}/g, (_, action: string) => {
      const field = /^\.(\w+)$/.exec(action)?.[1];
      if (!field || !(field in data)) throw new Error(`template action {{${action}}} is not ghz call data`);
      return data[field] as string;
    });
  if (Array.isArray(value)) return value.map((v) => render(v, n, call));
  if (value && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, render(v as JsonValue, n, call)]));
  return value;
}

const goDuration = (d: string) => {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(d);
  if (!m) throw new Error(`not a Go duration: ${d}`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000 }[m[2] as 'ms' | 's' | 'm'];
};

function unary(channel: Client, path: string, request: Buffer, metadata: Metadata, deadlineMs: number) {
  return new Promise<Buffer>((resolve, reject) =>
    channel.makeUnaryRequest(
      path,
      (b: Buffer) => b,
      (b: Buffer) => b,
      request,
      metadata,
      { deadline: Date.now() + deadlineMs },
      (err, res) => (err ? reject(new Error(`${path}: ${err.code} ${err.details}`)) : resolve(res as Buffer)),
    ),
  );
}

describe('bench/ghz configs, sent to the real server as ghz sends them', () => {
  const configs = loadConfigs();
  let s: TestServer;
  let reflection: ReflectionClient;
  let values: Record<string, unknown>;
  before(async function () {
    this.timeout(60_000);
    s = await startTestServer();
    for (let i = 0; i < 3; i++) await s.client.auth.register(newAccount('ghz'));
    values = await placeholderValues(s.client, configs);
    reflection = new ReflectionClient(s.address);
  });
  after(async () => {
    reflection?.close();
    await s?.stop();
  });

  it('has one config per scenario ghz can drive', () => {
    expect([...configs.keys()]).to.have.members([
      'batch-get-users',
      'get-user-by-email',
      'get-user-by-id',
      'list-users',
      'login',
      'refresh-token',
      'register',
      'validate-token',
    ]);
  });

  for (const [name, raw] of configs) {
    it(`${name}: ${raw.call} answers OK to every request the config describes`, async function () {
      this.timeout(30_000);
      const config = fillConfig(raw, values) as GhzConfig & {
        insecure?: boolean;
        timeout?: string;
        total?: number;
      };
      expect(config.insecure, 'plaintext, as the server serves').to.equal(true);
      const [service = '', method] = config.call.split('/');
      expect(await reflection.listServices()).to.include(service);
      const desc = (await reflection.registryFor(service))
        .getService(service)
        ?.methods.find((m) => m.name === method);
      expect(desc, `${config.call} served by reflection`).to.not.equal(undefined);
      const input = registry.getMessage(desc?.input.typeName ?? '') as DescMessage;
      const output = registry.getMessage(desc?.output.typeName ?? '') as DescMessage;
      const messages = (Array.isArray(config.data) ? config.data : [config.data]) as JsonValue[];
      // an array is used round-robin: with `total`, fewer messages would send one twice (a refresh-token replay)
      if (Array.isArray(config.data) && config.total) expect(messages.length).to.be.at.least(config.total);
      const channel = new Client(s.address, credentials.createInsecure());
      try {
        for (const [i, data] of messages.entries()) {
          const request = fromJson(input, render(data, i + 1, config.call), { ignoreUnknownFields: false });
          const metadata = new Metadata();
          for (const [k, v] of Object.entries(
            render((config.metadata ?? {}) as JsonValue, i + 1, config.call) as object,
          ))
            metadata.set(k, String(v));
          const answer = await unary(
            channel,
            `/${config.call}`,
            Buffer.from(toBinary(input, request)),
            metadata,
            goDuration(config.timeout ?? '20s'),
          );
          fromBinary(output, answer);
        }
      } finally {
        channel.close();
      }
    });
  }

  it('refuses data with a field the request message does not have, as ghz does', () => {
    const input = registry.getMessage('connectsphere.user.v1.GetUserRequest') as DescMessage;
    expect(() => fromJson(input, { id: 'x', user_id: 'y' })).to.throw(/user_id/);
    expect(() => render('{{.Uuid}}', 1, 'a.B/C')).to.throw(/not ghz call data/);
  });

  it('fills whole-value placeholders with any JSON value and embedded ones as text', () => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: ghz config placeholders, not JavaScript templates
    const config = { data: '${REFRESH_TOKENS}', metadata: { authorization: 'Bearer ${TOKEN}' } };
    expect(fillConfig(config, { REFRESH_TOKENS: [{ refresh_token: 'r' }], TOKEN: 't' })).to.deep.equal({
      data: [{ refresh_token: 'r' }],
      metadata: { authorization: 'Bearer t' },
    });
  });
});
