/**
 * Strict request decoding. grpc-js answers a deserializer that throws with INTERNAL, and the
 * generated decoders are lenient (a known field with the wrong wire type is skipped, invalid UTF-8
 * becomes U+FFFD). So before the generated decoder runs, the bytes are walked against the message's
 * descriptor (from the descriptor set reflection serves): a malformed message, a known field with the
 * wrong wire type, or invalid UTF-8 in a string field makes the request a `DecodeFailure`, which the
 * adapter answers with INVALID_ARGUMENT. Unknown fields are skipped, as proto3 requires for
 * compatibility with newer clients.
 */
import fs from 'node:fs';
import {
  createFileRegistry,
  type DescField,
  type DescMessage,
  fromBinary,
  ScalarType,
} from '@bufbuild/protobuf';
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import type { ServiceDefinition } from '@grpc/grpc-js';
import { DESCRIPTOR_SET_URL } from './reflection.js';

export class DecodeFailure {
  constructor(
    /** Full name of the expected message. */
    readonly typeName: string,
    /** Proto field path of the problem, or '' for the message as a whole. */
    readonly field: string,
    readonly reason: string,
  ) {}
}

const MAX_DEPTH = 32;
const utf8 = new TextDecoder('utf-8', { fatal: true });

function scalarWireType(t: ScalarType): WireType {
  switch (t) {
    case ScalarType.STRING:
    case ScalarType.BYTES:
      return WireType.LengthDelimited;
    case ScalarType.DOUBLE:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return WireType.Bit64;
    case ScalarType.FLOAT:
    case ScalarType.FIXED32:
    case ScalarType.SFIXED32:
      return WireType.Bit32;
    default:
      return WireType.Varint;
  }
}

class WireError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

function checkField(
  reader: BinaryReader,
  field: DescField,
  wireType: WireType,
  path: string,
  depth: number,
): void {
  const name = path ? `${path}.${field.name}` : field.name;
  const wrong = () => new WireError(name, `field ${name} has the wrong wire type`);
  const message =
    field.fieldKind === 'message' || (field.fieldKind === 'list' && field.listKind === 'message');
  if (message) {
    if (wireType !== WireType.LengthDelimited) throw wrong();
    const desc = field.message as DescMessage;
    checkMessage(reader.bytes(), desc, name, depth + 1);
    return;
  }
  if (field.fieldKind === 'map') {
    if (wireType !== WireType.LengthDelimited) throw wrong();
    reader.skip(wireType);
    return;
  }
  const scalar =
    field.fieldKind === 'enum' || (field.fieldKind === 'list' && field.listKind === 'enum')
      ? ScalarType.INT32
      : (field.scalar as ScalarType);
  const expected = scalarWireType(scalar);
  const packable = field.fieldKind === 'list' && expected !== WireType.LengthDelimited;
  if (wireType !== expected && !(packable && wireType === WireType.LengthDelimited)) throw wrong();
  if (scalar === ScalarType.STRING) {
    try {
      utf8.decode(reader.bytes());
    } catch {
      throw new WireError(name, `field ${name} is not valid UTF-8`);
    }
    return;
  }
  reader.skip(wireType);
}

/** Fields by number, built once per message type (not on every request). */
const fieldsByNumber = new WeakMap<DescMessage, Map<number, DescField>>();
function fieldOf(desc: DescMessage, fieldNo: number): DescField | undefined {
  let byNumber = fieldsByNumber.get(desc);
  if (!byNumber) {
    byNumber = new Map(desc.fields.map((f) => [f.number, f]));
    fieldsByNumber.set(desc, byNumber);
  }
  return byNumber.get(fieldNo);
}

function checkMessage(bytes: Uint8Array, desc: DescMessage, path: string, depth: number): void {
  if (depth > MAX_DEPTH) throw new WireError(path, 'the message is nested too deeply');
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [fieldNo, wireType] = reader.tag();
    if (wireType === WireType.StartGroup || wireType === WireType.EndGroup || wireType > WireType.Bit32) {
      throw new WireError(path, `unsupported wire type ${wireType}`);
    }
    const field = fieldOf(desc, fieldNo);
    if (field) checkField(reader, field, wireType, path, depth);
    else reader.skip(wireType);
  }
  if (reader.pos !== reader.len) throw new WireError(path, 'the message is truncated');
}

/** Returns a copy of `definition` whose request deserializers never throw. */
export function createStrictDecoding() {
  const registry = createFileRegistry(
    fromBinary(FileDescriptorSetSchema, fs.readFileSync(DESCRIPTOR_SET_URL)),
  );

  return function strict<S extends ServiceDefinition>(serviceName: string, definition: S): S {
    const service = registry.getService(serviceName);
    if (!service) throw new Error(`service ${serviceName} is not in the descriptor set`);
    const out: Record<string, unknown> = {};
    for (const [key, method] of Object.entries(definition)) {
      const desc = service.methods.find((m) => `/${serviceName}/${m.name}` === method.path)?.input;
      if (!desc) throw new Error(`method ${method.path} is not in the descriptor set`);
      out[key] = {
        ...method,
        requestDeserialize: (bytes: Buffer) => {
          try {
            checkMessage(bytes, desc, '', 0);
            return method.requestDeserialize(bytes);
          } catch (err) {
            const field = err instanceof WireError ? err.field : '';
            const reason = err instanceof WireError ? err.message : 'the message is malformed';
            return new DecodeFailure(desc.typeName, field, reason);
          }
        },
      };
    }
    return out as S;
  };
}
