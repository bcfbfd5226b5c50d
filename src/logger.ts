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

/** The most bytes of one log line (a caller's huge request must not make a huge line). */
export const LOG_LINE_MAX_BYTES = 8192;
/** A bcrypt hash ($2a$, $2b$, $2y$), wherever it slipped into a line: never written, at any level. */
const BCRYPT_HASH = /\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}/g;
export const HASH_CENSOR = '[bcrypt hash]';
/** Marks a value (or a list, an object) the line limit cut. */
const CUT = '…[truncated]';

/** `value` with strings cut to `maxString` characters, lists and objects to `maxItems` entries. */
function shrink(value: unknown, maxString: number, maxItems: number, depth = 0): unknown {
  if (typeof value === 'string') {
    return value.length > maxString ? `${value.slice(0, maxString)}${CUT} (${value.length} chars)` : value;
  }
  if (value === null || typeof value !== 'object') return value;
  if (depth >= 6) return CUT;
  if (Array.isArray(value)) {
    const kept = value.slice(0, maxItems).map((v) => shrink(v, maxString, maxItems, depth + 1));
    return value.length > maxItems ? [...kept, `${CUT} (${value.length} items)`] : kept;
  }
  const entries = Object.entries(value);
  const kept = entries.slice(0, maxItems).map(([k, v]) => [k, shrink(v, maxString, maxItems, depth + 1)]);
  if (entries.length > maxItems) kept.push([CUT, `${entries.length} keys`]);
  return Object.fromEntries(kept);
}

/**
 * The line as written: bcrypt hashes censored, and at most `max` bytes. A longer line is parsed
 * and its long values cut (marked `…[truncated]`, with `truncated: true`) until it fits; only such
 * a line pays for the parse.
 */
export function finishLine(line: string, max = LOG_LINE_MAX_BYTES): string {
  const s = line.includes('$2') ? line.replace(BCRYPT_HASH, HASH_CENSOR) : line;
  if (s.length * 3 <= max || Buffer.byteLength(s) <= max) return s;
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(s);
  } catch {
    return `${JSON.stringify({ msg: s.slice(0, Math.floor(max / 8)), truncated: true })}\n`;
  }
  for (const [maxString, maxItems] of [
    [1024, 32],
    [256, 16],
    [64, 8],
  ] as const) {
    const out = `${JSON.stringify({ ...(shrink(parsed, maxString, maxItems) as object), truncated: true })}\n`;
    if (Buffer.byteLength(out) <= max) return out;
  }
  const { level, time, service, msg, request_id } = parsed;
  return `${JSON.stringify(shrink({ level, time, service, request_id, msg, truncated: true }, 256, 8))}\n`;
}

export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { service: 'connectsphere-identity' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    hooks: { streamWrite: finishLine },
    timestamp: pino.stdTimeFunctions.isoTime,
    mixin: () => callScope.getStore() ?? {},
  };
  return destination ? pino(options, destination) : pino(options);
}
