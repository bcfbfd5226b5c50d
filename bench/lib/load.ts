/**
 * The load generator of the bench and the soak, runner side: forks the load workers
 * (load-worker.ts, compiled, plain node) once, sends each job to all of them (each takes its share
 * of every group's virtual users), and merges what they send back: HDR histograms, counts, sessions.
 */
import { type ChildProcess, fork } from 'node:child_process';
import path from 'node:path';
import * as hdr from 'hdr-histogram-js';
import { ROOT } from './server-process.js';

/** The mixed workload, per 1000 calls: mostly token checks and reads, some refreshes, few bcrypt calls. */
export const MIX = {
  validateToken: 400,
  getUserById: 300,
  getUserByEmail: 100,
  batchGetUsers: 50,
  listUsers: 50,
  refreshToken: 80,
  login: 15,
  register: 5,
};
export type ServerOp = keyof typeof MIX;
/** The ceilings, and Login calls whose expected answer is UNAUTHENTICATED. */
type Probe =
  | 'echo'
  | 'pgPointSelect'
  | 'pgConnectSelect'
  | 'bcryptCompare'
  | `login${'WrongPassword' | 'UnknownEmail'}`;
export type Op = ServerOp | Probe;
export type Workload = Op | 'mixed';

/** Seeded users are bench-user-<n>@bench.example.com, n = 1..count, all with BENCH_PASSWORD. */
export const seededEmail = (n: number) => `bench-user-${n}@bench.example.com`;
export const BENCH_PASSWORD = 'bench-password-1234';
/**
 * What the bench and the soak add to the server's environment: the load workers connect from
 * 127.0.0.1 and send each VU's own `x-forwarded-for`, so per-address limits apply per VU as they
 * would per real client; the attempt limits are raised, since the wrong-password and unknown-email
 * scenarios measure the cost of a failed Login, not the lockout policy.
 */
export const BENCH_SERVER_ENV = {
  TRUSTED_PROXIES: '127.0.0.1',
  LOGIN_MAX_FAILURES: '1000',
  LOGIN_SOURCE_MAX_FAILURES: '100000',
  LOGIN_ACCOUNT_MAX_FAILURES: '1000000',
};
/** Workloads needing one live refresh token (login session) per virtual user. */
export const needsSessions = (w: Workload) => w === 'refreshToken' || w === 'mixed';

/** What the workers build requests from; sent again when it changes. */
export interface WorkerContext {
  target: string;
  echoTarget?: string;
  pgUrl?: string;
  /** Seeded user ids; BatchGetUsers takes 50 consecutive ones. */
  ids: string[];
  userCount: number;
  password: string;
  accessTokens: string[];
  /** Each call takes a random one of accessTokens (a working set of sessions), not its VU's own. */
  spreadTokens?: boolean;
  /** A service account's token with the scope tokens.introspect: what ValidateToken's callers send (required in production). */
  introspectionToken: string;
  bcryptHash?: string;
  /** An encoded User, base64: the echo payload. */
  echoPayload?: string;
  deadlineMs: number;
  /** Keeps Register's addresses unique across runs on one database. */
  runTag: string;
}

export interface GroupRequest {
  label: string;
  workload: Workload;
  /** Virtual users (VUs) in all, each with one call in flight (closed loop). */
  concurrency: number;
  /** One refresh token per VU, then spares. */
  sessions?: string[];
  /** pg ceiling: the pool size in all. */
  pgPoolTotal?: number;
  /** On at most this many workers (bcrypt: one libuv pool, as in the server). */
  maxProcs?: number;
  /** false: a background group that only loads the server. */
  record?: boolean;
}

export interface JobSpec {
  id: string;
  groups: GroupRequest[];
  /** This worker's index, the number of workers, HTTP/2 connections per worker and group. */
  worker: number;
  workers: number;
  channels: number;
  /** Epoch ms at which every worker starts its VUs. */
  startAt: number;
  warmupMs: number;
  durationMs: number;
}

export interface OpResult {
  ok: number;
  /** Failures by gRPC status name (or pg's code). */
  errors: Record<string, number>;
  /** OK latencies: HDR histogram (µs, compressed base64), and log-spaced bins for the HTML charts. */
  histogram: string;
  bins: number[];
}

export interface GroupResult {
  label: string;
  ops: Partial<Record<Op, OpResult>>;
  /** Live refresh tokens: the VUs' newest, the spares, and those that Login and Register opened. */
  sessionsOut: string[];
  /** Addresses Register answered OK for. */
  registered: string[];
  /** VUs that lost their session with no spare left, and stopped. */
  vusLost: number;
  /** One message per error code. */
  errorSamples: Record<string, string>;
}

export type RunnerMessage = { type: 'context'; context: WorkerContext } | { type: 'run'; job: JobSpec };
type JobResult = { type: 'result'; windowMs: number; cpuMs: number; groups: GroupResult[] };
export type WorkerMessage = { type: 'hello' } | JobResult | { type: 'failed'; error: string };

export const newHistogram = () => hdr.build({ highestTrackableValue: 120_000_000 });
/** Bin k holds [10^(k/10), 10^((k+1)/10)) µs, 1 µs to 100 s. */
export const BINS_PER_DECADE = 10;
export const binOf = (us: number) => Math.min(79, Math.max(0, Math.floor(Math.log10(Math.max(1, us)) * 10)));

/** One op or group: RPS counts OK answers only; latencies of OK calls, ms; the merged HDR histogram. */
export type Summary = ReturnType<typeof summarise>;

function summarise(parts: (OpResult & { windowMs: number })[]) {
  const [h, bins, errors] = [newHistogram(), new Array<number>(80).fill(0), {} as Record<string, number>];
  let [ok, rps] = [0, 0];
  for (const p of parts) {
    const d = hdr.decodeFromCompressedBase64(p.histogram, 32, false);
    h.add(d);
    d.destroy();
    for (const [i, n] of p.bins.entries()) bins[i] = (bins[i] ?? 0) + n;
    for (const [code, n] of Object.entries(p.errors)) errors[code] = (errors[code] ?? 0) + n;
    [ok, rps] = [ok + p.ok, rps + p.ok / (p.windowMs / 1000)];
  }
  const [p50Ms, p90Ms, p99Ms] = [50, 90, 99].map((q) => h.getValueAtPercentile(q) / 1000) as number[];
  const errorTotal = Object.values(errors).reduce((a, b) => a + b, 0);
  const out = {
    rps,
    ok,
    errors,
    errorTotal,
    p50Ms,
    p90Ms,
    p99Ms,
    maxMs: h.maxValue / 1000,
    bins,
    histogram: '',
  };
  out.histogram = hdr.encodeIntoCompressedBase64(h);
  h.destroy();
  return out;
}

export interface GroupSummary extends Summary, Omit<GroupResult, 'ops'> {
  workload: Workload;
  concurrency: number;
  byOp: Partial<Record<Op, Summary>>;
}

export class LoadPool {
  private seq = 0;
  private constructor(
    private readonly workers: ChildProcess[],
    private readonly channels: number,
  ) {}

  static async start(processes: number, channels: number): Promise<LoadPool> {
    const script = path.join(ROOT, 'dist/bench/lib/load-worker.js');
    const start = () =>
      new Promise<ChildProcess>((resolve, reject) => {
        const child = fork(script, [], { execArgv: [], serialization: 'advanced' });
        child.once('message', () => resolve(child));
        child.once('exit', (code) => reject(new Error(`a load worker exited (${code}) at start`)));
      });
    return new LoadPool(await Promise.all(Array.from({ length: processes }, start)), channels);
  }

  get pids() {
    return this.workers.map((w) => w.pid as number);
  }

  setContext(context: WorkerContext): void {
    for (const w of this.workers) w.send({ type: 'context', context } satisfies RunnerMessage);
  }

  /** Runs the groups at once, each spread over the workers; one summary per group. */
  async run(groups: GroupRequest[], timing: Pick<JobSpec, 'warmupMs' | 'durationMs'>) {
    const [workers, channels, startAt] = [this.workers.length, this.channels, Date.now() + 300];
    const base = { id: `job-${++this.seq}`, groups, workers, channels, startAt, ...timing };
    const results = await Promise.all(this.workers.map((w, worker) => this.runOn(w, { ...base, worker })));
    const summaries = groups.map(({ label, workload, concurrency }): GroupSummary => {
      const parts = results.flatMap((r) =>
        r.groups.filter((x) => x.label === label).map((x) => ({ ...x, w: r.windowMs })),
      );
      const of = (op?: string) =>
        parts.flatMap((x) =>
          Object.entries(x.ops).flatMap(([k, r]) => (!op || k === op ? [{ ...r, windowMs: x.w }] : [])),
        );
      const ops = [...new Set(parts.flatMap((x) => Object.keys(x.ops)))];
      return {
        ...summarise(of()),
        ...{
          label,
          workload,
          concurrency,
          byOp: Object.fromEntries(ops.map((op) => [op, summarise(of(op))])),
        },
        sessionsOut: parts.flatMap((x) => x.sessionsOut),
        registered: parts.flatMap((x) => x.registered),
        vusLost: parts.reduce((a, x) => a + x.vusLost, 0),
        errorSamples: Object.assign({}, ...parts.map((x) => x.errorSamples)),
      };
    });
    /** CPU of the load workers during the window, % of one core. */
    const clientCpuPct = results.reduce((a, r) => a + r.cpuMs / r.windowMs, 0) * 100;
    return { groups: summaries, clientCpuPct };
  }

  private runOn(worker: ChildProcess, job: JobSpec) {
    return new Promise<JobResult>((resolve, reject) => {
      const onExit = (code: number | null) =>
        reject(new Error(`a load worker exited (${code}) during ${job.id}`));
      worker.once('exit', onExit).once('message', (m: WorkerMessage) => {
        worker.off('exit', onExit);
        if (m.type === 'result') resolve(m);
        else reject(new Error(`load worker: ${m.type === 'failed' ? m.error : m.type}`));
      });
      worker.send({ type: 'run', job } satisfies RunnerMessage);
    });
  }

  /** Disconnecting ends a worker (it never outlives the runner). */
  async stop(): Promise<void> {
    const live = this.workers.filter((w) => w.exitCode === null && w.signalCode === null);
    await Promise.all(live.map((w) => new Promise((r) => w.once('exit', r).disconnect())));
  }
}
