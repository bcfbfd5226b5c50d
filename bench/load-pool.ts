/**
 * The runner's side of the load workers: forks them once (compiled JavaScript from dist/bench,
 * so no TypeScript loader runs in the measured processes), keeps them for the whole run, splits
 * each group's virtual users across them and merges what they send back.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { LOAD_WORKER } from './paths.js';
import type {
  GroupSpec,
  JobResult,
  JobSpec,
  RunnerMessage,
  WorkerContext,
  WorkerMessage,
} from './protocol.js';
import { needsSessions, type Workload } from './scenarios.js';
import { type GroupSummary, mergeGroups } from './stats.js';

export interface GroupRequest {
  label: string;
  workload: Workload;
  /** Total virtual users, split across the worker processes. */
  concurrency: number;
  /** Refresh tokens: one per VU, the rest spares (only for workloads that need sessions). */
  sessions?: string[];
  /** pg ceiling: total pool size, split across the worker processes. */
  pgPoolTotal?: number;
  /** Run on at most this many worker processes (default: all). */
  maxProcs?: number;
  record?: boolean;
}

export interface Timing {
  warmupMs: number;
  durationMs: number;
  /** Total requests to record (0: duration mode). */
  requests: number;
  /** Duration mode: measure past durationMs until this many OK calls (in total), up to maxDurationMs. */
  minSamples: number;
  maxDurationMs: number;
  drainMs: number;
}

export interface StepLoad {
  groups: GroupSummary[];
  /** CPU the load workers used during the window, % of one core (summed over workers). */
  clientCpuPct: number;
  windowS: number;
}

interface Worker {
  index: number;
  child: ChildProcess;
}

/** Splits n into k near-equal parts, larger ones first. */
export const split = (n: number, k: number): number[] =>
  Array.from({ length: k }, (_, i) => Math.floor(n / k) + (i < n % k ? 1 : 0));

export class LoadPool {
  private jobSeq = 0;

  private constructor(
    private readonly workers: Worker[],
    private readonly channelsPerProc: number,
  ) {}

  static async start(processes: number, channelsPerProc: number): Promise<LoadPool> {
    const workers = await Promise.all(
      Array.from({ length: processes }, (_, index) => {
        const child = fork(LOAD_WORKER, [], {
          env: { ...process.env, BENCH_WORKER: String(index) },
          execArgv: [], // plain node: not the runner's TypeScript loader
          stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
          serialization: 'advanced',
        });
        return new Promise<Worker>((resolve, reject) => {
          child.once('message', (m: WorkerMessage) =>
            m.type === 'hello' ? resolve({ index, child }) : reject(),
          );
          child.once('exit', (code) =>
            reject(new Error(`load worker ${index} exited with ${code} at start`)),
          );
        });
      }),
    );
    return new LoadPool(workers, channelsPerProc);
  }

  get size(): number {
    return this.workers.length;
  }

  get pids(): number[] {
    return this.workers.map((w) => w.child.pid as number);
  }

  setContext(context: WorkerContext): void {
    for (const w of this.workers) w.child.send({ type: 'context', context } satisfies RunnerMessage);
  }

  /** Runs the groups at once, each spread over every worker process, and merges the results. */
  async run(groups: GroupRequest[], timing: Timing): Promise<StepLoad> {
    const id = `job-${++this.jobSeq}`;
    const shares = groups.map((g) => {
      const procs = Math.min(g.maxProcs ?? this.workers.length, this.workers.length);
      return [...split(g.concurrency, procs), ...new Array<number>(this.workers.length - procs).fill(0)];
    });
    const jobs = this.workers.map((w) => {
      const specs: GroupSpec[] = [];
      groups.forEach((g, gi) => {
        const vus = shares[gi]?.[w.index] ?? 0;
        if (vus === 0) return;
        const spec: GroupSpec = {
          label: g.label,
          workload: g.workload,
          vus,
          channels: this.channelsPerProc,
          record: g.record ?? true,
        };
        if (g.pgPoolTotal) spec.pgPoolSize = Math.max(1, Math.ceil((g.pgPoolTotal * vus) / g.concurrency));
        if (needsSessions(g.workload)) spec.sessions = this.sessionsFor(g, shares[gi] ?? [], w.index);
        specs.push(spec);
      });
      return { worker: w, specs };
    });
    const active = jobs.filter((j) => j.specs.length > 0);
    const startAt = Date.now() + 300;
    const requestShares = split(timing.requests, active.length);
    const results = await Promise.all(
      active.map(({ worker, specs }, i) =>
        this.runOn(worker, {
          id,
          groups: specs,
          startAt,
          warmupMs: timing.warmupMs,
          durationMs: timing.requests > 0 ? Math.max(timing.durationMs, 600_000) : timing.durationMs,
          requests: requestShares[i] ?? 0,
          minSamples: timing.requests > 0 ? 0 : Math.ceil(timing.minSamples / active.length),
          maxDurationMs: Math.max(timing.durationMs, timing.maxDurationMs),
          drainMs: timing.drainMs,
        }),
      ),
    );
    const windowS = Math.max(...results.map((r) => r.windowMs)) / 1000;
    const clientCpuPct = results.reduce((a, r) => a + r.cpuMs / r.windowMs, 0) * 100;
    return {
      groups: mergeGroups(
        results,
        groups.map((g) => ({ label: g.label, workload: g.workload, concurrency: g.concurrency })),
      ),
      clientCpuPct,
      windowS,
    };
  }

  /** Worker w's VUs get consecutive sessions; the spares are dealt out round-robin. */
  private sessionsFor(g: GroupRequest, share: number[], w: number): string[] {
    const all = g.sessions ?? [];
    const offset = share.slice(0, w).reduce((a, b) => a + b, 0);
    const own = all.slice(offset, offset + (share[w] ?? 0));
    const spares = all.slice(g.concurrency).filter((_, i) => i % share.length === w);
    return [...own, ...spares];
  }

  private runOn(worker: Worker, job: JobSpec): Promise<JobResult> {
    return new Promise((resolve, reject) => {
      const onMessage = (m: WorkerMessage) => {
        if (m.type === 'result' && m.result.id === job.id) {
          cleanup();
          resolve(m.result);
        } else if (m.type === 'failed' && m.id === job.id) {
          cleanup();
          reject(new Error(`load worker ${worker.index}: ${m.error}`));
        }
      };
      const onExit = (code: number | null) => {
        cleanup();
        reject(new Error(`load worker ${worker.index} exited (${code}) during ${job.id}`));
      };
      const cleanup = () => {
        worker.child.off('message', onMessage);
        worker.child.off('exit', onExit);
      };
      worker.child.on('message', onMessage);
      worker.child.on('exit', onExit);
      worker.child.send({ type: 'run', job } satisfies RunnerMessage);
    });
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            if (w.child.exitCode !== null || w.child.signalCode !== null) return resolve();
            const timer = setTimeout(() => w.child.kill('SIGKILL'), 5000);
            w.child.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            w.child.send({ type: 'exit' } satisfies RunnerMessage);
          }),
      ),
    );
  }
}
