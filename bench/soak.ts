/**
 * npm run soak [-- --seconds 300 --concurrency 16 --bcrypt-rounds 10 --heap-growth-mb 32 --rss-growth-mb 96]
 *
 * The bench's mixed workload (register, login, get, batch get, list, refresh, validate) from the
 * bench's load workers, for a bounded time, against the production build on a fresh embedded
 * PostgreSQL, in 10 s steps with a progress line each; the server's RSS and heap come from its
 * STATS_LOG_INTERVAL_S lines. Then a verdict: zero unexpected errors, zero lost writes (every user
 * it registered logs in at the end), and memory growth after warm-up within the bounds. Exit code
 * 0 on PASS, 1 on FAIL.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { Code, connect, type ServiceError } from '../src/client.js';
import { tempDataDir } from '../src/db/embedded.js';
import { BENCH_PASSWORD, BENCH_SERVER_ENV, LoadPool } from './lib/load.js';
import { introspectionToken, login, seed, seedIntrospector, serveBuild } from './lib/seed.js';

const option = (d: string) => ({ type: 'string', default: d }) as const;
const { values: a } = parseArgs({
  options: {
    ...{ seconds: option(process.env.SOAK_SECONDS ?? '300'), concurrency: option('16') },
    ...{ 'bcrypt-rounds': option('10'), 'heap-growth-mb': option('32'), 'rss-growth-mb': option('96') },
  },
});
const [SECONDS, VUS, ROUNDS] = [Number(a.seconds), Number(a.concurrency), Number(a['bcrypt-rounds'])];
const [HEAP_MB, RSS_MB, USERS] = [Number(a['heap-growth-mb']), Number(a['rss-growth-mb']), 1000];
const WARMUP_S = Math.min(60, Math.max(10, Math.round(SECONDS * 0.2)));

const log = (msg: string) =>
  process.stderr.write(`[soak ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
const mb = (bytes = 0, digits = 0) => (bytes / 2 ** 20).toFixed(digits);
const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)] ?? 0;
const sum = (m: Map<string, number>) => [...m.values()].reduce((x, y) => x + y, 0);

async function main(): Promise<boolean> {
  log(`${SECONDS} s, ${VUS} virtual users, warm-up ${WARMUP_S} s, BCRYPT_ROUNDS=${ROUNDS}`);
  const [dataDir, t0] = [tempDataDir('cs-soak-'), Date.now()];
  const samples: { t: number; rss: number; heapUsed: number }[] = [];
  const onLine = (line: string) => {
    if (/"level":(50|60)/.test(line)) log(`server error: ${line.slice(0, 300)}`);
    if (!line.includes('"msg":"stats"')) return;
    const { rss, heapUsed } = (JSON.parse(line) as { stats: { memory: NodeJS.MemoryUsage } }).stats.memory;
    samples.push({ t: (Date.now() - t0) / 1000, rss, heapUsed });
  };
  const env = { NODE_ENV: 'production', SECRET_KEY: randomBytes(48).toString('base64'), LOG_LEVEL: 'info' };
  const stats = { BCRYPT_ROUNDS: `${ROUNDS}`, STATS_LOG_INTERVAL_S: '10', ...BENCH_SERVER_ENV };
  const server = await serveBuild(dataDir, { ...env, ...stats }, { onLine });
  const client = connect(server.address, { deadlineMs: 60_000 });
  let pool: LoadPool | undefined;
  try {
    pool = await LoadPool.start(2, 4);
    log(`server pid ${server.child.pid} SERVING on ${server.address}`);
    const seeded = await seed(dataDir, USERS, VUS * 2 + 10, ROUNDS);
    const introspector = await seedIntrospector(dataDir);
    let [sessions, tokensAt, accessTokens, calls] = [seeded.sessions, 0, [] as string[], 0];
    let introspection = '';
    const [counts, errors] = [new Map<string, number>(), new Map<string, number>()];
    const registered: string[] = [];
    const add = (m: Map<string, number>, key: string, n = 1) => {
      const k = key.slice(0, 160);
      m.set(k, (m.get(k) ?? 0) + n);
    };
    while (Date.now() - t0 < SECONDS * 1000) {
      if (Date.now() - tokensAt > 10 * 60_000) {
        // users' tokens live 30 minutes, the service's 15
        [tokensAt, accessTokens] = [Date.now(), (await login(server.address, 4)).map((x) => x.accessToken)];
        introspection = await introspectionToken(server.address, introspector);
      }
      const users = { ids: seeded.ids, userCount: USERS, password: BENCH_PASSWORD, accessTokens };
      const runTag = randomBytes(4).toString('hex');
      const ctx = { ...users, introspectionToken: introspection, deadlineMs: 30_000, runTag };
      pool.setContext({ target: server.address, ...ctx });
      const durationMs = Math.max(1000, Math.min(10_000, SECONDS * 1000 - (Date.now() - t0)));
      const mixed = { label: 'mixed', workload: 'mixed', concurrency: VUS, sessions } as const;
      const [g] = (await pool.run([mixed], { warmupMs: 0, durationMs })).groups;
      if (!g) break;
      [sessions, calls] = [g.sessionsOut.slice(0, VUS * 3), calls + g.ok];
      registered.push(...g.registered);
      for (const [op, s] of Object.entries(g.byOp)) {
        add(counts, op, s?.ok);
        for (const [code, n] of Object.entries(s?.errors ?? {}))
          add(errors, `${op} ${code}: ${g.errorSamples[code]}`, n);
      }
      if (g.vusLost) add(errors, 'virtual users that lost their session', g.vusLost);
      const [t, m] = [Math.round((Date.now() - t0) / 1000), samples.at(-1)];
      const memory = m ? `, server RSS ${mb(m.rss)} MB heap ${mb(m.heapUsed, 1)} MB` : '';
      const done = `${calls} calls (${Math.round(g.rps)}/s now), ${sum(errors)} errors`;
      log(`${t}/${SECONDS} s: ${done}, ${registered.length} users registered${memory}`);
    }

    log(`load done: ${calls} calls; checking that all ${registered.length} registered users can log in`);
    let lost = 0;
    const check = (email: string) =>
      client.auth.login({ email, password: BENCH_PASSWORD }).catch((err: ServiceError) => {
        lost++;
        add(errors, `final login ${Code[err.code] ?? 'local'}: ${err.details ?? String(err)}`);
      });
    for (let i = 0; i < registered.length; i += 16) await Promise.all(registered.slice(i, i + 16).map(check));

    const after = samples.filter((x) => x.t >= WARMUP_S);
    const growth = (k: 'rss' | 'heapUsed') =>
      median(after.slice(-3).map((x) => x[k])) - median(after.slice(0, 3).map((x) => x[k]));
    const [heap, rss, unexpected] = [growth('heapUsed'), growth('rss'), sum(errors)];
    const listed = unexpected ? ` (${[...errors].map(([k, n]) => `${n}× ${k}`).join('; ')})` : '';
    const verdicts: [boolean, string][] = [
      [unexpected === 0, `unexpected errors: ${unexpected}${listed}`],
      [!lost, `lost writes: ${lost} of ${registered.length} registered users could not log in at the end`],
      [after.length >= 2, `memory samples after the ${WARMUP_S} s warm-up: ${after.length}`],
      [heap < HEAP_MB * 2 ** 20, `heap growth after warm-up: ${mb(heap, 1)} MB (bound ${HEAP_MB} MB)`],
      [rss < RSS_MB * 2 ** 20, `RSS growth after warm-up: ${mb(rss, 1)} MB (bound ${RSS_MB} MB)`],
    ];
    const pass = verdicts.every(([ok]) => ok);
    const memory = samples.map((x) => `${x.t.toFixed(0)}: ${mb(x.rss)}/${mb(x.heapUsed, 1)}`);
    const ops = [...counts].map(([k, n]) => `${k} ${n}`);
    const rate = `${calls} calls (${(calls / SECONDS).toFixed(0)}/s)`;
    process.stdout.write(`\nsoak: ${SECONDS} s, ${VUS} virtual users, ${rate}: ${ops.join(', ')}\n`);
    process.stdout.write(`memory samples (s: RSS MB / heap MB): ${memory.join(', ')}\n`);
    for (const [ok, text] of verdicts) process.stdout.write(`${ok ? 'PASS' : 'FAIL'}  ${text}\n`);
    process.stdout.write(`VERDICT: ${pass ? 'PASS' : 'FAIL'}\n`);
    return pass;
  } finally {
    client.close();
    await pool?.stop();
    await server.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

main().then(
  (pass) => process.exit(pass ? 0 : 1),
  (err: unknown) => {
    log(String(err instanceof Error ? err.stack : err));
    process.exit(1);
  },
);
