/**
 * A strict server-reflection client that resolves descriptors the way grpcurl does: it fetches the
 * file containing a symbol, then every import by its file name, and links them with
 * @bufbuild/protobuf's createFileRegistry, which fails on a missing import, an unresolved or relative
 * type name, or a made-up file name (the failure modes of grpc-node issue 2958).
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { createFileRegistry, type FileRegistry, fromBinary } from '@bufbuild/protobuf';
import { type FileDescriptorProto, FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import {
  type ChannelCredentials,
  credentials,
  type GrpcObject,
  loadPackageDefinition,
  type ServiceClientConstructor,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

const require = createRequire(import.meta.url);
const protoRoot = path.join(path.dirname(require.resolve('@grpc/reflection/package.json')), 'build', 'proto');

interface ReflectionResponse {
  list_services_response?: { service: { name: string }[] };
  file_descriptor_response?: { file_descriptor_proto: Buffer[] };
  error_response?: { error_code: number; error_message: string };
}

export class ReflectionClient {
  private readonly client: InstanceType<ServiceClientConstructor>;

  constructor(
    address: string,
    readonly version: 'v1' | 'v1alpha' = 'v1',
    channelCredentials: ChannelCredentials = credentials.createInsecure(),
  ) {
    const def = loadSync(`grpc/reflection/${version}/reflection.proto`, {
      includeDirs: [protoRoot],
      keepCase: true,
    });
    const pkg = loadPackageDefinition(def) as unknown as { grpc: { reflection: Record<string, GrpcObject> } };
    const Ctor = pkg.grpc.reflection[version]?.ServerReflection as unknown as ServiceClientConstructor;
    this.client = new Ctor(address, channelCredentials);
  }

  close(): void {
    this.client.close();
  }

  private ask(request: Record<string, unknown>): Promise<ReflectionResponse> {
    return new Promise((resolve, reject) => {
      const call = (
        this.client as unknown as { ServerReflectionInfo: () => NodeJS.ReadWriteStream }
      ).ServerReflectionInfo();
      call.on('data', (msg: ReflectionResponse) => {
        resolve(msg);
        call.end();
      });
      call.on('error', reject);
      call.write(request as never);
    });
  }

  async listServices(): Promise<string[]> {
    const res = await this.ask({ list_services: '*' });
    return res.list_services_response?.service.map((s) => s.name) ?? [];
  }

  private async files(request: Record<string, unknown>): Promise<FileDescriptorProto[]> {
    const res = await this.ask(request);
    if (res.error_response)
      throw new Error(
        `reflection error ${res.error_response.error_code}: ${res.error_response.error_message}`,
      );
    return (res.file_descriptor_response?.file_descriptor_proto ?? []).map((b) =>
      fromBinary(FileDescriptorProtoSchema, b),
    );
  }

  /** Every file needed to describe `symbol`, fetched as grpcurl would, linked strictly. */
  async registryFor(symbol: string): Promise<FileRegistry> {
    const byName = new Map<string, FileDescriptorProto>();
    const [first, ...rest] = await this.files({ file_containing_symbol: symbol });
    if (!first) throw new Error(`no file contains ${symbol}`);
    for (const f of [first, ...rest]) byName.set(f.name, f);
    const pending = [...first.dependency];
    while (pending.length) {
      const name = pending.pop() as string;
      if (byName.has(name)) continue;
      const [file] = await this.files({ file_by_filename: name });
      if (!file || file.name !== name) throw new Error(`reflection does not serve imported file ${name}`);
      byName.set(name, file);
      pending.push(...file.dependency);
    }
    return createFileRegistry(first, (name) => byName.get(name));
  }
}
