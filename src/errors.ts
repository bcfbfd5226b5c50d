/**
 * Domain errors. Services throw these; the gRPC layer maps each kind to one status code
 * (src/grpc/status.ts). Messages are shown to callers as they are, so they must help and leak nothing.
 */

export interface FieldViolation {
  /** The request field, as a proto field path (e.g. `email`, `user.display_name`). */
  field: string;
  description: string;
}

export type ErrorKind =
  | 'INVALID_ARGUMENT'
  | 'UNAUTHENTICATED'
  | 'PERMISSION_DENIED'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'RESOURCE_EXHAUSTED'
  | 'FAILED_PRECONDITION'
  | 'UNAVAILABLE'
  | 'DEADLINE_EXCEEDED'
  | 'CANCELLED';

export class AppError extends Error {
  /** For RESOURCE_EXHAUSTED from throttling: seconds until a retry can succeed (sent as google.rpc.RetryInfo). */
  readonly retryAfterS: number | undefined;
  constructor(
    readonly kind: ErrorKind,
    message: string,
    options?: ErrorOptions & { retryAfterS?: number },
  ) {
    super(message, options);
    this.name = 'AppError';
    this.retryAfterS = options?.retryAfterS;
  }
}

export class InvalidArgumentError extends AppError {
  constructor(readonly violations: FieldViolation[]) {
    super('INVALID_ARGUMENT', violations.map((v) => `${v.field}: ${v.description}`).join('; '));
  }
}

export const unauthenticated = (message: string) => new AppError('UNAUTHENTICATED', message);
/** The one answer for a bad, expired, forged or revoked access token. */
export const BAD_ACCESS_TOKEN = 'invalid or expired access token';
export const permissionDenied = (message: string) => new AppError('PERMISSION_DENIED', message);
export const notFound = (message: string) => new AppError('NOT_FOUND', message);
export const alreadyExists = (message: string) => new AppError('ALREADY_EXISTS', message);
export const resourceExhausted = (message: string) => new AppError('RESOURCE_EXHAUSTED', message);
/** A throttled attempt: the same message for every key (it never says whether an account exists). */
export const throttled = (waitS: number) =>
  new AppError('RESOURCE_EXHAUSTED', `too many failed attempts; retry in ${waitS} s`, { retryAfterS: waitS });
export const failedPrecondition = (message: string) => new AppError('FAILED_PRECONDITION', message);
export const unavailable = (message: string, cause?: unknown) =>
  new AppError('UNAVAILABLE', message, { cause });
export const cancelled = (message: string) => new AppError('CANCELLED', message);

/** Collects every bad field of a request so the caller learns all of them at once. */
export class Violations {
  private readonly list: FieldViolation[] = [];

  add(field: string, description: string): this {
    this.list.push({ field, description });
    return this;
  }

  get empty(): boolean {
    return this.list.length === 0;
  }

  throwIfAny(): void {
    if (this.list.length > 0) throw new InvalidArgumentError(this.list);
  }
}

/** Throws CANCELLED when the caller has gone (deadline passed or call cancelled). */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw cancelled('the call was cancelled or its deadline passed');
}
