/**
 * The server under test for the bench and the soak: the production build on its own embedded
 * PostgreSQL in `dataDir`, seeded with SQL against its schema (tables users, sessions and
 * refresh_tokens, as src/db/models.ts declares them): users in one INSERT ... generate_series, all
 * with one bcrypt hash made once (Register would cost a hash per user), and the login sessions
 * RefreshToken needs, with refresh tokens made as the server makes them (32 random bytes,
 * base64url, stored as the SHA-256 hex of that text), instead of one bcrypt-bound Login each.
 * Users 1..4, whose access tokens the authenticated scenarios share, are admins: they read the
 * directory as a whole (GetUser by any email, ListUsers without a query).
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import bcrypt from 'bcrypt';
import pg from 'pg';
import { connect } from '../../src/client.js';
import { attachEmbeddedPostgres, freePort } from '../../src/db/embedded.js';
import { BENCH_PASSWORD, seededEmail } from './load.js';
import { type LaunchOptions, SERVER_JS, startServer } from './server-process.js';

/** `node dist/src/main.js` on `dataDir`, on a free port; ready by its SERVING line or the health service. */
export async function serveBuild(dataDir: string, env: Record<string, string>, o?: Partial<LaunchOptions>) {
  const port = await freePort();
  const base = { GRPC_HOST: '127.0.0.1', GRPC_PORT: String(port), DATA_DIR: dataDir };
  const options = { script: SERVER_JS, port, maxLines: 200, timeoutMs: 120_000 };
  // no operations port unless the caller asks for one (the bench's ops-port scenario)
  return startServer({ ...options, env: { OPS_PORT: '0', ...env, ...base }, ...o });
}

/** The URL of the embedded database a running server owns through its DATA_DIR. */
export function databaseUrlOf(dataDir: string): string {
  const url = attachEmbeddedPostgres(dataDir);
  if (!url) throw new Error(`no running server owns the embedded database in ${dataDir}`);
  return url;
}

/** `users` users bench-user-<n>, then `sessions` login sessions spread over them. */
export async function seed(dataDir: string, users: number, sessions: number, rounds: number) {
  const hash = await bcrypt.hash(BENCH_PASSWORD, rounds);
  const client = new pg.Client({ connectionString: databaseUrlOf(dataDir) });
  await client.connect();
  try {
    const { rows } = await client.query<{ id: string }>(
      `INSERT INTO users (id, email, password_hash, display_name, roles, created_at, updated_at)
       SELECT gen_random_uuid(), 'bench-user-' || n || '@bench.example.com', $1, 'Bench User ' || n,
              CASE WHEN n <= 4 THEN ARRAY['admin', 'user'] ELSE ARRAY['user'] END,
              now() + n * interval '1 millisecond', now()
       FROM generate_series(1, $2::int) AS n ORDER BY n RETURNING id`,
      [hash, users],
    );
    await client.query('ANALYZE users');
    const ids = rows.map((r) => r.id);
    // from the last user down: users 1..4 (the admins) get sessions only when every user has one
    const owners = Array.from(
      { length: sessions },
      (_, i) => ids[ids.length - 1 - (i % ids.length)] as string,
    );
    return { ids, hash, sessions: await insertSessions(client, owners) };
  } finally {
    await client.end();
  }
}

/** One login session per entry of `owners` (user ids); their refresh tokens. */
async function insertSessions(client: pg.Client, owners: string[]) {
  const tokens = owners.map(() => randomBytes(32).toString('base64url'));
  const sessionIds = tokens.map(() => randomUUID());
  await client.query('BEGIN');
  await client.query(
    'INSERT INTO sessions (id, user_id, created_at) SELECT s, u, now() FROM unnest($1::uuid[], $2::uuid[]) AS t(s, u)',
    [sessionIds, owners],
  );
  await client.query(
    `INSERT INTO refresh_tokens (token_hash, session_id, parent_hash, created_at, expires_at)
     SELECT h, s, NULL, now(), now() + interval '14 days' FROM unnest($1::text[], $2::uuid[]) AS t(h, s)`,
    [tokens.map((t) => createHash('sha256').update(t).digest('hex')), sessionIds],
  );
  await client.query('COMMIT');
  return tokens;
}

/**
 * `n` more login sessions, of `n` distinct users where there are that many, with their access
 * tokens: a working set for the cache. Each refresh token is exchanged once (RefreshToken: no
 * bcrypt), 50 at a time; the pairs it returns are live.
 */
export async function sessionsWithTokens(dataDir: string, address: string, ids: string[], n: number) {
  const client = new pg.Client({ connectionString: databaseUrlOf(dataDir) });
  await client.connect();
  let refreshTokens: string[];
  try {
    refreshTokens = await insertSessions(
      client,
      Array.from({ length: n }, (_, i) => ids[i % ids.length] as string),
    );
  } finally {
    await client.end();
  }
  const cs = connect(address, { deadlineMs: 60_000 });
  const out: { accessToken: string; refreshToken: string }[] = [];
  try {
    for (let i = 0; i < n; i += 50) {
      const batch = refreshTokens.slice(i, i + 50);
      const r = await Promise.all(batch.map((refreshToken) => cs.auth.refreshToken({ refreshToken })));
      out.push(...r.map((x) => x.tokens ?? { accessToken: '', refreshToken: '' }));
    }
    return out;
  } finally {
    cs.close();
  }
}

/** A service account with the scope tokens.introspect (what ValidateToken's callers are in production); its credentials. */
export async function seedIntrospector(dataDir: string) {
  const clientSecret = randomBytes(32).toString('base64url');
  const clientId = `svc_${randomBytes(16).toString('hex')}`;
  const client = new pg.Client({ connectionString: databaseUrlOf(dataDir) });
  await client.connect();
  try {
    await client.query(
      `INSERT INTO service_accounts (id, name, client_id, secret_hash, scopes, created_at)
       VALUES ($1, 'bench-introspector', $2, $3, '{tokens.introspect}', now())`,
      [randomUUID(), clientId, createHash('sha256').update(clientSecret).digest('hex')],
    );
    return { clientId, clientSecret };
  } finally {
    await client.end();
  }
}

/** A fresh access token of the introspecting service account (service tokens live 15 minutes). */
export async function introspectionToken(
  address: string,
  credentials: { clientId: string; clientSecret: string },
) {
  const client = connect(address, { deadlineMs: 30_000 });
  try {
    return (await client.auth.issueServiceToken(credentials)).accessToken;
  } finally {
    client.close();
  }
}

/** Logs in seeded users 1..n (bcrypt-bound: 8 at a time); returns their token pairs. */
export async function login(address: string, n: number) {
  const client = connect(address, { deadlineMs: 120_000 });
  const out: { accessToken: string; refreshToken: string }[] = [];
  try {
    for (let i = 0; i < n; i += 8) {
      const batch = Array.from({ length: Math.min(8, n - i) }, (_, k) => seededEmail(1 + i + k));
      const r = await Promise.all(
        batch.map((email) => client.auth.login({ email, password: BENCH_PASSWORD })),
      );
      out.push(...r.map((x) => x.tokens ?? { accessToken: '', refreshToken: '' }));
    }
    return out;
  } finally {
    client.close();
  }
}
