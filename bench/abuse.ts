/**
 * `npm run bench:abuse -- [--rounds 12] [--flood-s 20] [--logins 1000]`
 *
 * The two denial scenarios of issue 16, measured against the production build on a fresh embedded
 * database (TRUSTED_PROXIES=127.0.0.1, so `x-forwarded-for` names the client):
 *
 * 1. Flood: 10 client addresses each keep 16 Registers of an address that already exists in
 *    flight (each address on a channel of its own) for `--flood-s` seconds; meanwhile a bystander
 *    from an eleventh address logs in once a second (deadline 10 s). Prints the bystander's
 *    latencies and codes, and the flooders' codes.
 * 2. The seed's own load test: `--logins` Logins of one user with the right password, 10 in flight
 *    (as `ghz -c 10 -n 1000`). Prints the codes.
 *
 * Numbers, not verdicts: test/abuse.test.ts holds the pass/fail form of both at test sizes.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Metadata } from '@grpc/grpc-js';
import { Code, connect, type ServiceError } from '../src/client.js';
import { serveBuild } from './lib/seed.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '12' },
    'flood-s': { type: 'string', default: '20' },
    logins: { type: 'string', default: '1000' },
  },
});
const rounds = Number(values.rounds);
const floodS = Number(values['flood-s']);
const logins = Number(values.logins);

const from = (address: string) => {
  const m = new Metadata();
  m.set('x-forwarded-for', address);
  return m;
};
const codeName = (err: unknown) => Code[(err as ServiceError).code ?? Code.UNKNOWN] ?? 'UNKNOWN';
const tally = (counts: Map<string, number>, k: string) => counts.set(k, (counts.get(k) ?? 0) + 1);
const show = (counts: Map<string, number>) => [...counts].map(([k, n]) => `${k} ${n}`).join(', ') || 'none';
const pct = (sorted: number[], p: number) =>
  sorted.length
    ? (sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number)
    : NaN;

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-abuse-'));
const server = await serveBuild(dataDir, {
  BCRYPT_ROUNDS: String(rounds),
  TRUSTED_PROXIES: '127.0.0.1',
  LOG_LEVEL: 'warn',
});
const victim = {
  email: 'victim@bench.example.com',
  password: 'correct horse battery staple',
  displayName: 'V',
};
const bystander = {
  email: 'bystander@bench.example.com',
  password: 'tr0ub4dor and 3 more',
  displayName: 'B',
};
try {
  const setup = connect(server.address, { deadlineMs: 60_000 });
  await setup.auth.register(victim, { metadata: from('192.0.2.1') });
  await setup.auth.register(bystander, { metadata: from('192.0.2.2') });
  setup.close();
  console.log(`server ${server.address}, BCRYPT_ROUNDS=${rounds}`);

  // 1. the flood
  const channelOptions = { 'grpc.use_local_subchannel_pool': 1 };
  const flooders = Array.from({ length: 10 }, (_, i) => ({
    address: `198.51.100.${i + 1}`,
    client: connect(server.address, { deadlineMs: 30_000, channelOptions }),
  }));
  const floodCodes = new Map<string, number>();
  let flooding = true;
  const floods = flooders.flatMap(({ address, client }) =>
    Array.from({ length: 16 }, async () => {
      while (flooding) {
        await client.auth
          .register(victim, { metadata: from(address) })
          .then(() => tally(floodCodes, 'OK'))
          .catch((err) => tally(floodCodes, codeName(err)));
      }
    }),
  );
  const by = connect(server.address, { deadlineMs: 10_000, channelOptions });
  const latencies: number[] = [];
  const byCodes = new Map<string, number>();
  await new Promise((r) => setTimeout(r, 3_000)); // the flood builds up first
  const until = Date.now() + (floodS - 3) * 1000;
  while (Date.now() < until) {
    const t = performance.now();
    await by.auth
      .login({ email: bystander.email, password: bystander.password }, { metadata: from('203.0.113.7') })
      .then(() => tally(byCodes, 'OK'))
      .catch((err) => tally(byCodes, codeName(err)));
    latencies.push(performance.now() - t);
    await new Promise((r) => setTimeout(r, 1_000));
  }
  flooding = false;
  await Promise.all(floods);
  for (const f of flooders) f.client.close();
  by.close();
  latencies.sort((a, b) => a - b);
  console.log(`\nflood: 10 addresses x 16 parallel Registers of a taken address for ${floodS} s`);
  console.log(`  bystander Logins (once a second from a 12th address): ${show(byCodes)}`);
  console.log(
    `  bystander latency ms: p50 ${pct(latencies, 50).toFixed(0)}, max ${pct(latencies, 100).toFixed(0)}`,
  );
  console.log(`  flooders' answers: ${show(floodCodes)}`);

  // 2. ten parallel Logins of one user with the right password
  const loginCodes = new Map<string, number>();
  const c = connect(server.address, { deadlineMs: 60_000 });
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: 10 }, async () => {
      while (next++ < logins) {
        await c.auth
          .login({ email: victim.email, password: victim.password }, { metadata: from('203.0.113.9') })
          .then(() => tally(loginCodes, 'OK'))
          .catch((err) => tally(loginCodes, codeName(err)));
      }
    }),
  );
  c.close();
  const s = (performance.now() - started) / 1000;
  console.log(
    `\nLogin of one user with the right password, c=10, n=${logins}: ${show(loginCodes)} in ${s.toFixed(1)} s`,
  );
} finally {
  await server.stop();
  fs.rmSync(dataDir, { recursive: true, force: true });
}
