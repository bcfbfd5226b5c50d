/**
 * What the runner and its load workers (child processes) say to each other over the IPC channel,
 * and the latency recording both sides share: an HDR histogram (microseconds, 3 significant
 * digits) for percentiles, plus coarse log-spaced bins for the HTML report's histogram chart.
 */
import * as hdr from 'hdr-histogram-js';
import type { Op, Workload } from './scenarios.js';

/** Everything a worker needs to build requests; sent once, and again when it changes. */
export interface WorkerContext {
  /** host:port of the server under test. */
  target: string;
  /** host:port of the bare echo server. */
  echoTarget: string;
  /** postgres:// URL of the server's database (for the pg ceilings). */
  pgUrl: string;
  /** Seeded user ids, in registration order. */
  ids: string[];
  /** Seeded users are bench-user-1..userCount. */
  userCount: number;
  password: string;
  /** Access tokens of logged-in seeded users; virtual users take them round-robin. */
  accessTokens: string[];
  /** A bcrypt hash of `password` at the configured cost (for the bcrypt ceiling). */
  bcryptHash: string;
  /** An encoded User message, the echo payload. */
  echoPayload: string;
  deadlineMs: number;
  /** Makes Register's emails unique across runs on one database. */
  runTag: string;
}

export interface GroupSpec {
  /** Unique within a job, e.g. "getUserById" or "login (background)". */
  label: string;
  workload: Workload;
  /** Virtual users of this worker in this group (closed loop: one call in flight each). */
  vus: number;
  /** Real HTTP/2 connections (grpc.use_local_subchannel_pool) the VUs share round-robin. */
  channels: number;
  /** For the pg ceilings: this worker's pool size. */
  pgPoolSize?: number;
  /** Refresh tokens for this worker's VUs (first `vus`) and spares, when the workload needs sessions. */
  sessions?: string[];
  /** Record latencies only when true (a background group still loads the server). */
  record?: boolean;
}

export interface JobSpec {
  id: string;
  groups: GroupSpec[];
  /** Epoch ms at which every worker starts its VUs. */
  startAt: number;
  warmupMs: number;
  /** Measurement window; or, with `requests`, the most it may take. */
  durationMs: number;
  /** This worker's share of a fixed request count (0: duration mode). */
  requests: number;
  /** Duration mode: keep measuring past `durationMs` until this many OK calls were recorded
   * (slow ops such as bcrypt), up to `maxDurationMs`. */
  minSamples: number;
  maxDurationMs: number;
  /** How long in-flight calls may finish after the window before they are cancelled. */
  drainMs: number;
}

export type RunnerMessage =
  | { type: 'context'; context: WorkerContext }
  | { type: 'run'; job: JobSpec }
  | { type: 'exit' };

export interface OpResult {
  ok: number;
  /** Non-OK outcomes by gRPC status name (or the error's code for pg/bcrypt). */
  errors: Record<string, number>;
  /** HDR histogram of OK latencies, µs, compressed base64. */
  histogram: string;
  bins: number[];
}

export interface GroupResult {
  label: string;
  ops: Partial<Record<Op, OpResult>>;
  /** Newest refresh tokens of the VUs' sessions (still live), and spares not used. */
  sessionsOut: string[];
  /** Refresh tokens of sessions that Login/Register calls opened (new live sessions). */
  harvested: string[];
  /** VUs that lost their session (a failed refresh) with no spare left, and stopped. */
  vusLost: number;
  /** One example message per error code, for diagnosis. */
  errorSamples: Record<string, string>;
}

export interface JobResult {
  id: string;
  worker: number;
  /** Actual measurement window, ms. */
  windowMs: number;
  /** How late the worker was ready after `startAt`, ms (0 when on time). */
  lateMs: number;
  /** CPU time this worker process used during the window, ms (user + system). */
  cpuMs: number;
  groups: GroupResult[];
}

export type WorkerMessage =
  | { type: 'hello'; worker: number; pid: number }
  | { type: 'result'; result: JobResult }
  | { type: 'failed'; id: string; error: string };

// --- latency recording ---------------------------------------------------------------------------

export function newHistogram(): hdr.Histogram {
  return hdr.build({
    bitBucketSize: 32,
    autoResize: true,
    lowestDiscernibleValue: 1,
    highestTrackableValue: 120_000_000,
    numberOfSignificantValueDigits: 3,
  });
}

export const encodeHistogram = (h: hdr.Histogram): string => hdr.encodeIntoCompressedBase64(h);

export const decodeHistogram = (s: string): hdr.Histogram => hdr.decodeFromCompressedBase64(s, 32, false);

/** Log-spaced bins: bin k holds latencies in [10^(k/BINS_PER_DECADE), 10^((k+1)/BINS_PER_DECADE)) µs. */
export const BINS_PER_DECADE = 10;
export const BIN_COUNT = 8 * BINS_PER_DECADE; // 1 µs .. 100 s

export function binOf(us: number): number {
  const k = Math.floor(Math.log10(Math.max(1, us)) * BINS_PER_DECADE);
  return Math.min(BIN_COUNT - 1, Math.max(0, k));
}

export const binLowerUs = (k: number): number => 10 ** (k / BINS_PER_DECADE);
