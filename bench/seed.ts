/**
 * Seeds the server's database with SQL, in one statement: `count` users bench-user-<n>@bench.example.com,
 * all with the same bcrypt hash of BENCH_PASSWORD made once at the configured cost (Register would
 * cost one bcrypt hash, ~0.25 s of CPU, per user). Likewise the login sessions RefreshToken needs
 * (one per virtual user): rows in sessions and refresh_tokens, with refresh tokens made and
 * hashed by the server's own token service, instead of one bcrypt-bound Login each.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { attachEmbeddedPostgres } from '../src/db/embedded.js';
import { createTokenService } from '../src/security/tokens.js';

/** The URL of the embedded database a running server owns (via its DATA_DIR). */
export function databaseUrlOf(dataDir: string): string {
  const url = attachEmbeddedPostgres(dataDir);
  if (!url) throw new Error(`no running server owns the embedded database in ${dataDir}`);
  return url;
}

async function withClient<T>(url: string, work: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

export async function seedUsers(url: string, count: number, passwordHash: string): Promise<void> {
  await withClient(url, async (c) => {
    await c.query(
      `INSERT INTO users (id, email, password_hash, display_name, roles, created_at, updated_at)
       SELECT gen_random_uuid(), 'bench-user-' || n || '@bench.example.com', $1, 'Bench User ' || n,
              ARRAY['user'], now() + n * interval '1 millisecond', now()
       FROM generate_series(1, $2::int) AS n`,
      [passwordHash, count],
    );
    await c.query('ANALYZE users');
  });
}

/** Ids of the seeded users, in registration order (BatchGetUsers takes 50 consecutive ones). */
export function seededIds(url: string): Promise<string[]> {
  return withClient(url, async (c) => {
    const { rows } = await c.query<{ id: string }>(
      `SELECT id FROM users WHERE email LIKE 'bench-user-%' AND deleted_at IS NULL ORDER BY created_at, id`,
    );
    return rows.map((r) => r.id);
  });
}

export async function tableCounts(url: string): Promise<Record<string, number>> {
  return withClient(url, async (c) => {
    const { rows } = await c.query<{ users: string; sessions: string; refresh_tokens: string }>(
      `SELECT (SELECT count(*) FROM users) AS users, (SELECT count(*) FROM sessions) AS sessions,
              (SELECT count(*) FROM refresh_tokens) AS refresh_tokens`,
    );
    const r = rows[0];
    return {
      users: Number(r?.users),
      sessions: Number(r?.sessions),
      refreshTokens: Number(r?.refresh_tokens),
    };
  });
}

/** Opens `count` login sessions of the given users; returns their refresh tokens. */
export async function seedSessions(
  url: string,
  userIds: string[],
  count: number,
  refreshTtlDays = 14,
): Promise<string[]> {
  // Only newRefreshToken() is used: 32 random bytes, stored as their SHA-256, as the server does.
  const tokens = createTokenService({
    SECRET_KEY: 'not used for refresh tokens',
    JWT_ISSUER: 'bench',
    JWT_AUDIENCE: 'bench',
    ACCESS_TOKEN_EXPIRE_MINUTES: 1,
    REFRESH_TOKEN_EXPIRE_DAYS: refreshTtlDays,
  });
  const rows = Array.from({ length: count }, (_, i) => ({
    ...tokens.newRefreshToken(),
    sessionId: randomUUID(),
    userId: userIds[userIds.length - 1 - (i % userIds.length)] as string,
  }));
  await withClient(url, async (c) => {
    await c.query('BEGIN');
    await c.query(
      `INSERT INTO sessions (id, user_id, created_at)
       SELECT s, u, now() FROM unnest($1::uuid[], $2::uuid[]) AS t(s, u)`,
      [rows.map((r) => r.sessionId), rows.map((r) => r.userId)],
    );
    await c.query(
      `INSERT INTO refresh_tokens (token_hash, session_id, parent_hash, created_at, expires_at)
       SELECT h, s, NULL, now(), now() + make_interval(days => $3) FROM unnest($1::text[], $2::uuid[]) AS t(h, s)`,
      [rows.map((r) => r.hash), rows.map((r) => r.sessionId), refreshTtlDays],
    );
    await c.query('COMMIT');
  });
  return rows.map((r) => r.token);
}
