import { UniqueConstraintError } from 'sequelize';
import type { Scope } from '../caller.js';
import { alreadyExists } from '../errors.js';
import type { ServiceAccount, ServiceAccountStore } from '../ports.js';
import { type BatcherOptions, createBatcher } from './batcher.js';
import type { Database } from './database.js';

const COLUMNS = `id, name, client_id AS "clientId", scopes, cert_name AS "certName",
  created_at AS "createTime", rotated_at AS "rotateTime",
  extract(epoch FROM tokens_valid_after)::float8 AS "tokensValidAfter"`;

type Row = Omit<ServiceAccount, 'rotateTime' | 'scopes' | 'tokensValidAfter'> & {
  rotateTime: Date | null;
  scopes: string[];
  tokensValidAfter: number | null;
};
const toAccount = ({ rotateTime, scopes, tokensValidAfter, ...r }: Row): ServiceAccount => ({
  ...r,
  scopes: scopes as Scope[],
  rotateTime: rotateTime ?? undefined,
  ...(tokensValidAfter === null ? {} : { tokensValidAfter }),
});

export function createServiceAccountStore(db: Database, batching: BatcherOptions): ServiceAccountStore {
  const active = createBatcher(
    {
      async load(ids: string[], signal) {
        const rows = await db.read<Row>(
          `SELECT ${COLUMNS} FROM service_accounts WHERE id = ANY($1::uuid[]) AND deleted_at IS NULL`,
          [ids],
          signal,
        );
        return new Map(rows.map((r) => [r.id, toAccount(r)]));
      },
      keyOf: (id) => id,
    },
    batching,
  );

  return {
    async insert(a, tx) {
      try {
        const [row] = await db.select<Row>(
          `INSERT INTO service_accounts (id, name, client_id, secret_hash, scopes, cert_name, created_at)
           VALUES ($1, $2, $3, $4, $5::text[], $6, now()) RETURNING ${COLUMNS}`,
          [a.id, a.name, a.clientId, a.secretHash, a.scopes, a.certName],
          { tx },
        );
        return toAccount(row as Row);
      } catch (err) {
        if (err instanceof UniqueConstraintError)
          throw alreadyExists(`a service account named ${a.name} exists`);
        throw err;
      }
    },

    list: async () =>
      (
        await db.select<Row>(`SELECT ${COLUMNS} FROM service_accounts WHERE deleted_at IS NULL ORDER BY name`)
      ).map(toAccount),

    async rotate(name, secretHash, overlapS, tx) {
      const [row] = await db.select<Row>(
        `UPDATE service_accounts SET previous_secret_hash = secret_hash, secret_hash = $2,
           previous_secret_expires_at = now() + make_interval(secs => $3), rotated_at = now()
         WHERE name = $1 AND deleted_at IS NULL RETURNING ${COLUMNS}`,
        [name, secretHash, overlapS],
        { tx },
      );
      return row ? toAccount(row) : null;
    },

    async revokeSecret(name, secretHash, tx) {
      const [row] = await db.select<Row>(
        `UPDATE service_accounts SET secret_hash = $2, previous_secret_hash = NULL,
           previous_secret_expires_at = NULL, rotated_at = now()
         WHERE name = $1 AND deleted_at IS NULL RETURNING ${COLUMNS}`,
        [name, secretHash],
        { tx },
      );
      return row ? toAccount(row) : null;
    },

    async revokeTokens(name, tx) {
      const [row] = await db.select<Row>(
        `UPDATE service_accounts SET tokens_valid_after = date_trunc('second', now())
         WHERE name = $1 AND deleted_at IS NULL RETURNING ${COLUMNS}`,
        [name],
        { tx },
      );
      return row ? toAccount(row) : null;
    },

    async remove(name, tx) {
      const [row] = await db.select<Row>(
        `UPDATE service_accounts SET deleted_at = now() WHERE name = $1 AND deleted_at IS NULL RETURNING ${COLUMNS}`,
        [name],
        { tx },
      );
      return row ? toAccount(row) : null;
    },

    async findByClientId(clientId, signal) {
      const [row] = await db.read<Row & { hashes: string[] }>(
        `SELECT ${COLUMNS}, array_remove(ARRAY[secret_hash,
                  CASE WHEN previous_secret_expires_at > now() THEN previous_secret_hash END], NULL) AS hashes
         FROM service_accounts WHERE client_id = $1 AND deleted_at IS NULL`,
        [clientId],
        signal,
      );
      if (!row) return null;
      const { hashes, ...account } = row;
      return { account: toAccount(account), secretHashes: hashes };
    },

    findActive: async (id, signal) => (await active(id, signal)) ?? null,

    // whole names only (= ANY, never LIKE or a suffix); two rows are enough to refuse the certificate
    findByCertificateNames: async (names, signal) =>
      (
        await db.read<Row>(
          `SELECT ${COLUMNS} FROM service_accounts
           WHERE deleted_at IS NULL AND (name || '.service' = ANY($1::text[]) OR cert_name = ANY($1::text[]))
           ORDER BY name LIMIT 2`,
          [names],
          signal,
        )
      ).map(toAccount),
  };
}
