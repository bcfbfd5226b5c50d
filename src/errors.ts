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

/** The most field violations one answer reports; the rest are counted in a last one. */
export const VIOLATIONS_MAX = 10;
/** The most characters of any caller-supplied value an error message repeats. */
export const ECHO_MAX = 64;

/** A caller's value cut to ECHO_MAX characters (code points), marked with `…` when cut. */
export function echo(value: string, max = ECHO_MAX): string {
  const chars = [...value.slice(0, max * 2)];
  return chars.length > max || value.length > max * 2 ? `${chars.slice(0, max).join('')}…` : value;
}
/** A caller's value quoted in an error message, cut to ECHO_MAX characters. */
export const quote = (value: string, max = ECHO_MAX) => JSON.stringify(echo(value, max));

/** At most VIOLATIONS_MAX violations: past that, the first ones and a last "… and N more". */
export function boundViolations(violations: FieldViolation[]): FieldViolation[] {
  if (violations.length <= VIOLATIONS_MAX) return violations;
  const kept = violations.slice(0, VIOLATIONS_MAX - 1);
  const more = violations.length - kept.length;
  const field = violations[kept.length]?.field ?? 'request';
  return [...kept, { field, description: `… and ${more} more violation(s) not shown` }];
}

export class InvalidArgumentError extends AppError {
  readonly violations: FieldViolation[];
  constructor(violations: FieldViolation[]) {
    const bounded = boundViolations(violations);
    super('INVALID_ARGUMENT', bounded.map((v) => `${v.field}: ${v.description}`).join('; '));
    this.violations = bounded;
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
