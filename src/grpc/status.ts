/**
 * The one error → gRPC status table. Domain errors keep their message; INVALID_ARGUMENT also
 * carries a google.rpc.Status with google.rpc.BadRequest field violations in the
 * `grpc-status-details-bin` trailer. Anything unexpected is logged with its stack under an error
 * id and reaches the caller as INTERNAL with only that id.
 *
 * Every answer is bounded, whatever the request: the message (`grpc-message`, percent-encoded on the
 * wire) at most MESSAGE_MAX_BYTES, the details trailer at most DETAILS_MAX_BYTES (violations are
 * dropped from the end until it fits). An unbounded trailer once made grpc-js drop the answer and
 * stall the connection's next call.
 */
import { randomUUID } from 'node:crypto';
import { status as Code, Metadata, type StatusObject } from '@grpc/grpc-js';
import { AppError, type ErrorKind, type FieldViolation, InvalidArgumentError } from '../errors.js';
import { BadRequest, RetryInfo } from '../gen/google/rpc/error_details.js';
import { Status } from '../gen/google/rpc/status.js';
import type { Logger } from '../logger.js';

const CODE_OF: Record<ErrorKind, Code> = {
  INVALID_ARGUMENT: Code.INVALID_ARGUMENT,
  UNAUTHENTICATED: Code.UNAUTHENTICATED,
  PERMISSION_DENIED: Code.PERMISSION_DENIED,
  NOT_FOUND: Code.NOT_FOUND,
  ALREADY_EXISTS: Code.ALREADY_EXISTS,
  RESOURCE_EXHAUSTED: Code.RESOURCE_EXHAUSTED,
  FAILED_PRECONDITION: Code.FAILED_PRECONDITION,
  UNAVAILABLE: Code.UNAVAILABLE,
  DEADLINE_EXCEEDED: Code.DEADLINE_EXCEEDED,
  CANCELLED: Code.CANCELLED,
};

export const BAD_REQUEST_TYPE_URL = 'type.googleapis.com/google.rpc.BadRequest';
export const RETRY_INFO_TYPE_URL = 'type.googleapis.com/google.rpc.RetryInfo';
export const STATUS_DETAILS_KEY = 'grpc-status-details-bin';

/** The most bytes of a status message on the wire (`grpc-message`, percent-encoded). */
export const MESSAGE_MAX_BYTES = 1024;
/** The most bytes of the encoded google.rpc.Status in `grpc-status-details-bin` (before base64). */
export const DETAILS_MAX_BYTES = 4096;
const CUT = '…';

/** Bytes a character takes in `grpc-message`: grpc-js percent-encodes all but printable ASCII and `%`. */
const wireBytes = (ch: string) => {
  const c = ch.codePointAt(0) ?? 0;
  return c >= 0x20 && c <= 0x7e && c !== 0x25 ? 1 : 3 * Buffer.byteLength(ch);
};

/** `message` cut (marked `…`) so that its percent-encoded form fits in `max` bytes. */
export function boundMessage(message: string, max = MESSAGE_MAX_BYTES): string {
  if (message.length * 9 <= max) return message; // even all-encoded it fits
  let total = 0;
  for (const ch of message) total += wireBytes(ch);
  if (total <= max) return message;
  const room = max - wireBytes(CUT);
  let used = 0;
  let out = '';
  for (const ch of message) {
    const n = wireBytes(ch);
    if (used + n > room) break;
    used += n;
    out += ch;
  }
  return out + CUT;
}

const cutText = (text: string, max: number) => (text.length > max ? `${text.slice(0, max)}${CUT}` : text);

/** google.rpc.Status with BadRequest, at most `max` bytes: violations dropped from the end until it fits. */
export function badRequestDetails(message: string, violations: FieldViolation[], max = DETAILS_MAX_BYTES) {
  const encode = (list: FieldViolation[], text: string) =>
    Status.encode({
      code: Code.INVALID_ARGUMENT,
      message: text,
      details: [
        {
          typeUrl: BAD_REQUEST_TYPE_URL,
          value: Buffer.from(
            BadRequest.encode({
              fieldViolations: list.map((v) => ({ ...v, reason: '', localizedMessage: undefined })),
            }).finish(),
          ),
        },
      ],
    }).finish();
  let list = violations;
  let text = message;
  let details = encode(list, text);
  while (details.length > max && list.length > 1) {
    const kept = list.slice(0, -2);
    const more = violations.length - kept.length;
    const field = violations[kept.length]?.field ?? 'request';
    list = [...kept, { field, description: `… and ${more} more violation(s) not shown` }];
    details = encode(list, text);
  }
  if (details.length > max) {
    // one violation too long on its own (never from our rules): cut its text and the message
    const room = Math.floor(max / 4);
    text = cutText(text, room);
    list = list.map((v) => ({ field: cutText(v.field, room), description: cutText(v.description, room) }));
    details = encode(list, text);
  }
  return Buffer.from(details);
}

export function toStatus(err: unknown, logger: Logger): StatusObject {
  const status = unboundedStatus(err, logger);
  return { ...status, details: boundMessage(status.details) };
}

function unboundedStatus(err: unknown, logger: Logger): StatusObject {
  const metadata = new Metadata();
  if (err instanceof InvalidArgumentError) {
    const message = boundMessage(err.message);
    metadata.set(STATUS_DETAILS_KEY, badRequestDetails(message, err.violations));
    return { code: Code.INVALID_ARGUMENT, details: message, metadata };
  }
  if (err instanceof AppError) {
    if (err.kind === 'UNAVAILABLE' && err.cause) {
      logger.warn({ err: err.cause }, err.message);
    }
    const code = CODE_OF[err.kind];
    if (err.retryAfterS !== undefined) {
      const retry = RetryInfo.encode({ retryDelay: { seconds: err.retryAfterS, nanos: 0 } }).finish();
      const details = Status.encode({
        code,
        message: boundMessage(err.message),
        details: [{ typeUrl: RETRY_INFO_TYPE_URL, value: Buffer.from(retry) }],
      }).finish();
      metadata.set(STATUS_DETAILS_KEY, Buffer.from(details));
    }
    return { code, details: err.message, metadata };
  }
  const errorId = randomUUID();
  logger.error({ err, errorId }, 'unexpected error');
  return { code: Code.INTERNAL, details: `internal error (id ${errorId})`, metadata };
}
