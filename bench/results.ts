/** The shape of one bench run: written to bench/results/<timestamp>.json and rendered by the reports. */
import type { Options } from './options.js';
import type { UsageSummary } from './proc-stats.js';
import type { ProfileSummary } from './profile.js';
import type { CeilingKind, Workload } from './scenarios.js';
import type { LatencySummary } from './stats.js';

/** One measured step: one group (e.g. GetUser by id at c=50) of one load job. */
export interface Row extends LatencySummary {
  /** Scenario or ceiling name, e.g. "getUserById", "echo". */
  name: string;
  /** The group's label in its job (e.g. "login (background)"). */
  label: string;
  workload: Workload;
  concurrency: number;
  windowS: number;
  byOp: Partial<Record<string, LatencySummary>>;
  errorSamples: Record<string, string>;
  vusLost: number;
  /** Server processes (absent for ceilings that do not touch the server). */
  usage?: UsageSummary;
  /** CPU of the load worker processes, % of one core. */
  clientCpuPct: number;
  /** The whole machine's busy CPU during the window (every process, also other people's), % of one core. */
  machineBusyPct?: number;
  /** CPU time the hypervisor gave to other guests while this one wanted it, % of one core. */
  stealPct?: number;
  /** The ceiling this row is compared with. */
  ceiling?: {
    kind: CeilingKind;
    concurrency: number;
    /** The paired measurement (right before a target step), else the mean of the measurements at that concurrency. */
    rps: number;
    p99Ms: number;
    ratio: number;
    measurements: number;
    paired: boolean;
  };
  /** The raw pg point-select ceiling at the same concurrency, for context. */
  pgCeilingRps?: number;
}

export type VerdictResult = 'PASS' | 'FAIL' | 'INFO' | 'SKIP';

export interface Verdict {
  target: string;
  measured: string;
  result: VerdictResult;
}

export interface StartupResult {
  label: string;
  workers: number;
  ms: number;
  readyBy: 'log' | 'health';
}

export interface RunResult {
  version: 1;
  startedAt: string;
  finishedAt: string;
  elapsedS: number;
  machine: { cpus: number; cpuModel: string; memGb: number; node: string; loadAvgAtStart: number[] };
  options: Options;
  server: {
    env: Record<string, string>;
    startups: StartupResult[];
    idleRssMb?: number;
    idleRssAfterLoadMb?: number;
    buildS?: number;
    notes: string[];
  };
  seed: {
    users: number;
    sessions?: number;
    hashMs: number;
    sqlMs: number;
    tablesAfter?: Record<string, number>;
  };
  ceilings: {
    echo: Row[];
    pg: Row[];
    bcrypt: Row[];
    /** Measured right before each target step (GetUser/ValidateToken c=50: echo; Login/Register c=8: bcrypt). */
    paired: Row[];
    pooling?: { pooled: Row; perQuery: Row; ratio: number };
  };
  scenarios: Row[];
  interference?: { alone: Row; withLogin: Row; login: Row };
  workers?: { rows: { workers: number; nodeProcs: number; row: Row }[]; honoured: boolean | null };
  verdicts: Verdict[];
  profiles: { files: string[]; summary?: ProfileSummary };
}
