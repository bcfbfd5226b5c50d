/**
 * What the service's database role needs, in one place: the start-up check (`checkPrivileges`,
 * src/app.ts keeps health NOT_SERVING while anything is missing and logs the GRANTs to run) and the
 * README's grant list (`npm run gen:config`, scripts/config-docs.ts) both read `REQUIRED`. A new
 * table, or a new kind of statement on one, goes here too.
 *
 * The audit trail is the exception to "the service may change its own rows": it gets SELECT and
 * INSERT on `audit_events` and EXECUTE on the retention function, never UPDATE, DELETE, TRUNCATE or
 * ownership (migration 0005). A role that owns the table, or a superuser, can still do anything to
 * it: `checkPrivileges` reports that as `auditUnprotected`.
 */
import type { Database } from './database.js';

/** The NOLOGIN role that owns the audit trail (migration 0005). */
export const AUDIT_OWNER = 'connectsphere_audit_owner';
/** The retention function (migration 0005): the only way the service deletes audit events. */
export const AUDIT_PRUNE_FUNCTION = 'audit_events_prune(integer, integer)';

export interface Requirement {
  kind: 'schema' | 'table' | 'function';
  /** Schema name, table name (in `public`) or function signature. */
  object: string;
  privileges: readonly string[];
}

const READ_WRITE = ['SELECT', 'INSERT', 'UPDATE', 'DELETE'] as const;

export const REQUIRED: readonly Requirement[] = [
  { kind: 'schema', object: 'public', privileges: ['USAGE'] },
  { kind: 'table', object: 'users', privileges: READ_WRITE },
  { kind: 'table', object: 'sessions', privileges: READ_WRITE },
  { kind: 'table', object: 'refresh_tokens', privileges: READ_WRITE },
  { kind: 'table', object: 'login_throttle', privileges: READ_WRITE },
  { kind: 'table', object: 'service_accounts', privileges: READ_WRITE },
  // DB_SYNC=false: the start-up check that nothing is pending
  { kind: 'table', object: 'schema_migrations', privileges: ['SELECT'] },
  // append-only for the service: no UPDATE, DELETE or TRUNCATE (its identity column needs nothing more)
  { kind: 'table', object: 'audit_events', privileges: ['SELECT', 'INSERT'] },
  // the housekeeping job's only way to delete audit events (past retention)
  { kind: 'function', object: AUDIT_PRUNE_FUNCTION, privileges: ['EXECUTE'] },
];

/**
 * The one-time SQL a superuser runs to hand the audit trail to its owner role, after migration 0005
 * (which does it itself when a superuser applies it); idempotent. With `serviceRole`, that role also
 * gets what it needs there (and loses anything else): the embedded database runs it so.
 */
export function auditOwnerStatements(serviceRole?: string): string[] {
  const role = serviceRole === undefined ? '' : quoteRole(serviceRole);
  const grants = role
    ? [
        // it migrates (DB_SYNC): it creates tables, but no longer owns the schema, which could drop any
        `GRANT USAGE, CREATE ON SCHEMA public TO ${role}`,
        `REVOKE ALL ON TABLE audit_events, audit_settings FROM ${role}`,
        `GRANT SELECT, INSERT ON TABLE audit_events TO ${role}`,
        `GRANT EXECUTE ON FUNCTION ${AUDIT_PRUNE_FUNCTION} TO ${role}`,
      ]
    : [];
  return [
    `DO $$ BEGIN CREATE ROLE ${AUDIT_OWNER} NOLOGIN;
     EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$`,
    // the schema's owner (since PostgreSQL 15: the database's owner) may drop any table in it
    `ALTER SCHEMA public OWNER TO ${AUDIT_OWNER}`,
    `ALTER TABLE audit_events OWNER TO ${AUDIT_OWNER}`,
    `ALTER TABLE audit_settings OWNER TO ${AUDIT_OWNER}`,
    `ALTER FUNCTION ${AUDIT_PRUNE_FUNCTION} OWNER TO ${AUDIT_OWNER}`,
    `ALTER FUNCTION audit_events_append_only() OWNER TO ${AUDIT_OWNER}`,
    `REVOKE ALL ON FUNCTION ${AUDIT_PRUNE_FUNCTION} FROM PUBLIC`,
    ...grants,
  ];
}

/** A role name as SQL: bare when it is a plain lower-case identifier, else double-quoted. */
export function quoteRole(role: string): string {
  return /^[a-z_][a-z0-9_]*$/.test(role) ? role : `"${role.replace(/"/g, '""')}"`;
}

export function grantStatement(r: Requirement, role: string, privileges = r.privileges): string {
  const on = { schema: 'SCHEMA', table: 'TABLE', function: 'FUNCTION' }[r.kind];
  return `GRANT ${privileges.join(', ')} ON ${on} ${r.object} TO ${quoteRole(role)};`;
}

/** Every GRANT the service role needs (the README's list, with its role name). */
export function grantStatements(role: string): string[] {
  return REQUIRED.map((r) => grantStatement(r, role));
}

export interface PrivilegeReport {
  role: string;
  superuser: boolean;
  /**
   * The role owns (or is a member of the owner of) `audit_events` or its schema: it can change,
   * delete or drop audit rows.
   */
  ownsAudit: boolean;
  /** What is missing, as the exact statements that grant it (empty when nothing is). */
  grants: string[];
}

/** Asks PostgreSQL what the connected role may do: one round trip. */
export async function checkPrivileges(db: Database): Promise<PrivilegeReport> {
  const checks = REQUIRED.flatMap((r) => r.privileges.map((p) => ({ r, p })));
  const [row] = await db.select<{ role: string; superuser: boolean; owns_audit: boolean; ok: boolean[] }>(
    `SELECT current_user AS role,
            (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser,
            coalesce((SELECT pg_has_role(current_user, c.relowner, 'MEMBER')
                             OR pg_has_role(current_user, n.nspowner, 'MEMBER')
                      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE c.oid = to_regclass('public.audit_events')), false) AS owns_audit,
            ARRAY(SELECT CASE
                           WHEN c.kind = 'schema' THEN
                             CASE WHEN to_regnamespace(c.object) IS NULL THEN false
                                  ELSE has_schema_privilege(c.object, c.privilege) END
                           WHEN c.kind = 'table' THEN
                             CASE WHEN to_regclass('public.' || c.object) IS NULL THEN false
                                  ELSE has_table_privilege('public.' || c.object, c.privilege) END
                           ELSE
                             CASE WHEN to_regprocedure('public.' || c.object) IS NULL THEN false
                                  ELSE has_function_privilege('public.' || c.object, c.privilege) END
                         END
                  FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS c(kind, object, privilege, n)
                  ORDER BY c.n) AS ok`,
    [checks.map((c) => c.r.kind), checks.map((c) => c.r.object), checks.map((c) => c.p)],
  );
  if (!row) throw new Error('the privilege check returned nothing');
  const missing = new Map<Requirement, string[]>();
  checks.forEach((c, i) => {
    if (row.ok[i]) return;
    missing.set(c.r, [...(missing.get(c.r) ?? []), c.p]);
  });
  return {
    role: row.role,
    superuser: row.superuser,
    ownsAudit: row.owns_audit,
    grants: [...missing].map(([r, privileges]) => grantStatement(r, row.role, privileges)),
  };
}
