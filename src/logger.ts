import { AsyncLocalStorage } from 'node:async_hooks';
import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger };

/** What every log line written during one RPC carries (set by the request-id step). */
export interface CallLogFields {
  request_id: string;
  trace_id?: string;
}
/** The RPC a piece of work belongs to: log lines written inside `callScope.run(fields, ...)` carry its fields. */
export const callScope = new AsyncLocalStorage<CallLogFields>();

/**
 * Structured JSON logs. Secrets are never logged on purpose; the redaction list is the safety net
 * for a field that slips into a log object by mistake, at the top level or one level down (a
 * request message, a credentials record, the configuration, call metadata).
 */
const SECRET_FIELDS = [
  'password', // RegisterRequest, LoginRequest
  'currentPassword', // ChangePasswordRequest
  'newPassword',
  'passwordHash', // UserCredentials
  'accessToken', // TokenPair, ValidateTokenRequest
  'refreshToken', // TokenPair, RefreshTokenRequest, LogoutRequest
  'authorization', // call metadata
  'SECRET_KEY', // AppConfig
  'DATABASE_URL',
];
export const REDACT_PATHS = [...SECRET_FIELDS, ...SECRET_FIELDS.map((f) => `*.${f}`)];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { service: 'connectsphere-identity' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    mixin: () => callScope.getStore() ?? {},
  };
  return destination ? pino(options, destination) : pino(options);
}
