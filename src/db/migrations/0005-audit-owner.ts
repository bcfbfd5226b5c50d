/**
 * The audit trail leaves the service role's hands. Until now the service role owned `audit_events`,
 * so it could lift the append-only trigger's guard with one statement of its own
 * (`DELETE … WHERE set_config('connectsphere.audit_prune', 'on', true) = 'on'`), or disable the
 * trigger. From here on:
 *
 * - retention runs through `audit_events_prune(requested_days, batch)`, a SECURITY DEFINER function
 *   (fixed `search_path`) that deletes at most `batch` (≤ 10,000) events older than
 *   `greatest(requested_days, audit_settings.min_retention_days)`: a caller cannot ask it to delete
 *   recent events. `audit_settings` holds that floor (30 days to start with);
 * - `audit_events`, `audit_settings`, both functions and the schema `public` (whose owner could
 *   drop any table in it; since PostgreSQL 15 that is the database's owner) belong to the NOLOGIN
 *   role `connectsphere_audit_owner`, and the service role gets only SELECT and INSERT on the table
 *   and EXECUTE on the function (src/db/privileges.ts lists them).
 *
 * Creating a role and giving objects away needs a superuser. When the migration runs as one (the
 * tests, an operator's `npm run migrate`), it does that part too (`auditOwnerStatements()`); as
 * anyone else it creates the function and table and leaves the hand-over to the one-time SQL the
 * README gives (src/db/privileges.ts; the embedded database runs it by itself, src/db/embedded.ts).
 * Frozen with this migration: the role's name, the function's signature, the statements below.
 */
import type { MigrationFn } from './migration.js';

const AUDIT_OWNER = 'connectsphere_audit_owner';
const AUDIT_PRUNE_FUNCTION = 'audit_events_prune(integer, integer)';

const STATEMENTS = [
  `CREATE TABLE audit_settings (
     singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
     min_retention_days integer NOT NULL CHECK (min_retention_days >= 1)
   )`,
  'INSERT INTO audit_settings (min_retention_days) VALUES (30)',
  `CREATE FUNCTION audit_events_prune(requested_days integer, batch integer) RETURNS integer
   LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
   DECLARE
     keep_days integer;
     deleted integer;
   BEGIN
     SELECT greatest(coalesce(requested_days, 0), s.min_retention_days) INTO keep_days
       FROM public.audit_settings s;
     IF keep_days IS NULL THEN
       RAISE EXCEPTION 'audit_settings has no row: nothing is pruned';
     END IF;
     PERFORM set_config('connectsphere.audit_prune', 'on', true);
     DELETE FROM public.audit_events WHERE id IN (
       SELECT e.id FROM public.audit_events e
       WHERE e.occurred_at < now() - make_interval(days => keep_days)
       LIMIT least(greatest(coalesce(batch, 1), 1), 10000));
     GET DIAGNOSTICS deleted = ROW_COUNT;
     PERFORM set_config('connectsphere.audit_prune', 'off', true);
     RETURN deleted;
   END $$`,
  `REVOKE ALL ON FUNCTION ${AUDIT_PRUNE_FUNCTION} FROM PUBLIC`,
];

const quote = (role: string) => `"${role.replace(/"/g, '""')}"`;

/**
 * What a superuser runs once to hand the audit trail to its owner role (idempotent). With
 * `serviceRole`, that role also gets what it needs on it (and loses anything else it had there).
 * Frozen here; src/db/privileges.ts keeps the current copy (the embedded database and the README
 * use that one).
 */
function auditOwnerStatements(serviceRole?: string): string[] {
  const grants = serviceRole
    ? [
        // it migrates (DB_SYNC): it creates tables, but no longer owns the schema, which could drop any
        `GRANT USAGE, CREATE ON SCHEMA public TO ${quote(serviceRole)}`,
        `REVOKE ALL ON TABLE audit_events, audit_settings FROM ${quote(serviceRole)}`,
        `GRANT SELECT, INSERT ON TABLE audit_events TO ${quote(serviceRole)}`,
        `GRANT EXECUTE ON FUNCTION ${AUDIT_PRUNE_FUNCTION} TO ${quote(serviceRole)}`,
      ]
    : [];
  return [
    // another database of the same cluster may be creating it at the same moment
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

export const up: MigrationFn = async ({ context }) => {
  for (const sql of STATEMENTS) await context.query(sql);
  const [me] = await context.query<{ superuser: boolean }>(
    'SELECT rolsuper AS superuser FROM pg_roles WHERE rolname = current_user',
  );
  if (me?.superuser) for (const sql of auditOwnerStatements()) await context.query(sql);
};
