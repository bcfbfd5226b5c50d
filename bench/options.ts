/** `npm run bench -- [flags]`: the flags, their defaults, and the --quick preset. */
import { parseArgs } from 'node:util';
import { SCENARIO_INFO, SCENARIOS, type Scenario } from './scenarios.js';

export interface Options {
  quick: boolean;
  /** Measurement window per step, s (ignored with `requests`). */
  durationS: number;
  warmupS: number;
  /** Fixed number of recorded requests per step instead of a duration (0: off). */
  requests: number;
  /** Concurrency levels; each scenario also runs at its target level. Empty: the preset's. */
  levels: number[];
  scenarios: Scenario[];
  seedUsers: number;
  bcryptRounds: number;
  /** Load worker processes. */
  procs: number;
  /** HTTP/2 connections per load worker process and group. */
  channels: number;
  deadlineMs: number;
  /** WORKERS for the main run. */
  workers: number;
  /** Also run GetUser with WORKERS=2 (or 1 when `workers` is 2) and compare. */
  compareWorkers: boolean;
  cpuProf: boolean;
  keepData: boolean;
  build: boolean;
  serverEnv: Record<string, string>;
  outDir: string;
}

export const HELP = `npm run bench -- [flags]

Builds and starts the production server (node dist/src/main.js) on a fresh embedded PostgreSQL,
seeds users with SQL, measures the ceilings (bare gRPC echo, raw pg, bcrypt, pooled vs new
connection), drives every scenario from forked load-worker processes, and writes
bench/results/<timestamp>.json and .html.

  --quick                 the short preset: under 2 minutes on 2 cores (c=100 + target levels, 1.5 s steps, 2000 users)
  --duration <s>          measurement window per step (default 10; quick 1.5)
  --warmup <s>            warm-up before each window, not recorded (default 2; quick 0.5)
  --requests <n>          record a fixed number of requests per step instead of a duration
  --levels <list>         concurrency levels, e.g. 1,10,50,100 (default; quick: 100) — each scenario
                          also runs at its target level (GetUser/ValidateToken 50, Login/Register 8)
  --scenarios <list>      subset of: ${SCENARIOS.join(', ')}
  --seed-users <n>        users seeded with SQL (default 10000; quick 2000)
  --bcrypt-rounds <n>     BCRYPT_ROUNDS for the server and the bcrypt ceiling (default 12, the server's default)
  --procs <n>             load worker processes (default 2)
  --channels <n>          HTTP/2 connections per load worker and group (default 4)
  --deadline-ms <n>       per-call deadline (default 30000)
  --workers <n>           WORKERS env of the server for the main run (default 1)
  --no-compare-workers    skip the GetUser run with WORKERS=2
  --cpu-prof              run the server under node --cpu-prof --cpu-prof-dir=bench/results/prof
  --server-env K=V        extra server environment, repeatable (e.g. DB_POOL_MAX=50)
  --keep-data             keep the temporary DATA_DIR (its path is printed)
  --no-build              skip npm run build (dist/ must be current)
  --out <dir>             where results go (default bench/results)
  --help
`;

const list = (s: string) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);

function positiveInt(name: string, value: string | undefined, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min)
    throw new Error(`--${name}: must be an integer >= ${min}, got "${value}"`);
  return n;
}

function positiveNumber(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name}: must be a number >= 0, got "${value}"`);
  return n;
}

export function parseOptions(argv: string[]): Options | 'help' {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      quick: { type: 'boolean', default: false },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      requests: { type: 'string' },
      levels: { type: 'string' },
      scenarios: { type: 'string' },
      'seed-users': { type: 'string' },
      'bcrypt-rounds': { type: 'string' },
      procs: { type: 'string' },
      channels: { type: 'string' },
      'deadline-ms': { type: 'string' },
      workers: { type: 'string' },
      'no-compare-workers': { type: 'boolean', default: false },
      'cpu-prof': { type: 'boolean', default: false },
      'server-env': { type: 'string', multiple: true, default: [] },
      'keep-data': { type: 'boolean', default: false },
      'no-build': { type: 'boolean', default: false },
      out: { type: 'string', default: 'bench/results' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) return 'help';
  const quick = values.quick ?? false;
  const scenarios = values.scenarios ? list(values.scenarios) : [...SCENARIOS];
  for (const s of scenarios) {
    if (!(s in SCENARIO_INFO)) throw new Error(`--scenarios: unknown "${s}"; known: ${SCENARIOS.join(', ')}`);
  }
  const levels = values.levels ? list(values.levels).map((l) => positiveInt('levels', l, 1)) : [];
  const serverEnv: Record<string, string> = {};
  for (const kv of values['server-env'] ?? []) {
    const i = kv.indexOf('=');
    if (i <= 0) throw new Error(`--server-env: expected KEY=VALUE, got "${kv}"`);
    serverEnv[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return {
    quick,
    durationS: positiveNumber('duration', values.duration, quick ? 1.5 : 10),
    warmupS: positiveNumber('warmup', values.warmup, quick ? 0.5 : 2),
    requests: positiveInt('requests', values.requests, 0, 0),
    levels,
    scenarios: SCENARIOS.filter((s) => scenarios.includes(s)),
    seedUsers: positiveInt('seed-users', values['seed-users'], quick ? 2000 : 10_000, 100),
    bcryptRounds: positiveInt('bcrypt-rounds', values['bcrypt-rounds'], 12, 4),
    procs: positiveInt('procs', values.procs, 2),
    channels: positiveInt('channels', values.channels, 4),
    deadlineMs: positiveInt('deadline-ms', values['deadline-ms'], 30_000),
    workers: positiveInt('workers', values.workers, 1),
    compareWorkers: !values['no-compare-workers'],
    cpuProf: values['cpu-prof'] ?? false,
    keepData: values['keep-data'] ?? false,
    build: !values['no-build'],
    serverEnv,
    outDir: values.out ?? 'bench/results',
  };
}

/** The concurrency levels of one scenario: the chosen levels plus its target level. */
export function levelsFor(scenario: Scenario, options: Options): number[] {
  const base = options.levels.length ? options.levels : options.quick ? [100] : [1, 10, 50, 100];
  const target = SCENARIO_INFO[scenario].targetLevel;
  return [...new Set([...base, ...(target ? [target] : [])])].sort((a, b) => a - b);
}
