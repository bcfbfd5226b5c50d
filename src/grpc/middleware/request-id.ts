/**
 * Gives every call a request id: the caller's `x-request-id` when it is at most 128 characters of
 * `[A-Za-z0-9._:-]`, else a new UUID. It goes back in the response's initial metadata and, with the
 * trace id of a valid W3C `traceparent`, into every log line written while the call runs
 * (src/logger.ts `callScope`), whichever part of the server writes it.
 */
import { randomUUID } from 'node:crypto';
import { callScope } from '../../logger.js';
import type { Middleware } from '../context.js';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
/** version-traceid-parentid-flags (W3C Trace Context §3.2); a later version may append fields. */
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/** The trace id of a valid `traceparent`, else undefined. */
export function traceIdOf(value: unknown): string | undefined {
  if (typeof value !== 'string' || value.length > 512) return undefined;
  const m = TRACEPARENT.exec(value);
  if (!m) return undefined;
  const [, version, traceId, parentId, , rest] = m;
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  if (/^0+$/.test(traceId as string) || /^0+$/.test(parentId as string)) return undefined;
  return traceId;
}

export function requestIdOf(value: unknown): string {
  return typeof value === 'string' && REQUEST_ID.test(value) ? value : randomUUID();
}

export const identifyRequest: Middleware = (ctx, next) => {
  const requestId = requestIdOf(ctx.metadata.get('x-request-id')[0]);
  ctx.requestId = requestId;
  ctx.responseMetadata.set('x-request-id', requestId);
  const traceId = traceIdOf(ctx.metadata.get('traceparent')[0]);
  return callScope.run(
    traceId ? { request_id: requestId, trace_id: traceId } : { request_id: requestId },
    next,
  );
};
