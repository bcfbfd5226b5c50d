/**
 * The Prometheus metrics (prom-client), on a registry of our own. Each group implements the small
 * observer interface of the part it watches, so those parts know nothing of Prometheus:
 *
 * - RPCs (`src/grpc/metrics.ts` calls it from a server interceptor) with go-grpc-prometheus' names,
 *   labels and code names, so existing Grafana dashboards and alerts work unchanged.
 * - The Sequelize pool (`src/db/database.ts`), with OpenTelemetry's database-client names
 *   (`db.client.connection.*`, dots as underscores), and the lookups waiting in the batchers.
 * - Password hashing (`src/security/passwords.ts`): queue, operations in flight, durations.
 * - Security outcomes (the use cases, through `SecurityCounters` in src/ports.ts).
 * - The read cache (`src/db/cache.ts`): lookups by result, evictions by cause, entries, bypass time.
 * - Process metrics (prom-client's default collectors).
 *
 * Label children are looked up once per method / outcome and kept, so the per-call cost is a few
 * additions (the benchmark measures it: README, Operations port).
 */
import { status as Code } from '@grpc/grpc-js';
import { AggregatorRegistry, Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { CacheKind, CacheObserver, EvictionCause } from '../db/cache.js';
import type { PoolObserver, PoolStats } from '../db/database.js';
import type { RpcObserver, RpcRecorder } from '../grpc/metrics.js';
import type { LoginOutcome, RefreshOutcome, SecurityCounters } from '../ports.js';
import type { HashObserver, PasswordHasher } from '../security/passwords.js';

/** grpc-go's `codes.Code.String()` names, which go-grpc-prometheus puts in `grpc_code`. */
const GO_CODE_NAMES: Record<number, string> = {
  [Code.OK]: 'OK',
  [Code.CANCELLED]: 'Canceled',
  [Code.UNKNOWN]: 'Unknown',
  [Code.INVALID_ARGUMENT]: 'InvalidArgument',
  [Code.DEADLINE_EXCEEDED]: 'DeadlineExceeded',
  [Code.NOT_FOUND]: 'NotFound',
  [Code.ALREADY_EXISTS]: 'AlreadyExists',
  [Code.PERMISSION_DENIED]: 'PermissionDenied',
  [Code.RESOURCE_EXHAUSTED]: 'ResourceExhausted',
  [Code.FAILED_PRECONDITION]: 'FailedPrecondition',
  [Code.ABORTED]: 'Aborted',
  [Code.OUT_OF_RANGE]: 'OutOfRange',
  [Code.UNIMPLEMENTED]: 'Unimplemented',
  [Code.INTERNAL]: 'Internal',
  [Code.UNAVAILABLE]: 'Unavailable',
  [Code.DATA_LOSS]: 'DataLoss',
  [Code.UNAUTHENTICATED]: 'Unauthenticated',
};
export const goCodeName = (code: number) => GO_CODE_NAMES[code] ?? `Code(${code})`;

/** Prometheus' default buckets (client_golang DefBuckets), as go-grpc-prometheus uses. */
const DEFAULT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export const LOGIN_OUTCOMES: readonly LoginOutcome[] = ['success', 'bad_credentials', 'throttled', 'refused'];
export const REFRESH_OUTCOMES: readonly RefreshOutcome[] = ['rotated', 'grace', 'replay', 'invalid'];

export interface MetricsSources {
  /** The pool's live counts, and its configured bounds. */
  pool: { stats: () => PoolStats; max: number; min: number };
  /** Lookups waiting in the batchers now. */
  pendingLookups: () => number;
  hashing: () => ReturnType<PasswordHasher['stats']>;
  /** The read cache, when CACHE=on. */
  cache?: { size(): number; bypassedFor(): number; readonly active: boolean };
}

export interface Metrics {
  readonly registry: Registry;
  readonly rpc: RpcObserver;
  readonly pool: PoolObserver;
  readonly hashing: HashObserver;
  readonly security: SecurityCounters;
  readonly cache: CacheObserver;
  /** Gauges that read their value at scrape time. Set once the app's parts exist. */
  watch(sources: MetricsSources): void;
}

/**
 * A counter the hot path bumps as a plain number, for prom-client's own `inc` hashes the label
 * values on every call (even through a child from `labels()`): each tally is added to the counter
 * when it is scraped (`collect`). `tally(labels)` is asked once per label set and kept.
 */
function tallied(config: ConstructorParameters<typeof Counter<string>>[0]) {
  const tallies: { labels: Record<string, string>; n: number; reported: number }[] = [];
  const counter = new Counter({
    ...config,
    collect() {
      for (const t of tallies) {
        if (t.n === t.reported) continue;
        this.inc(t.labels, t.n - t.reported);
        t.reported = t.n;
      }
    },
  });
  return {
    counter,
    tally(labels: Record<string, string>) {
      const t = { labels, n: 0, reported: 0 };
      tallies.push(t);
      counter.inc(labels, 0); // the series exists from the start, at 0
      return {
        inc(by = 1) {
          t.n += by;
        },
      };
    },
  };
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];

  // --- RPCs (go-grpc-prometheus) ---
  const started = tallied({
    name: 'grpc_server_started_total',
    help: 'Total number of RPCs started on the server.',
    labelNames: ['grpc_type', 'grpc_service', 'grpc_method'],
    registers,
  });
  const handled = tallied({
    name: 'grpc_server_handled_total',
    help: 'Total number of RPCs completed on the server, regardless of success or failure.',
    labelNames: ['grpc_type', 'grpc_service', 'grpc_method', 'grpc_code'],
    registers,
  });
  const handling = new Histogram({
    name: 'grpc_server_handling_seconds',
    help: 'Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.',
    labelNames: ['grpc_type', 'grpc_service', 'grpc_method'],
    buckets: DEFAULT_BUCKETS,
    registers,
  });
  const received = tallied({
    name: 'grpc_server_msg_received_total',
    help: 'Total number of RPC stream messages received on the server.',
    labelNames: ['grpc_type', 'grpc_service', 'grpc_method'],
    registers,
  });
  const sent = tallied({
    name: 'grpc_server_msg_sent_total',
    help: 'Total number of gRPC stream messages sent by the server.',
    labelNames: ['grpc_type', 'grpc_service', 'grpc_method'],
    registers,
  });
  const rpc: RpcObserver = {
    method({ type, service, method }): RpcRecorder {
      const labels = { grpc_type: type, grpc_service: service, grpc_method: method };
      const startedChild = started.tally(labels);
      const handlingChild = handling.labels(labels);
      const receivedChild = received.tally(labels);
      const sentChild = sent.tally(labels);
      const byCode = new Map<number, ReturnType<typeof handled.tally>>();
      return {
        started: () => startedChild.inc(),
        received: () => receivedChild.inc(),
        sent: () => sentChild.inc(),
        handled(code, seconds) {
          let child = byCode.get(code);
          if (!child) {
            child = handled.tally({ ...labels, grpc_code: goCodeName(code) });
            byCode.set(code, child);
          }
          child.inc();
          handlingChild.observe(seconds);
        },
      };
    },
  };

  // --- the connection pool (OpenTelemetry db.client.connection.*) ---
  let sources: MetricsSources | undefined;
  new Gauge({
    name: 'db_client_connection_count',
    help: 'Connections in the pool, by state (idle: open and free; used: lent to a query or transaction).',
    labelNames: ['state'],
    registers,
    collect() {
      if (!sources) return;
      const { available, using } = sources.pool.stats();
      this.set({ state: 'idle' }, available);
      this.set({ state: 'used' }, using);
    },
  });
  new Gauge({
    name: 'db_client_connection_max',
    help: 'The most open connections the pool allows (DB_POOL_MAX).',
    registers,
    collect() {
      if (sources) this.set(sources.pool.max);
    },
  });
  new Gauge({
    name: 'db_client_connection_idle_min',
    help: 'The fewest idle connections the pool keeps (DB_POOL_MIN).',
    registers,
    collect() {
      if (sources) this.set(sources.pool.min);
    },
  });
  new Gauge({
    name: 'db_client_connection_pending_requests',
    help: 'Requests waiting for a connection from the pool.',
    registers,
    collect() {
      if (sources) this.set(sources.pool.stats().waiting);
    },
  });
  const timeouts = new Counter({
    name: 'db_client_connection_timeouts_total',
    help: 'Requests that got no connection within DB_POOL_ACQUIRE_MS (answered RESOURCE_EXHAUSTED).',
    registers,
  });
  const waitTime = new Histogram({
    name: 'db_client_connection_wait_time_seconds',
    help: 'Time to obtain a connection from the pool (including opening one).',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  });
  const useTime = new Histogram({
    name: 'db_client_connection_use_time_seconds',
    help: 'Time between borrowing a connection and returning it to the pool.',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  });
  new Gauge({
    name: 'db_batch_pending_lookups',
    help: 'Point lookups (sessions, users, service accounts) waiting for a batch to be sent.',
    registers,
    collect() {
      if (sources) this.set(sources.pendingLookups());
    },
  });
  const pool: PoolObserver = {
    acquired: (seconds) => waitTime.observe(seconds),
    released: (seconds) => useTime.observe(seconds),
    timedOut: () => timeouts.inc(),
  };

  // --- password hashing ---
  new Gauge({
    name: 'password_hash_queue_length',
    help: 'Password operations (bcrypt hash or compare) waiting for a hashing slot.',
    registers,
    collect() {
      if (sources) this.set(sources.hashing().waiting);
    },
  });
  new Gauge({
    name: 'password_hash_in_flight',
    help: 'Password operations running now (at most HASH_CONCURRENCY).',
    registers,
    collect() {
      if (sources) this.set(sources.hashing().running);
    },
  });
  const hashDuration = new Histogram({
    name: 'password_hash_duration_seconds',
    help: 'Duration of bcrypt operations, by operation (hash, compare).',
    labelNames: ['operation'],
    buckets: [0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4],
    registers,
  });
  const hashChild = hashDuration.labels({ operation: 'hash' });
  const compareChild = hashDuration.labels({ operation: 'compare' });
  const hashing: HashObserver = {
    done: (operation, seconds) => (operation === 'hash' ? hashChild : compareChild).observe(seconds),
  };

  // --- security outcomes ---
  const logins = new Counter({
    name: 'auth_login_total',
    help: 'Login attempts by outcome (success, bad_credentials, throttled: locked out, refused: server too busy to check).',
    labelNames: ['outcome'],
    registers,
  });
  const refreshes = new Counter({
    name: 'auth_refresh_total',
    help: 'Refresh-token exchanges by outcome (rotated, grace: the retry of a lost answer, replay: a used token, the session ended; invalid).',
    labelNames: ['outcome'],
    registers,
  });
  const serviceTokens = new Counter({
    name: 'auth_service_tokens_issued_total',
    help: 'Access tokens issued to service accounts (IssueServiceToken).',
    registers,
  });
  // Every outcome exists from the start at 0, so rate() and alerts see the first one.
  const loginChildren = new Map(LOGIN_OUTCOMES.map((o) => [o, logins.labels({ outcome: o })]));
  const refreshChildren = new Map(REFRESH_OUTCOMES.map((o) => [o, refreshes.labels({ outcome: o })]));
  for (const child of [...loginChildren.values(), ...refreshChildren.values()]) child.inc(0);
  const security: SecurityCounters = {
    login: (outcome) => loginChildren.get(outcome)?.inc(),
    refresh: (outcome) => refreshChildren.get(outcome)?.inc(),
    serviceTokenIssued: () => serviceTokens.inc(),
  };

  // --- the read cache ---
  const cacheRequests = tallied({
    name: 'cache_requests_total',
    help: 'Read-cache lookups by kind (session, user, service_account) and result (hit, miss, bypass: the cache was off because its listener was not listening).',
    labelNames: ['kind', 'result'],
    registers,
  });
  const cacheEvictions = new Counter({
    name: 'cache_evictions_total',
    help: 'Read-cache entries dropped, by cause (notice: a change on any instance, local: a change made here, expired: CACHE_TTL_MS, size: CACHE_MAX_ENTRIES, bypass: the listener was lost).',
    labelNames: ['cause'],
    registers,
  });
  let bypassEndedSeconds = 0;
  new Counter({
    name: 'cache_bypass_seconds_total',
    help: 'Time the read cache spent bypassed (listener not listening: every read asked PostgreSQL).',
    registers,
    collect() {
      if (!sources?.cache) return;
      this.reset();
      this.inc(bypassEndedSeconds + sources.cache.bypassedFor());
    },
  });
  new Gauge({
    name: 'cache_entries',
    help: 'Entries in the read cache now (at most CACHE_MAX_ENTRIES per process).',
    registers,
    collect() {
      if (sources?.cache) this.set(sources.cache.size());
    },
  });
  new Gauge({
    name: 'cache_listener_up',
    help: '1 while the cache listener LISTENs (caching on); 0 while it is down (summed over workers).',
    registers,
    collect() {
      if (sources?.cache) this.set(sources.cache.active ? 1 : 0);
    },
  });
  const KINDS: readonly CacheKind[] = ['session', 'user', 'service_account'];
  const requestChildren = Object.fromEntries(
    KINDS.map((kind) => [
      kind,
      {
        hit: cacheRequests.tally({ kind, result: 'hit' }),
        miss: cacheRequests.tally({ kind, result: 'miss' }),
        bypass: cacheRequests.tally({ kind, result: 'bypass' }),
      },
    ]),
  ) as Record<CacheKind, Record<'hit' | 'miss' | 'bypass', ReturnType<typeof cacheRequests.tally>>>;
  const CAUSES: readonly EvictionCause[] = ['notice', 'local', 'expired', 'size', 'bypass'];
  const evictionChildren = new Map(CAUSES.map((cause) => [cause, cacheEvictions.labels({ cause })]));
  const cache: CacheObserver = {
    lookup: (kind, result) => requestChildren[kind][result].inc(),
    evicted: (cause, entries) => evictionChildren.get(cause)?.inc(entries),
    bypassEnded: (seconds) => {
      bypassEndedSeconds += seconds;
    },
  };

  return {
    registry,
    rpc,
    pool,
    hashing,
    security,
    cache,
    watch(s) {
      sources = s;
    },
  };
}

/** In a cluster worker: answer the primary's requests for this registry's metrics (prom-client's IPC). */
export function shareMetricsWithPrimary(registry: Registry): void {
  AggregatorRegistry.setRegistries(registry);
  new AggregatorRegistry(); // its constructor installs the worker's listener
}

/** In the cluster primary: every worker's metrics, summed per series (prom-client's aggregation). */
export function clusterMetrics(): () => Promise<{ contentType: string; body: string }> {
  const aggregator = new AggregatorRegistry();
  return async () => ({ contentType: aggregator.contentType, body: await aggregator.clusterMetrics() });
}
