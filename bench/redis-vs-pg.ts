/**
 * `npm run bench:redis`: what a shared cache in Redis would cost per lookup, beside what the
 * service does: one PostgreSQL round trip on a pooled connection (a prepared SELECT of bound
 * values: the round trip without CACHE=off's table work), the record as a Redis GET (RESP over
 * TCP, what any client sends), and an in-process lru-cache lookup (what src/db/cache.ts does
 * underneath). Closed loop, one lookup in flight per virtual user; c=1 shows the round trip, c=50
 * the throughput. Needs a Redis at REDIS_URL (default redis://127.0.0.1:6379) and a PostgreSQL at
 * DATABASE_URL (default: postgres://postgres@127.0.0.1:5432/postgres); prints lookups per second
 * and the median, all three twice, alternating, so a drift of the machine shows.
 */
import net from 'node:net';
import { LRUCache } from 'lru-cache';
import pg from 'pg';

const REDIS = new URL(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
const PG = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const WINDOW_MS = Number(process.env.WINDOW_MS ?? 3000);
const VALUE = JSON.stringify({
  userId: '3f1e0c9a-2b7d-4c1e-9f3a-5d6b7c8e9f01',
  email: 'someone@example.com',
  roles: ['user'],
});

/** A minimal RESP client: commands are written as arrays, replies matched in order. */
function redisConnection(): Promise<(args: string[]) => Promise<string | null>> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(REDIS.port || 6379), REDIS.hostname);
    const waiting: ((v: string | null) => void)[] = [];
    let buf = Buffer.alloc(0);
    socket.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        const eol = buf.indexOf('\r\n');
        if (eol < 0) return;
        const type = String.fromCharCode(buf[0] as number);
        const head = buf.subarray(1, eol).toString();
        if (type === '$') {
          const len = Number(head);
          if (len < 0) {
            buf = buf.subarray(eol + 2);
            waiting.shift()?.(null);
            continue;
          }
          if (buf.length < eol + 2 + len + 2) return;
          const value = buf.subarray(eol + 2, eol + 2 + len).toString();
          buf = buf.subarray(eol + 2 + len + 2);
          waiting.shift()?.(value);
        } else {
          buf = buf.subarray(eol + 2);
          waiting.shift()?.(head);
        }
      }
    });
    socket.once('error', reject);
    socket.once('connect', () =>
      resolve(
        (args) =>
          new Promise((done) => {
            waiting.push(done);
            socket.write(
              `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`,
            );
          }),
      ),
    );
  });
}

async function closedLoop(c: number, lookup: () => Promise<unknown>) {
  const latencies: number[] = [];
  const end = performance.now() + WINDOW_MS;
  await Promise.all(
    Array.from({ length: c }, async () => {
      while (performance.now() < end) {
        const t = performance.now();
        await lookup();
        latencies.push(performance.now() - t);
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  return {
    perS: latencies.length / (WINDOW_MS / 1000),
    p50: latencies[Math.floor(latencies.length / 2)] ?? Number.NaN,
  };
}

async function main() {
  const pool = new pg.Pool({ connectionString: PG, max: 30 });
  await pool.query('SELECT 1'); // opens one connection
  const key = 'connectsphere:bench:session';
  const redis = await Promise.all(Array.from({ length: 4 }, redisConnection));
  await redis[0]?.(['SET', key, VALUE]);
  // what src/db/cache.ts is underneath (the bench does not import the server's code)
  const cache = new LRUCache<string, object>({ max: 100_000, ttl: 5_000 });
  cache.set('s:s', JSON.parse(VALUE));
  let n = 0;
  const ways: [string, () => Promise<unknown>][] = [
    [
      'PostgreSQL round trip (pooled, prepared)',
      () =>
        pool.query({
          name: 'bench_point',
          text: 'SELECT $1::text AS id, $2::text AS v',
          values: ['s', VALUE],
        }),
    ],
    ['Redis GET (4 connections)', () => (redis[n++ % 4] as (a: string[]) => Promise<unknown>)(['GET', key])],
    ['in-process lru-cache lookup', async () => cache.get('s:s')],
  ];
  const fmt = (x: number, d = 0) =>
    x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
  for (const round of [1, 2])
    for (const c of [1, 50])
      for (const [label, lookup] of ways) {
        const r = await closedLoop(c, lookup);
        process.stdout.write(
          `round ${round}  c=${String(c).padEnd(3)} ${label.padEnd(44)} ${fmt(r.perS).padStart(10)}/s  p50 ${fmt(r.p50 * 1000, 1)} µs\n`,
        );
      }
  await pool.end();
  process.exit(0);
}
void main();
