/**
 * The audit trail in `audit_events` (migration 0002): an append-only table; its triggers refuse
 * UPDATE and TRUNCATE, and DELETE except from the retention function `audit_events_prune`
 * (migration 0005, called by housekeeping.ts). The table belongs to another role: the service role
 * may only INSERT and SELECT here (src/db/privileges.ts). `record` writes in the caller's transaction when given one, so
 * an event commits or rolls back with the change it records.
 */
import type { AuditEvent, AuditLog, AuditRecord } from '../ports.js';
import type { Database } from './database.js';

interface Row {
  id: string;
  time: Date;
  type: AuditRecord['type'];
  actorType: AuditRecord['actor']['type'];
  actorId: string | null;
  subjectUserId: string | null;
  clientAddress: string | null;
  requestId: string | null;
  outcome: AuditRecord['outcome'];
  details: Record<string, string>;
}

const actorOf = (row: Row): AuditRecord['actor'] =>
  row.actorType === 'anonymous' ? { type: 'anonymous' } : { type: row.actorType, id: row.actorId ?? '' };

export function createAuditLog(db: Database): AuditLog {
  return {
    async record(event: AuditEvent, tx) {
      await db.execute(
        `INSERT INTO audit_events (event_type, actor_type, actor_id, subject_user_id, client_address, request_id, outcome, details)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)`,
        [
          event.type,
          event.actor.type,
          event.actor.type === 'anonymous' ? null : event.actor.id,
          event.subjectUserId ?? null,
          event.clientAddress || null,
          event.requestId || null,
          event.outcome,
          JSON.stringify(event.details ?? {}),
        ],
        { tx },
      );
    },

    async list(q) {
      const rows = await db.select<Row>(
        `SELECT id::text AS id, occurred_at AS time, event_type AS type, actor_type AS "actorType",
                actor_id AS "actorId", subject_user_id AS "subjectUserId", client_address AS "clientAddress",
                request_id AS "requestId", outcome, details
         FROM audit_events
         WHERE ($1::uuid IS NULL OR subject_user_id = $1)
           AND ($2::text[] IS NULL OR event_type = ANY($2))
           AND ($3::timestamptz IS NULL OR occurred_at >= $3)
           AND ($4::timestamptz IS NULL OR occurred_at < $4)
           AND ($5::bigint IS NULL OR id < $5)
         ORDER BY audit_events.id DESC
         LIMIT $6`,
        [
          q.subjectUserId ?? null,
          q.types?.length ? q.types : null,
          q.from ?? null,
          q.to ?? null,
          q.beforeId ?? null,
          q.limit,
        ],
      );
      return rows.map((r) => ({
        id: r.id,
        time: r.time,
        type: r.type,
        actor: actorOf(r),
        outcome: r.outcome,
        subjectUserId: r.subjectUserId ?? undefined,
        clientAddress: r.clientAddress ?? undefined,
        requestId: r.requestId ?? undefined,
        details: r.details,
      }));
    },
  };
}
