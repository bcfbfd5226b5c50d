/**
 * The schema as the versions before migrations made it with Sequelize's `sync()` (the models of the
 * former src/db/models.ts, its `addMissingColumns` and `EXTRA_INDEXES_SQL`), written out as SQL that
 * PostgreSQL's catalog holds identically: same types, nullability, defaults, constraint and index
 * names. Every statement is idempotent, so a database made by those versions is adopted: its tables
 * and rows stay, the columns that older versions lack are added, and this migration is recorded.
 *
 * The defaults Sequelize applied on the client (`id` as a random UUID, `created_at` as now) were
 * never in the database and are not here either: the stores write those columns themselves.
 * Objects of versions before that (the table `login_attempts`, the index `refresh_tokens_session_idx`)
 * are left alone; nothing reads them.
 *
 * No `down`: it would drop every table, and with them the data of an adopted database.
 */
import type { MigrationFn } from './migration.js';

const STATEMENTS = [
  `CREATE TABLE IF NOT EXISTS users (
     id uuid NOT NULL,
     email text NOT NULL,
     password_hash text NOT NULL,
     display_name text NOT NULL,
     roles text[] NOT NULL DEFAULT ARRAY['user']::text[],
     created_at timestamp with time zone NOT NULL,
     updated_at timestamp with time zone NOT NULL,
     deleted_at timestamp with time zone,
     CONSTRAINT users_pkey PRIMARY KEY (id)
   )`,
  // One active account per address (stored trimmed and lower-case); a soft-deleted one frees it.
  'CREATE UNIQUE INDEX IF NOT EXISTS users_email_active_key ON users (email) WHERE deleted_at IS NULL',
  // ListUsers' keyset order
  'CREATE INDEX IF NOT EXISTS users_created_id_idx ON users (created_at, id) WHERE deleted_at IS NULL',
  // ListUsers' case-insensitive prefix search: text_pattern_ops lets `LIKE 'prefix%'` use the index
  // under any collation.
  'CREATE INDEX IF NOT EXISTS users_email_prefix_idx ON users (email text_pattern_ops) WHERE deleted_at IS NULL',
  `CREATE INDEX IF NOT EXISTS users_display_name_prefix_idx ON users (lower(display_name) text_pattern_ops)
     WHERE deleted_at IS NULL`,

  `CREATE TABLE IF NOT EXISTS sessions (
     id uuid NOT NULL,
     user_id uuid NOT NULL,
     created_at timestamp with time zone NOT NULL,
     last_refresh_at timestamp with time zone,
     client_address text,
     user_agent text,
     revoked_at timestamp with time zone,
     revoke_reason text,
     CONSTRAINT sessions_pkey PRIMARY KEY (id),
     CONSTRAINT sessions_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
   )`,
  // Added in issue 9 (ListSessions): when the refresh token was last rotated, and where and with
  // what the session started (the client address per TRUSTED_PROXIES).
  `ALTER TABLE sessions
     ADD COLUMN IF NOT EXISTS last_refresh_at timestamp with time zone,
     ADD COLUMN IF NOT EXISTS client_address text,
     ADD COLUMN IF NOT EXISTS user_agent text`,
  'CREATE INDEX IF NOT EXISTS sessions_user_live_idx ON sessions (user_id) WHERE revoked_at IS NULL',

  // token_hash: SHA-256 of the token, hex (the token itself is never stored). parent_hash: the token
  // this one replaced (null for a session's first), to find the successor of a token presented again
  // within REFRESH_REUSE_GRACE_SECONDS.
  `CREATE TABLE IF NOT EXISTS refresh_tokens (
     token_hash text NOT NULL,
     session_id uuid NOT NULL,
     created_at timestamp with time zone NOT NULL,
     expires_at timestamp with time zone NOT NULL,
     used_at timestamp with time zone,
     parent_hash text,
     CONSTRAINT refresh_tokens_pkey PRIMARY KEY (token_hash),
     CONSTRAINT refresh_tokens_session_id_fkey FOREIGN KEY (session_id) REFERENCES sessions (id) ON DELETE CASCADE
   )`,
  // The very first version lacks it (added with refresh-token rotation and its grace period).
  'ALTER TABLE refresh_tokens ADD COLUMN IF NOT EXISTS parent_hash text',
  'CREATE INDEX IF NOT EXISTS refresh_tokens_session_parent_idx ON refresh_tokens (session_id, parent_hash)',

  // Other services' identities: only hashes of their secrets (SHA-256: a 256-bit random secret needs
  // no slow hash); the previous one keeps working until it expires.
  `CREATE TABLE IF NOT EXISTS service_accounts (
     id uuid NOT NULL,
     name text NOT NULL,
     client_id text NOT NULL,
     secret_hash text NOT NULL,
     previous_secret_hash text,
     previous_secret_expires_at timestamp with time zone,
     scopes text[] NOT NULL,
     cert_name text,
     created_at timestamp with time zone NOT NULL,
     rotated_at timestamp with time zone,
     deleted_at timestamp with time zone,
     CONSTRAINT service_accounts_client_id_key UNIQUE (client_id),
     CONSTRAINT service_accounts_pkey PRIMARY KEY (id)
   )`,
  `CREATE UNIQUE INDEX IF NOT EXISTS service_accounts_name_active_key ON service_accounts (name)
     WHERE deleted_at IS NULL`,

  // Attempt counters (failed logins by account, address and pair; wrong current passwords by user),
  // in the database so every instance enforces the same limits (src/throttle.ts).
  `CREATE TABLE IF NOT EXISTS login_throttle (
     key text NOT NULL,
     failures integer NOT NULL DEFAULT 0,
     last_failure_at timestamp with time zone NOT NULL,
     locked_until timestamp with time zone,
     CONSTRAINT login_throttle_pkey PRIMARY KEY (key)
   )`,
];

export const up: MigrationFn = async ({ context }) => {
  for (const sql of STATEMENTS) await context.query(sql);
};
