/**
 * `npm run bench`: after the build (npm does it; this runs from dist/), starts the echo server, the
 * load workers and the production server on a fresh embedded PostgreSQL (cold start), seeds it with
 * SQL, restarts it (warm start), measures the ceilings (echo RPC, raw pg, bcrypt, pooled vs new
 * connection), drives every scenario, GetUser during a login flood, Login for an unknown email vs
 * a wrong password, and GetUser with WORKERS=2; prints the tables and verdicts (stdout; progress
 * on stderr) and writes bench/results/<time>.json and .html.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { connect } from '../src/client.js';
import { freePort, tempDataDir } from '../src/db/embedded.js';
import { User } from '../src/gen/connectsphere/user/v1/user.js';
import {
  BENCH_PASSWORD,
  BENCH_SERVER_ENV,
  type GroupRequest,
  type JobSpec,
  LoadPool,
  needsSessions,
  type WorkerContext,
} from './lib/load.js';
import { nodeRssMb, sampler, sampleTree } from './lib/proc-stats.js';
import { revocationTrials } from './lib/revocation.js';
import {
  databaseUrlOf,
  introspectionToken,
  login,
  seed,
  seedIntrospector,
  serveBuild,
  sessionsWithTokens,
} from './lib/seed.js';
import { ROOT, type ServerProc, startServer } from './lib/server-process.js';
import type { CacheRow, Row, RunResult, Scenario } from './report.js';
import * as report from './report.js';

const FLAGS: Record<string, [string | boolean, string]> = {
  quick: [false, 'the short preset (< 2 min on 2 cores): c=100 and target levels, 1.5 s steps, 2000 users'],
  duration: ['10', 'measurement window per step, s (quick 1.5; bcrypt-bound steps at least 3)'],
  warmup: ['2', 'warm-up before each window, not recorded, s (quick 0.5; bcrypt-bound steps at least 1)'],
  levels: ['1,10,50,100', 'concurrency levels (quick 100); the target levels (50, 8) are always added'],
  scenarios: [Object.keys(report.SCENARIOS).join(','), 'which scenarios'],
  'seed-users': ['10000', 'users seeded with SQL (quick 2000)'],
  'bcrypt-rounds': ['12', 'BCRYPT_ROUNDS of the server and of the bcrypt ceiling'],
  procs: ['2', 'load-worker processes'],
  channels: ['4', 'HTTP/2 connections per load worker and group'],
  'server-env': ['', 'K=V: extra server environment, repeatable (e.g. DB_POOL_MAX=50)'],
  'no-compare-workers': [false, 'skip the WORKERS=2 run'],
  'no-compare-ops': [false, 'skip the GetUser runs with and without the operations port'],
  'no-compare-cache': [
    false,
    'skip the read-cache runs (working sets, revocation across instances, CACHE=off)',
  ],
  'revocation-trials': ['200', 'revocation trials across two instances (quick 50)'],
  'working-set': ['10000', 'distinct users and sessions of the large working set (quick 2000)'],
  'cpu-prof': [false, 'run the server under node --cpu-prof; the profiles go to bench/results/prof'],
  help: [false, 'this text'],
};
const type = (d: unknown) => (typeof d === 'boolean' ? ('boolean' as const) : ('string' as const));
const options = Object.entries(FLAGS).map(([k, [d]]) => [k, { type: type(d), multiple: k === 'server-env' }]);
type Options = Record<string, { type: 'string' | 'boolean'; multiple: boolean }>;
const v: Record<string, unknown> = parseArgs({ options: Object.fromEntries(options) as Options }).values;
const flag = (k: string, quick?: string) => String(v[k] ?? (v.quick && quick ? quick : FLAGS[k]?.[0]));
const num = (k: string, quick?: string) => {
  const n = Number(flag(k, quick));
  if (!(n > 0)) throw new Error(`--${k}: expected a positive number`);
  return n;
};
const o = {
  quick: Boolean(v.quick),
  durationS: num('duration', '1.5'),
  warmupS: num('warmup', '0.5'),
  levels: flag('levels', '100').split(',').map(Number),
  scenarios: flag('scenarios').split(',') as Scenario[],
  seedUsers: num('seed-users', '2000'),
  bcryptRounds: num('bcrypt-rounds'),
  procs: num('procs'),
  channels: num('channels'),
  serverEnv: Object.fromEntries(((v['server-env'] ?? []) as string[]).map((kv) => kv.split(/=(.*)/s))),
  compareWorkers: !v['no-compare-workers'],
  compareOps: !v['no-compare-ops'],
  compareCache: !v['no-compare-cache'],
  revocationTrials: num('revocation-trials', '50'),
  workingSet: num('working-set', '2000'),
  cpuProf: Boolean(v['cpu-prof']),
};
for (const s of o.scenarios) if (!(s in report.SCENARIOS)) throw new Error(`--scenarios: no scenario ${s}`);

const T0 = performance.now();
const progress = (m: string) =>
  process.stderr.write(`[${((performance.now() - T0) / 1000).toFixed(1).padStart(6)}s] ${m}\n`);
const f = (n = 0, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
const levelsOf = (s: Scenario) =>
  [...new Set([...o.levels, report.info(s).target ?? 100])].sort((a, b) => a - b);
const SLOW = ['login', 'register', 'bcryptCompare', 'loginWrongPassword', 'loginUnknownEmail'];
const sessionsFor = (c: number) => c + Math.ceil(c / 5) + 2; // one per VU, and spares
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The read cache's lookups so far on a server's operations port, by `kind:result`. */
async function cacheCounts(port: number): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^cache_requests_total\{([^}]*)\} (\S+)$/gm)) {
    const labels = Object.fromEntries(
      [...(m[1] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]),
    );
    out[`${labels.kind}:${labels.result}`] = Number(m[2]);
  }
  return out;
}

/** GETs /metrics every `everyMs` (Prometheus scrapes every 15-60 s: this is harsher); `stop` says how many answered 200. */
function scrapeEvery(port: number, everyMs: number) {
  let ok = 0;
  const scrape = () =>
    fetch(`http://127.0.0.1:${port}/metrics`)
      .then(async (res) => {
        await res.text();
        if (res.status === 200) ok++;
      })
      .catch(() => {});
  const timer = setInterval(scrape, everyMs);
  void scrape();
  return {
    async stop() {
      clearInterval(timer);
      await scrape();
      return ok;
    },
  };
}

async function main(run: RunResult, cleanup: (() => Promise<unknown>)[]) {
  const [outDir, profDir] = [path.join(ROOT, 'bench/results'), path.join(ROOT, 'bench/results/prof')];
  fs.mkdirSync(o.cpuProf ? profDir : outDir, { recursive: true });
  const echo = await startServer({ script: path.join(ROOT, 'dist/bench/echo-server.js'), maxLines: 50 });
  cleanup.push(() => echo.stop());
  const pool = await LoadPool.start(o.procs, o.channels);
  cleanup.push(() => pool.stop());
  progress(`echo server on ${echo.address}; load workers ${pool.pids}, ${o.channels} channels each`);

  const dataDir = tempDataDir('cs-bench-');
  cleanup.push(async () => fs.rmSync(dataDir, { recursive: true, force: true }));
  const secret = randomBytes(48).toString('base64');
  const env = {
    NODE_ENV: 'production',
    LOG_LEVEL: 'warn',
    BCRYPT_ROUNDS: `${o.bcryptRounds}`,
    ...BENCH_SERVER_ENV,
  };
  Object.assign(env, o.serverEnv);
  run.server.env = { ...env, SECRET_KEY: '(random, 48 bytes)' };
  let server: ServerProc | undefined;
  cleanup.push(async () => server?.stop());
  const seen = new Set(o.cpuProf ? fs.readdirSync(profDir) : []);
  const launch = async (label: string, workers: number, extra: Record<string, string> = {}) => {
    const nodeArgs = o.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [];
    const serverEnv = { ...env, SECRET_KEY: secret, WORKERS: `${workers}`, ...extra };
    const s = await serveBuild(dataDir, serverEnv, { nodeArgs });
    run.server.startups.push({ label, ms: s.startupMs, readyBy: s.readyBy });
    const procs = sampleTree(s.child.pid as number).filter((p) => p.kind === 'node').length;
    const by = s.readyBy === 'log' ? 'its SERVING line' : 'health check';
    progress(`server ${label}: ready in ${f(s.startupMs)} ms (by ${by}), ${procs} Node process(es)`);
    return s;
  };
  const stop = async (label: string) => {
    const exit = await server?.stop();
    progress(`server ${label} stopped: exit ${exit?.code ?? exit?.signal}`);
    for (const file of o.cpuProf ? fs.readdirSync(profDir).filter((x) => !seen.has(x)) : []) {
      seen.add(file);
      run.server.profiles.push(`${label}: ${path.relative(process.cwd(), path.join(profDir, file))}`);
    }
  };

  server = await launch('cold', 1);
  const t = performance.now();
  const perLevel = o.scenarios.filter(needsSessions).flatMap((s) => levelsOf(s).map(sessionsFor));
  const needed = Math.max(0, ...perLevel);
  const { ids, hash, sessions } = await seed(dataDir, o.seedUsers, needed + 20, o.bcryptRounds);
  const introspector = await seedIntrospector(dataDir);
  progress(`seeded ${f(o.seedUsers)} users, ${sessions.length} sessions in ${f(performance.now() - t)} ms`);
  await stop('cold');
  server = await launch('warm', 1);
  await sleep(500);
  run.server.idleRssMb = nodeRssMb(server.child.pid as number);

  // The access tokens' sessions stay out of the refresh pool: a replayed refresh would end them.
  let [tokensAt, accessTokens, serviceToken] = [0, [] as string[], ''];
  const context = async ({ address } = server as ServerProc, extra: Partial<WorkerContext> = {}) => {
    if (Date.now() - tokensAt > 10 * 60_000) {
      // users' tokens live 30 minutes, the service's 15
      [tokensAt, accessTokens] = [Date.now(), (await login(address, 4)).map((x) => x.accessToken)];
      serviceToken = await introspectionToken(address, introspector);
    }
    const probe = connect(address, { token: accessTokens[0] });
    const user = await probe.users.getUser({ lookup: { $case: 'id', value: ids[0] as string } });
    probe.close();
    const [pgUrl, runTag] = [databaseUrlOf(dataDir), randomBytes(4).toString('hex')];
    const echoPayload = Buffer.from(User.encode(user).finish()).toString('base64');
    const users = { ids, userCount: o.seedUsers, password: BENCH_PASSWORD, accessTokens, bcryptHash: hash };
    const echoing = { echoTarget: echo.address, echoPayload, pgUrl };
    pool.setContext({
      target: address,
      ...users,
      ...echoing,
      introspectionToken: serviceToken,
      deadlineMs: 30_000,
      runTag,
      ...extra,
    });
  };
  await context();

  /** Runs the groups at once; `watch`: the process tree whose CPU and RSS are sampled. */
  const measure = async (
    title: string,
    groups: GroupRequest[],
    watch = 'server',
    timing?: Partial<JobSpec>,
  ) => {
    const slow = groups.some((g) => SLOW.includes(g.workload));
    const warmupMs = Math.max(o.warmupS, slow ? 1 : 0) * 1000;
    const tm = { warmupMs, durationMs: Math.max(o.durationS, slow ? 3 : 0) * 1000, ...timing };
    const pid = { server: server?.child.pid, echo: echo.child.pid }[watch] ?? process.pid;
    let stopSampler: ReturnType<typeof sampler> | undefined;
    const startSampler = setTimeout(() => {
      stopSampler = sampler(pid);
    }, 300 + tm.warmupMs);
    const started = performance.now();
    const { groups: results, clientCpuPct } = await pool.run(groups, tm);
    clearTimeout(startSampler);
    const usage = stopSampler?.();
    return results.map(({ sessionsOut, registered: _, ...g }): Row => {
      sessions.push(...sessionsOut);
      const name = `${title}${groups.length > 1 ? ` [${g.label}]` : ''}`.padEnd(36);
      const [c, rps] = [String(g.concurrency).padEnd(3), f(g.rps, g.rps < 100 ? 1 : 0).padStart(7)];
      const pg = watch === 'server' ? ` pg ${f(usage?.pgCpuPct)}%` : '';
      const cpu = watch === 'none' ? '' : `  ${watch} ${f(usage?.serverCpuPct)}%${pg}`;
      const machine = `client ${f(clientCpuPct)}%  machine ${f(usage?.machineBusyPct)}%`;
      const line = `${name} c=${c} ${rps} rps  p50 ${f(g.p50Ms, 2)}  p99 ${f(g.p99Ms, 2)} ms`;
      const took = f((performance.now() - started) / 1000, 1);
      const errors = g.errorTotal ? `  errors ${JSON.stringify(g.errors)}` : '';
      progress(`${line}${errors}${cpu}  ${machine}  (${took} s)`);
      for (const [code, msg] of Object.entries(g.errorSamples)) progress(`    ${code}: ${msg}`);
      return { ...g, clientCpuPct, usage: watch === 'none' ? undefined : usage };
    });
  };
  type Ceiling = 'echo' | 'pgPointSelect' | 'pgConnectSelect' | 'bcryptCompare';
  const ceiling = async (workload: Ceiling, c: number, label: string) => {
    const maxProcs = workload === 'bcryptCompare' ? 1 : undefined; // one libuv pool, as in the server
    const g = { label, workload, concurrency: c, pgPoolTotal: Math.min(c, 30), maxProcs };
    const [row] = (await measure(`ceiling: ${label}`, [g], workload === 'echo' ? 'echo' : 'none')) as Row[];
    run.ceilings.push(row);
    return row;
  };

  // the ceilings at the levels that no target step measures right before itself
  const [echoAt, pgAt, bcryptAt] = [new Set<number>(), new Set<number>(), new Set<number>()];
  for (const s of o.scenarios)
    for (const c of levelsOf(s)) {
      const { ceiling: kind, target } = report.info(s);
      if (kind === 'echo') pgAt.add(c);
      if (c !== target) (kind === 'echo' ? echoAt : bcryptAt).add(kind === 'echo' ? c : Math.min(c, 8));
    }
  const sorted = (s: Set<number>) => [...s].sort((a, b) => a - b);
  for (const c of sorted(echoAt)) await ceiling('echo', c, 'echo');
  for (const c of sorted(pgAt)) await ceiling('pgPointSelect', c, 'pg point-select (pool)');
  for (const c of sorted(bcryptAt))
    await ceiling('bcryptCompare', c, `bcrypt compare (cost ${o.bcryptRounds})`);
  const pooled = await ceiling('pgPointSelect', 10, 'pooled connection');
  run.pooling = { pooled, perQuery: await ceiling('pgConnectSelect', 10, 'new connection per query') };

  const get10: GroupRequest = { label: 'getUserById', workload: 'getUserById', concurrency: 10 };
  const quiet = [{ ...get10, record: false }];
  const warmUp = () =>
    measure('warm-up (not recorded)', quiet, 'server', { durationMs: o.quick ? 1e3 : 5e3 });
  await warmUp();
  for (const s of o.scenarios)
    for (const c of levelsOf(s)) {
      await context();
      const { ceiling: kind, target, label } = report.info(s);
      const [op, at] =
        kind === 'echo' ? (['echo', c] as const) : (['bcryptCompare', Math.min(c, 8)] as const);
      const paired = c === target ? await ceiling(op, c, `${kind} (paired with ${s})`) : undefined;
      const group: GroupRequest = { label: s, workload: s, concurrency: c };
      if (needsSessions(s)) {
        const missing = sessionsFor(c) - sessions.length;
        if (missing > 0) sessions.push(...(await login(server.address, missing)).map((x) => x.refreshToken));
        group.sessions = sessions.splice(0, sessionsFor(c));
      }
      const [row] = (await measure(label, [group])) as Row[];
      const unpaired = run.ceilings.filter((x) => !x.label.includes('paired'));
      const first = unpaired.find((x) => x.workload === op && x.concurrency === at);
      const base = paired ?? first;
      const ratio = report.ratio(row.rps, base?.rps);
      if (base)
        row.ceiling = { kind, concurrency: at, rps: base.rps, p99Ms: base.p99Ms, ratio, paired: !!paired };
      const pg = run.ceilings.find((x) => x.workload === 'pgPointSelect' && x.concurrency === c);
      if (kind === 'echo') row.pgCeilingRps = pg?.rps;
      run.scenarios.push(row);
    }
  const shed = run.scenarios.filter((r) => SLOW.includes(r.workload) && r.errors.RESOURCE_EXHAUSTED);
  const where = shed.map((r) => `${r.workload} c=${r.concurrency}`).join(', ');
  const design =
    'HASH_CONCURRENCY bcrypt operations run, HASH_QUEUE_MAX wait; refused virtual users retry at once';
  if (shed.length)
    run.server.notes.push(`RESOURCE_EXHAUSTED in ${where} is load shedding by design: ${design}.`);

  if (o.scenarios.includes('getUserById')) {
    const [alone] = (await measure('GetUser alone', [get10])) as Row[];
    const flood: GroupRequest = { label: 'login flood', workload: 'login', concurrency: 8 };
    const [during, login] = (await measure('GetUser during a login flood', [get10, flood])) as Row[];
    run.flood = { alone, during, login };
  }
  const probe = (workload: 'loginWrongPassword' | 'loginUnknownEmail') => ({ label: workload, workload });
  const probes = [probe('loginWrongPassword'), probe('loginUnknownEmail')].map((p) => ({
    ...p,
    concurrency: 1,
  }));
  const [wrong, unknown] = (await measure('Login', probes, 'server', {
    durationMs: Math.max(o.durationS, 4) * 1e3,
  })) as Row[];
  run.loginTiming = { wrong, unknown };
  await sleep(1000);
  run.server.idleRssAfterMb = nodeRssMb(server.child.pid as number);

  const one = run.scenarios.find((r) => r.workload === 'getUserById' && r.concurrency === 50);
  await stop('warm');
  if (o.compareWorkers && one) {
    server = await launch('warm, WORKERS=2', 2);
    await context();
    await warmUp();
    const [two] = (await measure('GetUser by id, WORKERS=2', [{ ...get10, concurrency: 50 }])) as Row[];
    run.workers = { nodeProcs: [one, two].map((r) => r.usage?.nodeProcs ?? 0), rows: [one, two] };
    await stop('warm, WORKERS=2');
  }
  if (o.compareOps && one) {
    // Fresh servers in turn, without and with the operations port (so with metrics collected),
    // twice, so a drift of the machine shows as a difference between rounds, not as the cost.
    const opsPort = await freePort();
    const sides = { off: [] as Row[], on: [] as Row[] };
    let scrapes = 0;
    for (const round of o.quick ? [1, 2] : [1, 2, 3])
      for (const side of round % 2 ? (['off', 'on'] as const) : (['on', 'off'] as const)) {
        const label = `warm, ops port ${side} (${round})`;
        server = await launch(label, 1, side === 'on' ? { OPS_PORT: `${opsPort}` } : {});
        await context();
        await warmUp();
        const scraper = side === 'on' ? scrapeEvery(opsPort, 1000) : undefined;
        const title = `GetUser by id, ops port ${side}`;
        const window = { durationMs: Math.max(o.durationS, 5) * 1e3 }; // a 5 % difference needs a few seconds
        const [row] = (await measure(title, [{ ...get10, concurrency: 50 }], 'server', window)) as Row[];
        scrapes += (await scraper?.stop()) ?? 0;
        sides[side].push(row);
        await stop(label);
      }
    run.opsPort = { ...sides, scrapes, everyMs: 1000 };
  }
  if (o.compareCache && o.scenarios.includes('getUserById')) {
    run.cache = await measureCache();
  }

  /**
   * The read cache: instance A (the embedded database's owner, with its operations port for the
   * hit counts) and B on the same database. GetUser and ValidateToken at c=50 with a small working
   * set and a large one, each right after its echo ceiling; the revocation trials across A and B;
   * then the same RPCs on a fresh server with CACHE=off beside the pg point-select ceiling.
   */
  async function measureCache(): Promise<NonNullable<RunResult['cache']>> {
    const [opsA, opsB] = [await freePort(), await freePort()];
    server = await launch('warm, cache: A', 1, { OPS_PORT: `${opsA}` });
    const a = server;
    const bEnv = { ...env, SECRET_KEY: secret, WORKERS: '1', DATABASE_URL: databaseUrlOf(dataDir) };
    const b = await serveBuild(dataDir, { ...bEnv, OPS_PORT: `${opsB}` });
    cleanup.push(() => b.stop());
    progress(`server B on the same database: ready in ${f(b.startupMs)} ms`);
    const ws = Math.min(o.workingSet, ids.length);
    const t = performance.now();
    const big = await sessionsWithTokens(dataDir, a.address, ids.slice(0, ws), ws);
    const pairs = await sessionsWithTokens(dataDir, a.address, ids, o.revocationTrials);
    progress(`${f(ws + pairs.length)} more sessions with access tokens in ${f(performance.now() - t)} ms`);
    const rows: CacheRow[] = [];
    const step = async (
      label: string,
      workload: 'getUserById' | 'validateToken',
      extra: Partial<WorkerContext>,
    ) => {
      await context(a, extra);
      const echoRow = await ceiling('echo', 50, `echo (paired with ${label})`);
      const before = await cacheCounts(opsA);
      const [row] = (await measure(label, [{ label: workload, workload, concurrency: 50 }])) as Row[];
      const after = await cacheCounts(opsA);
      const hitRatio = Object.fromEntries(
        ['session', 'user'].map((k) => {
          const d = (r: string) => (after[`${k}:${r}`] ?? 0) - (before[`${k}:${r}`] ?? 0);
          const all = d('hit') + d('miss') + d('bypass');
          return [k, all ? d('hit') / all : undefined];
        }),
      );
      progress(
        `  hit ratio: sessions ${f((hitRatio.session ?? 0) * 100, 1)}%, users ${f((hitRatio.user ?? 0) * 100, 1)}%`,
      );
      rows.push({ label, row, echo: echoRow, hitRatio });
    };
    await context(a);
    await warmUp();
    const spread = { accessTokens: big.map((x) => x.accessToken), spreadTokens: true };
    await step('GetUser by id, warm cache (100 users, 4 sessions)', 'getUserById', {
      ids: ids.slice(0, 100),
    });
    await step('ValidateToken, warm cache (4 sessions)', 'validateToken', {});
    await step(`GetUser by id, working set ${f(ws)}`, 'getUserById', { ids: ids.slice(0, ws), ...spread });
    await step(`ValidateToken, working set ${f(ws)}`, 'validateToken', spread);
    progress(`revocation across instances: ${pairs.length} trials`);
    const revocation = await revocationTrials(a.address, b.address, pairs, serviceToken);
    const { p50Ms, p99Ms, maxMs, lateTrue, sameInstanceStale } = revocation;
    progress(
      `  B answered inactive after A's Logout returned: p50 ${f(p50Ms, 2)}  p99 ${f(p99Ms, 2)}  max ${f(maxMs, 2)} ms; ` +
        `active answers sent later than ${revocation.boundMs} ms after: ${lateTrue}; stale on A: ${sameInstanceStale}`,
    );
    await b.stop();
    await stop('warm, cache: A');

    server = await launch('warm, CACHE=off', 1, { CACHE: 'off' });
    await context();
    await warmUp();
    const off: CacheRow[] = [];
    const pgRow = await ceiling('pgPointSelect', 50, 'pg point-select (paired with CACHE=off)');
    for (const [label, workload] of [
      ['GetUser by id, CACHE=off', 'getUserById'],
      ['ValidateToken, CACHE=off', 'validateToken'],
    ] as const) {
      const echoRow = await ceiling('echo', 50, `echo (paired with ${label})`);
      const [row] = (await measure(label, [{ label: workload, workload, concurrency: 50 }])) as Row[];
      off.push({ label, row, echo: echoRow, pg: pgRow, hitRatio: {} });
    }
    await stop('warm, CACHE=off');
    return { rows, off, revocation, workingSet: ws };
  }
  server = undefined;
  if (run.server.startups.every((s) => s.readyBy === 'health'))
    run.server.notes.push('No SERVING line at LOG_LEVEL=warn (it is at info): ready by grpc.health.v1.');
  run.elapsedS = (performance.now() - T0) / 1000;
  run.verdicts = report.verdicts(run);
  const stamp = path.join(outDir, run.startedAt.replace(/[:.]/g, '-'));
  fs.writeFileSync(`${stamp}.json`, `${JSON.stringify(run, null, 2)}\n`);
  fs.writeFileSync(`${stamp}.html`, report.renderHtml(run));
  const rel = path.relative(process.cwd(), stamp);
  process.stdout.write(`${report.renderText(run)}\nresults: ${rel}.json\nreport:  ${rel}.html\n`);
}

if (v.help) {
  const line = ([k, [d, text]]: [string, [unknown, string]]) =>
    `  --${k.padEnd(20)} ${text}${d ? ` (default ${d})` : ''}`;
  const help = Object.entries(FLAGS).map(line);
  process.stdout.write(`npm run bench -- [flags]\n\n${help.join('\n')}\n`);
} else {
  const [cpus, loadAvg] = [os.cpus(), os.loadavg().map((l) => Math.round(l * 100) / 100)];
  const machine = { cpus: cpus.length, cpuModel: cpus[0]?.model ?? '?', node: process.version, loadAvg };
  const server = { env: {}, startups: [], notes: [], profiles: [] };
  const lists = { ceilings: [], scenarios: [], verdicts: [] };
  const [startedAt, elapsedS] = [new Date().toISOString(), 0];
  const run: RunResult = { startedAt, elapsedS, machine, options: o, server, ...lists };
  progress(`bench${o.quick ? ' --quick' : ''} on ${cpus.length} cores, load average ${loadAvg.join(' ')}`);
  const cleanup: (() => Promise<unknown>)[] = [];
  const stopAll = async () => {
    for (const step of cleanup.splice(0).reverse()) await step().catch((err) => progress(`cleanup: ${err}`));
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const)
    process.once(sig, () => {
      progress(`${sig}: stopping everything the bench started`);
      void stopAll().then(() => process.exit(130));
    });
  main(run, cleanup)
    .catch((err: unknown) => {
      progress(`bench failed: ${(err as Error)?.stack ?? String(err)}`);
      process.exitCode = 1;
    })
    .finally(async () => {
      await stopAll();
      progress('done; every process the bench started has stopped');
    });
}
