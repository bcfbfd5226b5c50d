/**
 * Server reflection (v1 and v1alpha) for grpcurl and friends, serving the descriptor set that
 * `npm run gen` builds with buf (src/gen/descriptors.binpb) byte for byte.
 *
 * Why not a proto-loader package definition: @grpc/reflection serves the `fileDescriptorProtos`
 * of the definition it is given, and proto-loader re-synthesises those from protobufjs objects,
 * with made-up file names, no imports and relative type names, both when it loads .proto files
 * (grpc-node issue 2958) and when it loads a descriptor set. grpcurl then cannot resolve
 * google.protobuf.Timestamp or any type from another file. So we hand it the original
 * FileDescriptorProtos, one per file, exactly as buf compiled them.
 */
import fs from 'node:fs';
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { ReflectionService } from '@grpc/reflection';

type PackageDefinition = ConstructorParameters<typeof ReflectionService>[0];

export const DESCRIPTOR_SET_URL = new URL('../gen/descriptors.binpb', import.meta.url);

/** One FileDescriptorProto (serialized) per .proto file of the descriptor set. */
export function loadFileDescriptorProtos(url: URL = DESCRIPTOR_SET_URL): Buffer[] {
  const set = fromBinary(FileDescriptorSetSchema, fs.readFileSync(url));
  return set.file.map((file) => Buffer.from(toBinary(FileDescriptorProtoSchema, file)));
}

export function createReflectionService(): ReflectionService {
  // ReflectionService reads only `fileDescriptorProtos` from each entry of the definition.
  const definition: PackageDefinition = {
    'connectsphere.descriptors': {
      format: 'Protocol Buffer 3 DescriptorProto',
      type: {},
      fileDescriptorProtos: loadFileDescriptorProtos(),
    },
  };
  return new ReflectionService(definition);
}
