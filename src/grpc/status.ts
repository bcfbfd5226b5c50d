/**
 * The one error → gRPC status table. Domain errors keep their message; INVALID_ARGUMENT also
 * carries a google.rpc.Status with google.rpc.BadRequest field violations in the
 * `grpc-status-details-bin` trailer. Anything unexpected is logged with its stack under an error
 * id and reaches the caller as INTERNAL with only that id.
 */
import { randomUUID } from 'node:crypto';
import { status as Code, Metadata, type StatusObject } from '@grpc/grpc-js';
import { AppError, type ErrorKind, InvalidArgumentError } from '../errors.js';
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

export function toStatus(err: unknown, logger: Logger): StatusObject {
  const metadata = new Metadata();
  if (err instanceof InvalidArgumentError) {
    const details = Status.encode({
      code: Code.INVALID_ARGUMENT,
      message: err.message,
      details: [
        {
          typeUrl: BAD_REQUEST_TYPE_URL,
          value: Buffer.from(
            BadRequest.encode({
              fieldViolations: err.violations.map((v) => ({ ...v, reason: '', localizedMessage: undefined })),
            }).finish(),
          ),
        },
      ],
    }).finish();
    metadata.set(STATUS_DETAILS_KEY, Buffer.from(details));
    return { code: Code.INVALID_ARGUMENT, details: err.message, metadata };
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
        message: err.message,
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
