/**
 * `npm run bench:ghz -- [--target host:port] [--only get-user-by-id,login,...] [--duration 30s]`
 *
 * The ghz configs of bench/ghz/ (written for ghz v0.121.0) against a running server (e.g.
 * `npm start`): registers and logs in a ghz user, fills the placeholders (`${TOKEN}`, `${IDS}`, ...,
 * which ghz's own templates cannot know) into copies under bench/results/ghz/, and runs
 * `ghz --config` on each. Without ghz on PATH it says how to get it and exits 0.
 * test/bench-ghz.test.ts fills them the same way and sends what each describes to the real server.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Code, type ConnectSphereClient, connect, type ServiceError } from '../src/client.js';
import { ROOT } from './lib/server-process.js';

export type GhzConfig = Record<string, unknown> & { call: string; data: unknown; metadata?: object };

/** bench/ghz/*.json by name (file name without .json). */
export function loadConfigs(): Map<string, GhzConfig> {
  const dir = path.join(ROOT, 'bench/ghz');
  const read = (f: string) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as GhzConfig;
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json'));
  return new Map(files.sort().map((f) => [path.basename(f, '.json'), read(f)]));
}

/** A string that is one placeholder becomes its value (any JSON); placeholders inside text are replaced as text. */
export function fillConfig<T>(value: T, values: Record<string, unknown>): T {
  const get = (name: string) => {
    if (!(name in values)) throw new Error(`no value for the placeholder \${${name}}`);
    return values[name];
  };
  const fill = (v: unknown): unknown => {
    if (typeof v === 'string') {
      const whole = /^\$\{([A-Z_]+)\}$/.exec(v)?.[1];
      return whole ? get(whole) : v.replace(/\$\{([A-Z_]+)\}/g, (_, n: string) => String(get(n)));
    }
    if (Array.isArray(v)) return v.map(fill);
    return v && typeof v === 'object'
      ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fill(x)]))
      : v;
  };
  return fill(value) as T;
}

export const GHZ_USER = {
  email: 'ghz-bench@bench.example.com',
  password: 'ghz-bench-password',
  displayName: 'ghz',
};

/** Users the ghz user finds by its display-name search (ListUsers for a non-admin; BatchGetUsers' ids). */
const GHZ_PEERS = 50;

/** The placeholder values, from a live server: a ghz user, its token, ids, one refresh token per RefreshToken request. */
export async function placeholderValues(
  client: ConnectSphereClient,
  configs: Map<string, GhzConfig>,
  say = log,
) {
  const ensure = (account: typeof GHZ_USER) =>
    client.auth.register(account).catch((err: ServiceError) => {
      if (err.code !== Code.ALREADY_EXISTS) throw err;
    });
  await ensure(GHZ_USER);
  for (let i = 1; i < GHZ_PEERS; i += 8) {
    const peers = Array.from({ length: Math.min(8, GHZ_PEERS - i) }, (_, k) => ({
      ...GHZ_USER,
      email: `ghz-peer-${i + k}@bench.example.com`,
      displayName: `ghz peer ${i + k}`,
    }));
    await Promise.all(peers.map(ensure));
  }
  // not an admin: ListUsers is a search of display names starting with "ghz" (list-users.json)
  const [{ email, password }, query] = [GHZ_USER, { pageSize: 50, pageToken: '', query: 'ghz' }];
  const login = () => client.auth.login({ email, password });
  const first = await login();
  const token = first.tokens?.accessToken ?? '';
  const page = await client.withToken(token).users.listUsers(query);
  const refreshing = [...configs.values()].find((c) => /\$\{REFRESH_TOKENS\}/.test(JSON.stringify(c)));
  const n = Number(refreshing?.total ?? 0);
  if (n) say(`logging in ${n} times for the RefreshToken config (each refresh token works once)`);
  const refresh: { refresh_token: string }[] = [];
  // at most 4 at once: more parallel attempts of one account from one address than LOGIN_MAX_FAILURES
  // are refused before they are evaluated (a guessing race), whatever the password
  for (let i = 0; i < n; i += 4) {
    const batch = await Promise.all(Array.from({ length: Math.min(4, n - i) }, login));
    refresh.push(...batch.map((r) => ({ refresh_token: r.tokens?.refreshToken ?? '' })));
  }
  const ids = page.users.map((u) => u.id);
  return {
    TOKEN: token,
    USER_ID: first.user?.id,
    EMAIL: email,
    PASSWORD: password,
    IDS: ids,
    REFRESH_TOKENS: refresh,
  };
}

async function main(): Promise<number> {
  const options = {
    target: { type: 'string', default: 'localhost:50051' },
    only: { type: 'string' },
  } as const;
  const { values: o } = parseArgs({ options: { ...options, duration: { type: 'string' } } });
  const say = log;
  const configs = new Map([...loadConfigs()].filter(([name]) => !o.only || o.only.split(',').includes(name)));
  const version = spawnSync('ghz', ['--version'], { encoding: 'utf8' });
  if (version.error) {
    process.stdout.write(`ghz is not on PATH, so nothing was run. The configs fit ghz v0.121.0:
  - release binaries: https://github.com/bojand/ghz/releases/tag/v0.121.0 (unpack, put ghz on PATH)
  - with Go:          go install github.com/bojand/ghz/cmd/ghz@v0.121.0
  - docs:             https://ghz.sh/docs/install
Then start the server (npm start) and run: npm run bench:ghz -- --target localhost:50051
`);
    return 0;
  }
  say(`ghz ${version.stdout.trim()}; target ${o.target}; configs: ${[...configs.keys()].join(', ')}`);
  const client = connect(o.target as string, { deadlineMs: 60_000 });
  try {
    await client.waitForReady(10_000);
  } catch {
    say(`cannot reach the server at ${o.target}: start it first (npm start), or pass --target`);
    return 1;
  }
  const values = await placeholderValues(client, configs, say);
  client.close();
  const outDir = path.join(ROOT, 'bench/results/ghz');
  fs.mkdirSync(outDir, { recursive: true });
  let failed = 0;
  for (const [name, config] of configs) {
    const filled: Record<string, unknown> = { ...fillConfig(config, values), host: o.target };
    if (o.duration && 'duration' in filled) filled.duration = o.duration;
    const file = path.join(outDir, `${name}.json`);
    fs.writeFileSync(file, `${JSON.stringify(filled, null, 2)}\n`, { mode: 0o600 }); // holds a token
    say(`\n== ${name}: ghz --config ${path.relative(process.cwd(), file)}`);
    if (spawnSync('ghz', ['--config', file], { stdio: 'inherit' }).status !== 0) failed++;
  }
  return failed ? 1 : 0;
}

const log = (m: string) => process.stderr.write(`${m}\n`);
if (process.argv[1] && path.resolve(process.argv[1]) === import.meta.filename)
  main()
    .catch((err: unknown) => log(`bench:ghz failed: ${(err as Error)?.stack ?? String(err)}`) && 1)
    .then((code) => process.exit(code || 0));
