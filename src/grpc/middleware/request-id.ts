/**
 * Gives every call a request id: the caller's `x-request-id` when it is at most 128 characters of
 * `[A-Za-z0-9._:-]`, else a new UUID. It goes back in the response's initial metadata and, with the
 * trace id of a valid W3C `traceparent`, onto `ctx`, from where the call's own log lines (the log
 * and status steps) carry them. With `scopeLogs` (DB_ECHO, LOG_LEVEL debug or trace: when lines are
 * also written from deeper down, such as each SQL statement) the call also runs inside
 * src/logger.ts `callScope`, so every line written while it runs carries them, whichever part of
 * the server writes it. That scope (an AsyncLocalStorage) costs every promise of every call, which
 * is why it is not on by default (measured: ~4 % of a cached GetUser's CPU).
 */
import { randomUUID } from 'node:crypto';
import { type CallLogFields, callScope } from '../../logger.js';
import type { CallContext, Middleware } from '../context.js';

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

/** The fields a log line of the call carries. */
export const callFields = (ctx: Pick<CallContext, 'requestId' | 'traceId'>): CallLogFields =>
  ctx.traceId ? { request_id: ctx.requestId, trace_id: ctx.traceId } : { request_id: ctx.requestId };

export function identifyRequest({ scopeLogs }: { scopeLogs: boolean }): Middleware {
  return (ctx, next) => {
    const requestId = requestIdOf(ctx.metadata.get('x-request-id')[0]);
    ctx.requestId = requestId;
    ctx.responseMetadata.set('x-request-id', requestId);
    ctx.traceId = traceIdOf(ctx.metadata.get('traceparent')[0]);
    return scopeLogs ? callScope.run(callFields(ctx), next) : next();
  };
}
