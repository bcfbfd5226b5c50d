/**
 * `npm run bench:ghz -- [--target host:port] [--only name,...] [--duration 30s]`
 *
 * Runs the ghz configs of bench/ghz/ against a running server (e.g. `npm start`): checks them
 * against ghz's documented options, registers and logs in a ghz user, fills the placeholders
 * (token, ids, refresh tokens) into copies under bench/results/ghz/, and runs `ghz --config` on
 * each. Without ghz on PATH it says how to get it and exits 0.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Code, connect, type ServiceError } from '../src/client.js';
import { fillConfig, listConfigs, type Placeholder, placeholdersOf, validateConfig } from './ghz-config.js';
import { ROOT } from './paths.js';

const GHZ_USER = {
  email: 'ghz-bench@bench.example.com',
  password: 'ghz-bench-password',
  displayName: 'ghz bench',
};

const INSTALL = `ghz is not on PATH, so nothing was run. To get it:
  - release binaries: https://github.com/bojand/ghz/releases (unpack, put ghz on PATH)
  - with Go:          go install github.com/bojand/ghz/cmd/ghz@latest
  - Homebrew:         brew install ghz
  - docs:             https://ghz.sh/docs/install
Then start the server (npm start) and run: npm run bench:ghz -- --target localhost:50051
`;

function say(message: string): void {
  process.stderr.write(`${message}\n`);
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      target: { type: 'string', default: 'localhost:50051' },
      only: { type: 'string' },
      duration: { type: 'string' },
      out: { type: 'string', default: 'bench/results/ghz' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(
      'npm run bench:ghz -- [--target host:port] [--only get-user-by-id,login,...] [--duration 30s] [--out dir]\n',
    );
    return 0;
  }

  // 1. the configs, checked against ghz's documented options
  const files = listConfigs().filter((f) => {
    const name = path.basename(f, '.json');
    return !values.only || values.only.split(',').includes(name);
  });
  let bad = false;
  const configs = files.map((file) => {
    const config = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
    const problems = validateConfig(config);
    if (problems.length) {
      bad = true;
      say(`${path.relative(ROOT, file)}:\n  ${problems.join('\n  ')}`);
    }
    return { file, name: path.basename(file, '.json'), config };
  });
  if (bad) return 1;
  say(
    `${configs.length} ghz configs checked against ghz's documented options: ${configs.map((c) => c.name).join(', ')}`,
  );

  // 2. ghz itself
  const version = spawnSync('ghz', ['--version'], { encoding: 'utf8' });
  if (version.error) {
    process.stdout.write(INSTALL);
    return 0;
  }
  say(`ghz ${version.stdout.trim()}; target ${values.target}`);

  // 3. a user, a token, ids and (for RefreshToken) one session per request
  const client = connect(values.target as string, { deadlineMs: 60_000 });
  try {
    await client.waitForReady(10_000);
  } catch {
    say(`cannot reach the server at ${values.target}: start it first (npm start), or pass --target`);
    return 1;
  }
  await client.auth.register(GHZ_USER).catch((err: ServiceError) => {
    if (err.code !== Code.ALREADY_EXISTS) throw err;
  });
  const login = () => client.auth.login({ email: GHZ_USER.email, password: GHZ_USER.password });
  const first = await login();
  const token = first.tokens?.accessToken ?? '';
  const page = await client.withToken(token).users.listUsers({ pageSize: 50, pageToken: '', query: '' });
  const values_: Partial<Record<Placeholder, unknown>> = {
    TOKEN: token,
    USER_ID: first.user?.id,
    EMAIL: GHZ_USER.email,
    PASSWORD: GHZ_USER.password,
    IDS: page.users.map((u) => u.id),
  };
  const refresh = configs.find((c) => placeholdersOf(c.config).includes('REFRESH_TOKENS'));
  if (refresh) {
    const n = Number(refresh.config.total ?? 100);
    say(`logging in ${n} times for ${refresh.name} (each refresh token works once; bcrypt makes this slow)`);
    const tokens: string[] = [];
    for (let i = 0; i < n; i += 8) {
      const batch = await Promise.all(Array.from({ length: Math.min(8, n - i) }, login));
      tokens.push(...batch.map((r) => r.tokens?.refreshToken ?? ''));
    }
    values_.REFRESH_TOKENS = tokens.map((t) => ({ refresh_token: t }));
  }
  client.close();

  // 4. run each filled config
  const outDir = path.resolve(ROOT, values.out as string);
  fs.mkdirSync(outDir, { recursive: true });
  let failed = 0;
  for (const c of configs) {
    const filled = fillConfig(c.config, values_) as Record<string, unknown>;
    filled.host = values.target;
    if (values.duration && 'duration' in filled) filled.duration = values.duration;
    const file = path.join(outDir, `${c.name}.json`);
    fs.writeFileSync(file, `${JSON.stringify(filled, null, 2)}\n`, { mode: 0o600 }); // holds a token
    say(`\n== ${c.name}: ghz --config ${path.relative(process.cwd(), file)}`);
    const run = spawnSync('ghz', ['--config', file], { stdio: 'inherit' });
    if (run.status !== 0) failed++;
  }
  return failed ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    say(`bench:ghz failed: ${(err as Error)?.stack ?? String(err)}`);
    process.exitCode = 1;
  },
);
