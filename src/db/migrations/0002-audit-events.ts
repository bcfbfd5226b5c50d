/**
 * The audit trail (src/db/audit.store.ts): one row per security event, written in the transaction
 * of the change it records. Append-only: a trigger refuses UPDATE and TRUNCATE, and DELETE unless
 * the transaction has set `connectsphere.audit_prune` to `on`, which only the retention prune does
 * (src/db/housekeeping.ts, AUDIT_RETENTION_DAYS). This guards against a bug or an injected
 * statement in the service; the table's owner (or a superuser) can still drop the trigger, so a
 * trail that must survive a compromised database account is shipped elsewhere as well.
 *
 * `id` is the order of recording (ListAuditEvents pages by it, newest first); no foreign key to
 * users: events outlive what they are about.
 */
import type { MigrationFn } from './migration.js';

const STATEMENTS = [
  `CREATE TABLE audit_events (
     id bigint GENERATED ALWAYS AS IDENTITY,
     occurred_at timestamp with time zone NOT NULL DEFAULT now(),
     event_type text NOT NULL,
     actor_type text NOT NULL,
     actor_id text,
     subject_user_id uuid,
     client_address text,
     request_id text,
     outcome text NOT NULL,
     details jsonb NOT NULL DEFAULT '{}'::jsonb,
     CONSTRAINT audit_events_pkey PRIMARY KEY (id),
     CONSTRAINT audit_events_actor_type_check
       CHECK (actor_type IN ('user', 'service_account', 'operator', 'anonymous')),
     CONSTRAINT audit_events_actor_id_check CHECK ((actor_type = 'anonymous') = (actor_id IS NULL)),
     CONSTRAINT audit_events_outcome_check CHECK (outcome IN ('success', 'failure', 'refused'))
   )`,
  // ListAuditEvents by subject or by type, newest first; the retention prune by time
  'CREATE INDEX audit_events_subject_idx ON audit_events (subject_user_id, id) WHERE subject_user_id IS NOT NULL',
  'CREATE INDEX audit_events_type_idx ON audit_events (event_type, id)',
  'CREATE INDEX audit_events_time_idx ON audit_events (occurred_at)',
  `CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
   BEGIN
     IF TG_OP = 'DELETE' AND current_setting('connectsphere.audit_prune', true) = 'on' THEN
       RETURN OLD;
     END IF;
     RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
       USING ERRCODE = 'insufficient_privilege';
   END $$`,
  `CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
     FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()`,
  `CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
     FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()`,
];

export const up: MigrationFn = async ({ context }) => {
  for (const sql of STATEMENTS) await context.query(sql);
};
