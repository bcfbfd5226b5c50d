/**
 * npm run soak [-- --seconds 300 --concurrency 16 --heap-growth-mb 32 --rss-growth-mb 96]
 *
 * A bounded mixed load (register, login, get, batch get, list, refresh, validate) against the
 * production build on a fresh embedded PostgreSQL (or SOAK_DATABASE_URL), sampling the server's RSS
 * and heap every 10 s (its STATS_LOG_INTERVAL_S lines), then a verdict: zero unexpected errors, zero
 * lost writes (every user it registered can log in at the end), and memory growth after warm-up
 * under the stated bounds. Exit code 0 on PASS, 1 on FAIL.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Code, type ConnectSphereClient, connect, type ServiceError } from '../src/client.js';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: process.env.SOAK_SECONDS ?? '300' },
    concurrency: { type: 'string', default: '16' },
    'bcrypt-rounds': { type: 'string', default: '10' },
    'heap-growth-mb': { type: 'string', default: '32' },
    'rss-growth-mb': { type: 'string', default: '96' },
  },
});
const SECONDS = Number(args.seconds);
const CONCURRENCY = Number(args.concurrency);
const HEAP_BOUND_MB = Number(args['heap-growth-mb']);
const RSS_BOUND_MB = Number(args['rss-growth-mb']);
const WARMUP_S = Math.min(60, Math.max(10, Math.round(SECONDS * 0.2)));
const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');

const log = (msg: string) =>
  process.stderr.write(`[soak ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
const mb = (bytes: number) => bytes / 1024 / 1024;

interface Sample {
  t: number;
  rss: number;
  heapUsed: number;
}

function startServer(dataDir: string): Promise<{ child: ChildProcess; port: number; samples: Sample[] }> {
  const env = {
    ...process.env,
    NODE_ENV: 'production',
    SECRET_KEY: `soak-${Math.random().toString(36).repeat(4)}`,
    GRPC_HOST: '127.0.0.1',
    GRPC_PORT: '0',
    DATA_DIR: dataDir,
    DATABASE_URL: process.env.SOAK_DATABASE_URL ?? '',
    BCRYPT_ROUNDS: args['bcrypt-rounds'],
    LOG_LEVEL: 'info',
    STATS_LOG_INTERVAL_S: '10',
  };
  const child = spawn(process.execPath, [path.join(ROOT, 'dist/src/main.js')], {
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const samples: Sample[] = [];
  const started = Date.now();
  return new Promise((resolve, reject) => {
    let buf = '';
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      buf += chunk;
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      for (const line of lines) {
        if (line.includes('"msg":"SERVING"'))
          resolve({ child, port: (JSON.parse(line) as { port: number }).port, samples });
        else if (line.includes('"msg":"stats"')) {
          const { stats } = JSON.parse(line) as { stats: { memory: NodeJS.MemoryUsage } };
          samples.push({
            t: (Date.now() - started) / 1000,
            rss: stats.memory.rss,
            heapUsed: stats.memory.heapUsed,
          });
        } else if (/"level":(50|60)/.test(line)) log(`server error: ${line.slice(0, 300)}`);
      }
    });
    child.once('exit', (code) => reject(new Error(`server exited (${code}) before SERVING`)));
  });
}

async function main(): Promise<number> {
  if (!fs.existsSync(path.join(ROOT, 'dist/src/main.js')))
    throw new Error('run `npm run build` first (npm run soak does)');
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-soak-'));
  fs.chmodSync(dataDir, 0o711);
  log(
    `${SECONDS} s, ${CONCURRENCY} virtual users, warm-up ${WARMUP_S} s, BCRYPT_ROUNDS=${args['bcrypt-rounds']}`,
  );
  const server = await startServer(dataDir);
  const address = `127.0.0.1:${server.port}`;
  log(`server pid ${server.child.pid} SERVING on ${address}`);

  const counts = new Map<string, number>();
  const errors = new Map<string, number>();
  const registered: { email: string; password: string }[] = [];
  const count = (op: string) => counts.set(op, (counts.get(op) ?? 0) + 1);
  const fail = (op: string, err: unknown) => {
    const key =
      `${op} ${Code[(err as ServiceError).code] ?? 'local'}: ${(err as ServiceError).details ?? String(err)}`.slice(
        0,
        160,
      );
    errors.set(key, (errors.get(key) ?? 0) + 1);
  };
  let seq = 0;
  const account = () => {
    seq++;
    return {
      email: `soak-${process.pid}-${seq}@example.com`,
      password: `soak password ${seq}`,
      displayName: `Soak ${seq}`,
    };
  };

  const base = connect(address, { deadlineMs: 30_000 });
  const ids: string[] = [];
  const deadline = Date.now() + SECONDS * 1000;
  const vus = Array.from({ length: CONCURRENCY }, async (_, vu) => {
    const mine = account();
    const reg = await base.auth.register(mine);
    registered.push(mine);
    ids.push(reg.user?.id ?? '');
    let access = reg.tokens?.accessToken ?? '';
    let refresh = reg.tokens?.refreshToken ?? '';
    let me: ConnectSphereClient = base.withToken(access);
    const ops: [number, string, () => Promise<unknown>][] = [
      [
        2,
        'register',
        async () => {
          const a = account();
          const r = await base.auth.register(a);
          registered.push(a);
          ids.push(r.user?.id ?? '');
        },
      ],
      [3, 'login', () => base.auth.login(registered[(vu * 7919 + seq) % registered.length] ?? mine)],
      [
        30,
        'get',
        () => me.users.getUser({ lookup: { $case: 'id', value: ids[(seq * 31 + vu) % ids.length] ?? '' } }),
      ],
      [10, 'batch-get', () => me.users.batchGetUsers({ ids: ids.slice(-50) })],
      [10, 'list', () => me.users.listUsers({ pageSize: 50, pageToken: '', query: 'soak' })],
      [
        10,
        'refresh',
        async () => {
          const r = await base.auth.refreshToken({ refreshToken: refresh });
          access = r.tokens?.accessToken ?? '';
          refresh = r.tokens?.refreshToken ?? '';
          me = base.withToken(access);
        },
      ],
      [35, 'validate', () => base.auth.validateToken({ accessToken: access })],
    ];
    const total = ops.reduce((n, [w]) => n + w, 0);
    let i = vu;
    while (Date.now() < deadline) {
      const pick = (i++ * 7 + vu * 13) % total;
      let upTo = 0;
      const op =
        ops.find(([w]) => {
          upTo += w;
          return pick < upTo;
        }) ?? (ops[0] as (typeof ops)[number]);
      try {
        await op[2]();
        count(op[1]);
      } catch (err) {
        fail(op[1], err);
        if ((err as ServiceError).code === Code.UNAVAILABLE) await new Promise((r) => setTimeout(r, 100));
      }
    }
  });
  const progress = setInterval(() => {
    const done = [...counts.values()].reduce((a, b) => a + b, 0);
    const last = server.samples[server.samples.length - 1];
    const errs = [...errors.values()].reduce((a, b) => a + b, 0);
    log(
      `${Math.round(SECONDS - (deadline - Date.now()) / 1000)}/${SECONDS} s: ${done} calls, ${errs} errors, ` +
        `${registered.length} users` +
        (last ? `, server RSS ${mb(last.rss).toFixed(0)} MB heap ${mb(last.heapUsed).toFixed(1)} MB` : ''),
    );
  }, 10_000);
  await Promise.all(vus);
  clearInterval(progress);
  const calls = [...counts.values()].reduce((a, b) => a + b, 0);

  log(`load done: ${calls} calls; checking that all ${registered.length} registered users can log in`);
  let lost = 0;
  const checker = connect(address, { deadlineMs: 60_000 });
  for (let i = 0; i < registered.length; i += 16) {
    await Promise.all(
      registered.slice(i, i + 16).map((a) =>
        checker.auth.login(a).catch((err: unknown) => {
          lost++;
          fail('final-login', err);
        }),
      ),
    );
  }
  checker.close();
  base.close();
  server.child.kill('SIGTERM');
  await new Promise((r) => server.child.once('exit', r));
  fs.rmSync(dataDir, { recursive: true, force: true });

  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
  const afterWarmup = server.samples.filter((x) => x.t >= WARMUP_S);
  const first = afterWarmup.slice(0, 3);
  const last = afterWarmup.slice(-3);
  const heapGrowth = mb(median(last.map((x) => x.heapUsed)) - median(first.map((x) => x.heapUsed)));
  const rssGrowth = mb(median(last.map((x) => x.rss)) - median(first.map((x) => x.rss)));
  const unexpected = [...errors.values()].reduce((a, b) => a + b, 0);

  const lines = [
    '',
    `soak: ${SECONDS} s, ${CONCURRENCY} virtual users, ${calls} calls (${(calls / SECONDS).toFixed(0)}/s): ` +
      [...counts].map(([k, v]) => `${k} ${v}`).join(', '),
    'memory samples (s: RSS MB / heap MB): ' +
      server.samples
        .map((x) => `${x.t.toFixed(0)}: ${mb(x.rss).toFixed(0)}/${mb(x.heapUsed).toFixed(1)}`)
        .join(', '),
  ];
  const verdicts: [boolean, string][] = [
    [
      unexpected === 0,
      `unexpected errors: ${unexpected}${unexpected ? ` (${[...errors].map(([k, v]) => `${v}× ${k}`).join('; ')})` : ''}`,
    ],
    [lost === 0, `lost writes: ${lost} of ${registered.length} registered users could not log in at the end`],
    [afterWarmup.length >= 2, `memory samples after the ${WARMUP_S} s warm-up: ${afterWarmup.length}`],
    [
      heapGrowth < HEAP_BOUND_MB,
      `heap growth after warm-up: ${heapGrowth.toFixed(1)} MB (bound ${HEAP_BOUND_MB} MB)`,
    ],
    [
      rssGrowth < RSS_BOUND_MB,
      `RSS growth after warm-up: ${rssGrowth.toFixed(1)} MB (bound ${RSS_BOUND_MB} MB)`,
    ],
  ];
  for (const [ok, text] of verdicts) lines.push(`${ok ? 'PASS' : 'FAIL'}  ${text}`);
  const pass = verdicts.every(([ok]) => ok);
  lines.push(`VERDICT: ${pass ? 'PASS' : 'FAIL'}`, '');
  process.stdout.write(lines.join('\n'));
  return pass ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    log(String(err instanceof Error ? err.stack : err));
    process.exit(1);
  },
);
